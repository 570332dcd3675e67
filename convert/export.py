"""Keras run folder -> a self-describing .tflite (int8, float16, dynamic or float32). Host only.

The exported graph is the static batch-1 twin of the trained model (weights copied), so
Keras 3's dynamic-batch Flatten leaves no SHAPE/STRIDED_SLICE/PACK ops behind. int8
calibration samples come from the run's training folder through the one preprocessing
path, stratified over classes, and always span the full 0..255 range, so a uint8 input
gets scale 1.0 and zero point 0 (raw pixels go straight in). Consumers still read the
quantization from the model. Nothing is written until the artifact is complete and
has been loaded back; the write itself is atomic.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecls import __version__
from edgecls.errors import DataError, ModelError, OutputError
from edgecls.folders import check_classes_match, load_items, scan_folder, stratified_sample
from edgecls.fsutil import atomic_write_bytes, existing_ancestor
from edgecls.labels import labels_text, write_labels
from edgecls.litert import LiteRTModel
from edgecls.model import MODEL_FILE, SPEC_FILE, build_model, import_keras, load_keras_model
from edgecls.model import import_tensorflow_quietly as import_tensorflow_quietly  # callers' name
from edgecls.quiet import captured
from edgecls.spec import ModelSpec, load_spec

from .baseline import baseline_files
from .graph import read_graph
from .metadata import append_files, build_model_metadata, insert_metadata

MODES = ("int8", "float16", "dynamic", "float32")
IO_DTYPES = ("uint8", "int8")
#: About 300 samples calibrate the activation ranges of this small CNN well; more
#: mostly costs time (each sample is one float forward pass in the calibrator).
DEFAULT_CALIBRATION = 300
#: Keras 3's Flatten on a dynamic batch emits these; they block the Edge TPU and keep
#: tflite-runtime 2.14's XNNPACK from taking the graph.
DYNAMIC_SHAPE_OPS = frozenset({"SHAPE", "STRIDED_SLICE", "PACK"})
DYNAMIC_RUNTIME_NOTE = (
    "dynamic-range models from this TensorFlow do not load in tflite-runtime 2.14 "
    "(FULLY_CONNECTED op version 12); use --quantize int8 for a Pi on tflite-runtime, "
    "or ai-edge-litert on the device"
)


@dataclass(frozen=True)
class ExportResult:
    """The written artifact and what it is: mode, tensor quantization, ops, calibration count."""

    path: Path
    mode: str
    size_bytes: int
    input: dict[str, Any]
    output: dict[str, Any]
    ops: tuple[str, ...]
    calibration_count: int
    spec: ModelSpec


def default_output(run_dir: Path, mode: str) -> Path:
    return Path(run_dir) / f"model_{mode}.tflite"


def check_options(mode: str, io_dtype: str, calibration: int) -> None:
    if mode not in MODES:
        raise DataError(f"unknown --quantize {mode!r}: use one of {', '.join(MODES)}")
    if io_dtype not in IO_DTYPES:
        raise DataError(f"unknown --io-dtype {io_dtype!r}: use one of {', '.join(IO_DTYPES)}")
    if mode == "int8" and calibration < 1:
        raise DataError(f"--calibration must be at least 1, got {calibration}")


def check_output_path(out: Path) -> None:
    """Refuse an output path that cannot be written, before any slow work."""
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"output {out} is a folder: give a file path such as {out / 'model.tflite'}")
    parent = existing_ancestor(out)
    if not parent.is_dir():
        raise OutputError(f"cannot write {out}: {parent} is not a folder; choose a writable path with --out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {out}: {parent} is not writable; choose a writable path with --out")


def check_run_dir(run_dir: Path) -> None:
    """Refuse a folder that is not a run before anything slow (load_keras_model says the same)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ModelError(f"run folder {run_dir} does not exist: train one with 'edgecls train DATA --out {run_dir}'")
    if not (run_dir / MODEL_FILE).is_file():
        raise ModelError(f"{run_dir} has no {MODEL_FILE}: it is not an edgecls run folder; train with 'edgecls train'")


def calibration_images(spec: ModelSpec, data_dir: Path | None, count: int, seed: int = 0) -> np.ndarray:
    """About ``count`` preprocessed images, stratified over classes, spanning pixel values 0..255."""
    folder = Path(data_dir) if data_dir is not None else (Path(spec.train_dir) if spec.train_dir else None)
    if folder is None:
        raise DataError("the run records no training folder to calibrate on: pass --data DIR")
    hint = "" if data_dir is not None else " (the training folder recorded in the run)"
    try:
        scan = scan_folder(folder, what=f"calibration folder{hint}", min_classes=1)
    except DataError as err:
        if data_dir is not None:
            raise
        raise DataError(f"{err}; or pass --data DIR") from err
    check_classes_match(scan, spec.labels, what="calibration folder")
    items = scan.items()
    picked = stratified_sample(np.array([ci for _, ci in items]), count, seed)
    loaded = load_items([items[i] for i in picked])
    if len(loaded.y) == 0:
        raise DataError(f"no image in calibration folder {folder} could be decoded: check the files or pass --data DIR")
    x = loaded.x
    if x.min() > 0 or x.max() < 255:
        # The input scale is calibrated from the extreme pixel values seen. Add one sample
        # contrast-stretched to 0..255 so a uint8 input maps 1:1 onto raw pixels.
        img = x[0].astype(np.float32)
        lo, hi = float(img.min()), float(img.max())
        stretched = np.round((img - lo) * (255.0 / max(hi - lo, 1.0))).clip(0, 255).astype(np.uint8)
        stretched.flat[0], stretched.flat[1] = 0, 255
        x = np.concatenate([x, stretched[None]])
    return x


