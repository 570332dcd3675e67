"""``edgecls evaluate``: the float Keras model on a class-folder dataset. Host only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecls import plots
from edgecls.folders import LoadedImages, check_classes_match, load_scan, scan_folder
from edgecls.heads import probabilities, top1
from edgecls.metrics import ClassReport, class_report
from edgecls.model import SPEC_FILE, load_keras_model
from edgecls.spec import ModelSpec, load_spec


def load_labelled(data_dir: Path, spec: ModelSpec, *, what: str = "data folder") -> LoadedImages:
    """Load DATA_DIR with class ids in the model's label order (a subset of classes is fine)."""
    scan = scan_folder(data_dir, what=what, min_classes=1)
    check_classes_match(scan, spec.labels, what=what)
    loaded = load_scan(scan)
    remap = np.array([spec.labels.index(c) for c in scan.classes], dtype=np.int64)
    return LoadedImages(loaded.x, remap[loaded.y], loaded.paths, loaded.skipped)


def keras_probabilities(model: object, x: np.ndarray, head: str) -> np.ndarray:
    out = model.predict(x.astype(np.float32), batch_size=256, verbose=0)  # type: ignore[attr-defined]
    return probabilities(out, head)


def evaluate(run_dir: Path, data_dir: Path) -> tuple[ClassReport, LoadedImages]:
    """Accuracy, per-class precision/recall and the confusion matrix; writes RUN_DIR/confusion.png."""
    model = load_keras_model(run_dir)
    spec = load_spec(Path(run_dir) / SPEC_FILE)
    data = load_labelled(data_dir, spec)
    pred = top1(keras_probabilities(model, data.x, spec.head))
    report = class_report(data.y, pred, spec.labels)
    plots.confusion([list(r) for r in report.confusion], list(spec.labels), Path(run_dir) / "confusion.png",
                    title=f"confusion on {Path(data_dir).name} (accuracy {report.accuracy:.1%})")
    return report, data
