"""Parity: the Keras float model and each TFLite variant on the same preprocessed images.

Every figure compares a variant with the float model on identical uint8 inputs from the
one preprocessing path, so a difference can only come from conversion. Thresholds are
named constants; the CLI can change them.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecls.artifact import check_tflite, read_embedded
from edgecls.errors import DataError, SpecError
from edgecls.evaluate import keras_probabilities, load_labelled
from edgecls.folders import LoadedImages
from edgecls.heads import top1
from edgecls.metrics import per_class_accuracy
from edgecls.model import SPEC_FILE, load_keras_model
from edgecls.spec import ModelSpec, load_spec

from .export import MODES, check_run_dir, convert_run, default_output, import_tensorflow_quietly
from .runner import TFLiteModel

#: A quantized classifier that flips more than 1 in 100 of the float model's decisions
#: is no longer the model that was validated.
MIN_TOP1_AGREEMENT = 0.99
#: Accuracy may drop by at most one percentage point against float.
MAX_ACCURACY_DROP = 0.01
#: Invokes per variant for the latency figure (median).
LATENCY_REPEATS = 200


@dataclass(frozen=True)
class Thresholds:
    """min_top1_agreement: fraction of images where the variant's top-1 equals float's.
    max_accuracy_drop: float accuracy minus variant accuracy, as a fraction (0.01 = 1 pp).
    """

    min_top1_agreement: float = MIN_TOP1_AGREEMENT
    max_accuracy_drop: float = MAX_ACCURACY_DROP

    def validate(self) -> None:
        if not 0.0 <= self.min_top1_agreement <= 1.0:
            raise DataError(f"--min-agreement must be between 0 and 1, got {self.min_top1_agreement}")
        if not 0.0 <= self.max_accuracy_drop <= 1.0:
            raise DataError(f"--max-drop must be between 0 and 1, got {self.max_accuracy_drop}")


@dataclass(frozen=True)
class VariantReport:
    name: str
    path: str
    size_bytes: int
    accuracy: float
    float_accuracy: float
    accuracy_change: float
    top1_agreement: float
    mean_abs_prob_diff: float
    max_abs_prob_diff: float
    per_class_accuracy_change: dict[str, float]
    latency_ms: float
    passed: bool
    failures: tuple[str, ...] = ()
    input: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParityReport:
    run_dir: str
    data: str
    count: int
    labels: tuple[str, ...]
    float_accuracy: float
    thresholds: Thresholds
    variants: tuple[VariantReport, ...]

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.variants)

    def failures(self) -> list[str]:
        return [f"{v.name}: {f}" for v in self.variants for f in v.failures]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": self.run_dir, "data": self.data, "count": self.count, "labels": list(self.labels),
            "float_accuracy": self.float_accuracy, "thresholds": asdict(self.thresholds),
            "passed": self.passed,
            "variants": {v.name: {**asdict(v), "failures": list(v.failures)} for v in self.variants},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


def parse_variants(text: str) -> list[str]:
    """``int8,float16`` or paths to .tflite files; unknown names are refused."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise DataError(f"--variants is empty: give some of {', '.join(MODES)} or .tflite paths")
    for name in names:
        if name not in MODES and not name.endswith(".tflite"):
            raise DataError(f"unknown variant {name!r} in --variants: use {', '.join(MODES)} or a path ending in .tflite")
    return names


def resolve_variant(run_dir: Path, name: str, *, convert_missing: bool) -> Path:
    if name.endswith(".tflite"):
        check_tflite(Path(name))  # refuse a missing or foreign file before any slow work
        return Path(name)
    path = default_output(run_dir, name)
    if not path.exists() and convert_missing:
        convert_run(run_dir, name)
    return path


def check_artifact_labels(path: Path, spec: ModelSpec) -> None:
    embedded, labels = read_embedded(path)
    if labels is not None and labels != spec.labels:
        raise SpecError(
            f"{path} carries labels {', '.join(labels)} but the run has {', '.join(spec.labels)}: "
            "re-convert it from this run with 'edgecls convert'"
        )
    if embedded is not None and embedded.head != spec.head:
        raise SpecError(f"{path} has a {embedded.head} head but the run has {spec.head}: re-convert it from this run")