def static_twin(model: Any, spec: ModelSpec, *, two_output_sigmoid: bool = True) -> Any:
    """The batch-1 copy of the trained model, with its weights.

    A sigmoid head (one unit, p of the second label) is exported as two outputs [1 - p, p]:
    one score per label is what standard clients (MediaPipe's ImageClassifier,
    tflite-support) require of a label map, and edgecls reads both forms.
    """
    n = len(spec.labels)
    twin = build_model(n, spec.input_size, batch_size=1)
    try:
        twin.set_weights(model.get_weights())
    except ValueError as err:
        raise ModelError(f"the run's model.keras is not edgecls's CNN for {n} labels ({err}): re-run 'edgecls train'") from err
    if spec.head == "sigmoid" and two_output_sigmoid:
        keras = import_keras()
        p = twin.outputs[0]
        twin = keras.Model(twin.inputs, keras.layers.Concatenate(name="probabilities")([1.0 - p, p]))
    return twin


def tflite_bytes(twin: Any, mode: str, io_dtype: str = "uint8", samples: np.ndarray | None = None) -> bytes:
    """The one TFLite conversion recipe (float32, float16, dynamic, full int8 calibrated on
    ``samples``, raw uint8 pixels); scripts and tests convert with it too."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(twin)
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        assert samples is not None

        def representative() -> Iterator[list[np.ndarray]]:
            for img in samples:
                yield [img[None].astype(np.float32)]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = tf.uint8 if io_dtype == "uint8" else tf.int8
        converter.inference_input_type = dtype
        converter.inference_output_type = dtype
    with captured() as sink:
        try:
            return bytes(converter.convert())
        except Exception as err:  # the converter raises many types; say which and stop
            tail = sink.lines()
            detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ModelError(
                f"TFLite conversion ({mode}) failed: {detail}" + (f" [{tail[-1]}]" if tail else "")
                + ": check the run folder was made by this edgecls version"
            ) from err


def convert_run(
    run_dir: Path,
    mode: str = "int8",
    out: Path | None = None,
    *,
    io_dtype: str = "uint8",
    calibration: int = DEFAULT_CALIBRATION,
    data_dir: Path | None = None,
) -> ExportResult:
    """Convert RUN_DIR's model and write the self-describing artifact (and labels.txt beside it)."""
    check_options(mode, io_dtype, calibration)
    out = Path(out) if out is not None else default_output(run_dir, mode)
    check_output_path(out)
    # every check that needs no TensorFlow comes first: a mistake fails in a second
    check_run_dir(run_dir)
    spec = load_spec(Path(run_dir) / SPEC_FILE)
    samples = calibration_images(spec, data_dir, calibration) if mode == "int8" else None
    import_tensorflow_quietly()
    twin = static_twin(load_keras_model(run_dir), spec)
    flat = tflite_bytes(twin, mode, io_dtype, samples)

    loaded = LiteRTModel(flat)
    ops = tuple(op.name for op in read_graph(flat))
    bad = sorted(DYNAMIC_SHAPE_OPS.intersection(ops))
    if bad:
        raise ModelError(f"the converted graph still has dynamic-shape ops {', '.join(bad)}: this is an edgecls bug, please report it")
    inp, outp = loaded.input.as_dict(), loaded.output.as_dict()
    spec = spec.with_quantization({"mode": mode, "input": inp, "output": outp})

    data = insert_metadata(flat, build_model_metadata(spec, name=f"edgecls {'-'.join(spec.labels)} {mode}",
                                                      version=f"edgecls {__version__}"))
    data = append_files(data, {"labels.txt": labels_text(spec.labels).encode("utf-8"),
                               "edgecls.json": spec.to_json().encode("utf-8"),
                               **baseline_files(run_dir, spec, flat, data_dir)})
    LiteRTModel(data)  # the final bytes, trailing zip and all, must still load
    atomic_write_bytes(out, data)
    write_labels(out.parent / "labels.txt", spec.labels)
    return ExportResult(out, mode, len(data), inp, outp, ops,
                        0 if samples is None else len(samples), spec)


__all__ = ["DEFAULT_CALIBRATION", "DYNAMIC_RUNTIME_NOTE", "IO_DTYPES", "MODES", "ExportResult",
           "convert_run", "tflite_bytes"]
