"""``edgecls field export``: the host side of the field check. Host only (Keras for the float model).

The bundle holds about 200 reference images stratified by class. A quarter of each
class are the images the float model is least sure of (smallest top-1 minus top-2
margin): a device that computes even slightly differently flips those first, so they
make the check sharp. The rest are drawn at random within the class (seeded), so the
bundle also looks like ordinary data. Float and int8 (ai-edge-litert, on the host) run
on the very tensors stored in the bundle.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from edgecls import __version__
from edgecls.artifact import check_tflite
from edgecls.bundle import (
    DEFAULT_TOLERANCES,
    BundleItem,
    agreement_tolerance,
    check_bundle_target,
    file_sha256,
    write_bundle,
)
from edgecls.errors import DataError, ModelError
from edgecls.evaluate import keras_probabilities, load_labelled
from edgecls.heads import top1
from edgecls.model import SPEC_FILE, load_keras_model
from edgecls.spec import load_spec

from .export import default_output
from .parity import check_artifact_labels
from .runner import TFLiteModel

#: Reference images per bundle: enough that one flip is 0.5 %, small enough to copy anywhere.
DEFAULT_COUNT = 200
#: Share of each class taken from the float model's least certain images.
BOUNDARY_FRACTION = 0.25


@dataclass(frozen=True)
class FieldExportResult:
    path: Path
    count: int
    per_class: dict[str, int]
    boundary: int
    model: Path
    model_sha256: str
    edgetpu_sha256: str | None
    host_top1_agreement: float
    size_bytes: int

    def to_dict(self) -> dict[str, object]:
        return {"bundle": str(self.path), "count": self.count, "per_class": self.per_class, "boundary": self.boundary,
                "model": str(self.model), "model_sha256": self.model_sha256, "edgetpu_sha256": self.edgetpu_sha256,
                "host_top1_agreement": self.host_top1_agreement, "size_bytes": self.size_bytes}


def margins(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row: 0 sits on the decision boundary."""
    ordered = np.sort(probs, axis=1)
    return ordered[:, -1] - ordered[:, -2]


def select(y: np.ndarray, margin: np.ndarray, count: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (class by class) and a mask of which were picked as boundary cases."""
    rng = np.random.default_rng(seed)
    present = [c for c in range(k) if np.any(y == c)]
    picked: list[int] = []
    boundary: list[bool] = []
    for n, c in enumerate(present):
        want = count // len(present) + (1 if n < count % len(present) else 0)
        idx = np.flatnonzero(y == c)
        idx = idx[np.argsort(margin[idx], kind="stable")]
        nb = min(len(idx), round(want * BOUNDARY_FRACTION))
        rest = rng.permutation(idx[nb:])[: max(0, want - nb)]
        picked += [*idx[:nb].tolist(), *sorted(rest.tolist())]
        boundary += [True] * nb + [False] * len(rest)
    return np.array(picked, np.int64), np.array(boundary, bool)


def _runtime_version() -> str:
    try:
        return f"ai-edge-litert {metadata.version('ai-edge-litert')}"
    except metadata.PackageNotFoundError:
        return "unknown"


def field_export(run_dir: Path, data_dir: Path, out: Path, *, model: Path | None = None,
                 count: int = DEFAULT_COUNT, seed: int = 0, force: bool = False) -> FieldExportResult:
    """Select, run float and host int8, and write the bundle at ``out`` (folder, .tar or .zip)."""
    if count < 2:
        raise DataError(f"--count must be at least 2, got {count}")
    spec = load_spec(Path(run_dir) / SPEC_FILE)
    model_path = Path(model) if model is not None else default_output(Path(run_dir), "int8")
    if model is None and not model_path.exists():
        raise ModelError(f"{run_dir} has no {model_path.name}: convert it first with 'edgecls convert {run_dir}'")
    check_tflite(model_path)
    check_artifact_labels(model_path, spec)
    check_bundle_target(out, force=force)
    tflite = TFLiteModel(model_path, spec.head, len(spec.labels))
    data = load_labelled(data_dir, spec, what="field data")
    from .export import import_tensorflow_quietly

    import_tensorflow_quietly()  # only now: every bad input above is refused in about a second
    keras_model = load_keras_model(run_dir)
    probs = keras_probabilities(keras_model, data.x, spec.head)
    idx, is_boundary = select(data.y, margins(probs), min(count, len(data.y)), len(spec.labels), seed)
    tensors = data.x[idx]
    raw = np.stack([tflite.raw(t).reshape(-1) for t in tensors])
    # the reference for devices whose runtime runs int8 on TFLite's builtin kernels
    # (tflite-runtime 2.14): XNNPACK's int8 kernels round a few outputs differently
    builtin = TFLiteModel(model_path, spec.head, len(spec.labels), builtin_kernels=True)
    raw_builtin = np.stack([builtin.raw(t).reshape(-1) for t in tensors])
    int8_probs = tflite.predict(tensors)
    agreement = float(np.mean(top1(int8_probs) == top1(probs[idx])))
    items, images = [], []
    for n, (i, b) in enumerate(zip(idx, is_boundary, strict=True)):
        src = data.paths[int(i)]
        label = spec.labels[int(data.y[i])]
        items.append(BundleItem(f"images/{n:04d}_{label}{src.suffix.lower()}", label, int(data.y[i]),
                                str(src), "boundary" if b else "stratified", float(margins(probs[i:i + 1])[0])))
        images.append(src.read_bytes())
    tpu_path = model_path.with_name(f"{model_path.stem}_edgetpu.tflite")
    sha = file_sha256(model_path)
    tpu_sha = file_sha256(tpu_path) if tpu_path.is_file() else None
    host = {"edgecls": __version__, "runtime": _runtime_version(), "machine": platform.machine(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "run_dir": str(run_dir),
            "data": str(data_dir), "host_top1_agreement": agreement, "seed": seed,
            "input": tflite.input.as_dict(), "output": tflite.output.as_dict()}
    written = write_bundle(out, model_name=model_path.name, model_sha256=sha, edgetpu_sha256=tpu_sha, spec=spec,
                           items=items, images=images, host=host,
                           tolerances={**DEFAULT_TOLERANCES, "min_top1_agreement": agreement_tolerance(agreement)},
                           arrays={"tensors": tensors, "float_probs": probs[idx].astype(np.float64),
                                   "int8_raw": raw, "int8_raw_builtin": raw_builtin})
    size = sum(p.stat().st_size for p in written.rglob("*") if p.is_file()) if written.is_dir() else written.stat().st_size
    per_class = {label: int(np.sum(data.y[idx] == c)) for c, label in enumerate(spec.labels)}
    return FieldExportResult(written, len(idx), per_class, int(is_boundary.sum()), model_path, sha, tpu_sha,
                             agreement, size)
