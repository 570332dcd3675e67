"""The drift baseline embedded at convert time (``baseline.json`` beside ``labels.txt``). Host only.

Input statistics come from a stratified sample of the training folder, output statistics
(class mix, top-1 score histogram) from the converted model itself on the run's
validation data, so the device compares its scores with what this very artifact gave on
the host, quantization included. Without a validation record the training sample stands
in. A baseline that cannot be built (the training folder has moved) leaves the artifact
without one: the device's monitor then says it is off, and nothing else changes.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from edgecls.drift import EMBEDDED_BASELINE, build_baseline
from edgecls.errors import DataError, SpecError
from edgecls.folders import load_items, scan_folder, stratified_sample
from edgecls.spec import ModelSpec

from .runner import TFLiteModel

log = logging.getLogger("edgecls.convert")

#: Images per side: enough for quintiles and a 10-bin score histogram, about a second of work.
BASELINE_SAMPLE = 600


def _sample(folder: Path, count: int, seed: int) -> np.ndarray:
    scan = scan_folder(folder, what="training folder", min_classes=1)
    items = scan.items()
    picked = stratified_sample(np.array([ci for _, ci in items]), count, seed)
    return load_items([items[i] for i in picked]).x


def baseline_files(run_dir: Path, spec: ModelSpec, flat: bytes, data_dir: Path | None = None) -> dict[str, bytes]:
    """``{"baseline.json": ...}`` for the artifact, or ``{}`` when no data can be read."""
    folder = Path(data_dir) if data_dir is not None else (Path(spec.train_dir) if spec.train_dir else None)
    if folder is None:
        return {}
    try:
        train = _sample(folder, BASELINE_SAMPLE, seed=1)
        from .parity import validation_data

        val = validation_data(Path(run_dir), spec)
        inputs = val[0].x[:BASELINE_SAMPLE] if val is not None else train
    except (DataError, SpecError) as err:
        log.warning("no drift baseline in the artifact: %s", err)
        return {}
    if len(train) == 0 or len(inputs) == 0:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(flat)
        probs = TFLiteModel(path, spec.head, len(spec.labels)).predict(inputs)
    baseline = build_baseline(train, spec.labels, probs.argmax(axis=1), probs.max(axis=1))
    return {EMBEDDED_BASELINE: baseline.to_json().encode("utf-8")}