def compare(
    name: str, path: Path, spec: ModelSpec, data: LoadedImages, float_probs: np.ndarray,
    thresholds: Thresholds, *, latency_repeats: int = LATENCY_REPEATS,
) -> VariantReport:
    """All figures of one variant against float on the same inputs."""
    model = TFLiteModel(path, spec.head, len(spec.labels))
    check_artifact_labels(path, spec)
    probs = model.predict(data.x)
    k = len(spec.labels)
    f_pred, v_pred = top1(float_probs), top1(probs)
    f_acc, v_acc = float(np.mean(f_pred == data.y)), float(np.mean(v_pred == data.y))
    agree = float(np.mean(f_pred == v_pred))
    diff = np.abs(probs - float_probs)
    change = per_class_accuracy(data.y, v_pred, k) - per_class_accuracy(data.y, f_pred, k)
    per_class = {label: float(change[i]) for i, label in enumerate(spec.labels) if not np.isnan(change[i])}
    latency = statistics.median(model.time_invoke(data.x[0], latency_repeats)) * 1e3 if latency_repeats else 0.0
    failures = []
    if agree < thresholds.min_top1_agreement:
        failures.append(f"top-1 agreement {agree:.2%} is below {thresholds.min_top1_agreement:.2%}")
    if f_acc - v_acc > thresholds.max_accuracy_drop + 1e-12:
        failures.append(
            f"accuracy drop {(f_acc - v_acc) * 100:.2f} pp is above {thresholds.max_accuracy_drop * 100:.2f} pp "
            f"({v_acc:.2%} vs float {f_acc:.2%})"
        )
    return VariantReport(
        name=name, path=str(path), size_bytes=path.stat().st_size, accuracy=v_acc, float_accuracy=f_acc,
        accuracy_change=v_acc - f_acc, top1_agreement=agree, mean_abs_prob_diff=float(diff.mean()),
        max_abs_prob_diff=float(diff.max()), per_class_accuracy_change=per_class, latency_ms=latency,
        passed=not failures, failures=tuple(failures), input=model.input.as_dict(), output=model.output.as_dict(),
    )


def parity(
    run_dir: Path, data_dir: Path | None = None, variants: list[str] | None = None, *,
    thresholds: Thresholds | None = None, data: LoadedImages | None = None,
    convert_missing: bool = True, latency_repeats: int = LATENCY_REPEATS,
) -> ParityReport:
    """Run float and every variant on DATA_DIR (or already loaded ``data``)."""
    thresholds = thresholds or Thresholds()
    thresholds.validate()
    names = variants or list(MODES)
    check_run_dir(run_dir)
    spec = load_spec(Path(run_dir) / SPEC_FILE)
    if data is None:
        if data_dir is None:
            raise DataError("parity needs images: pass --data DIR with one subfolder per class")
        data = load_labelled(data_dir, spec, what="parity data")
    paths = [(Path(n).stem.removeprefix("model_") if n.endswith(".tflite") else n,
              resolve_variant(run_dir, n, convert_missing=convert_missing)) for n in names]
    for _, path in paths:  # refuse a variant that does not fit the labels before loading TF
        TFLiteModel(path, spec.head, len(spec.labels))
    import_tensorflow_quietly()
    model = load_keras_model(run_dir)
    float_probs = keras_probabilities(model, data.x, spec.head)
    reports = tuple(compare(name, path, spec, data, float_probs, thresholds, latency_repeats=latency_repeats)
                    for name, path in paths)
    return ParityReport(
        run_dir=str(run_dir), data=str(data_dir) if data_dir is not None else "validation data",
        count=len(data.y), labels=spec.labels, float_accuracy=float(np.mean(top1(float_probs) == data.y)),
        thresholds=thresholds, variants=reports,
    )


def validation_data(run_dir: Path, spec: ModelSpec) -> tuple[LoadedImages, str] | None:
    """The run's own validation images (a separate folder, or the seeded split), if recorded."""
    try:
        history = json.loads((Path(run_dir) / "history.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if history.get("val_dir"):
        return load_labelled(Path(history["val_dir"]), spec, what="validation folder"), str(history["val_dir"])
    if history.get("val_split") and spec.train_dir:
        from edgecls.folders import load_scan, scan_folder
        from edgecls.train import split_validation

        loaded = load_scan(scan_folder(Path(spec.train_dir), what="training folder"))
        _, val = split_validation(loaded, float(history["val_split"]), int(history.get("seed", 0)))
        return val, f"{spec.train_dir} (validation split {history['val_split']})"
    return None
