"""What a model file says about itself, and the checks that run before any capture starts.

Labels and the spec come from the artifact (``edgecls.artifact.read_embedded``); a plain
``.tflite`` with a ``labels.txt`` beside it works too, its head inferred from the output
size. Every mismatch (input not HxWx3, labels vs outputs) is refused here, once, with a
message, so the loop never meets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecls.artifact import check_tflite, read_embedded
from edgecls.errors import ModelError, SpecError
from edgecls.labels import read_labels
from edgecls.spec import ModelSpec
from edgecls.tensorio import RAW_PIXELS, Normalization, TensorInfo, identity_input
from edgecls.tflite_metadata import read_normalization

LABELS_BESIDE = "labels.txt"
INPUT_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.float32))


@dataclass(frozen=True)
class ModelInfo:
    """path: the .tflite. labels: class names (index = class). head: "sigmoid" or "softmax"
    (None until the output size is known for a plain model). spec: the embedded spec, if any.
    labels_from: where the labels came from, for messages and ``doctor``.
    normalization: how pixels become the model's input (see :func:`find_normalization`)."""

    path: Path
    labels: tuple[str, ...]
    head: str | None
    spec: ModelSpec | None
    labels_from: str
    normalization: Normalization = RAW_PIXELS


#: A foreign model with no normalisation anywhere: fed raw pixels, and warned about.
UNKNOWN_NORMALIZATION = Normalization(0.0, 1.0, "none found (raw pixels 0..255)")


def find_normalization(path: Path, spec: ModelSpec | None, override: Normalization | None) -> Normalization:
    """--input-mean/--input-std, else an edgecls spec (raw pixels: the 1/255 is in the graph),
    else the TFLite metadata's NormalizationOptions (Model Maker, MediaPipe, tflite-support),
    else none (:data:`UNKNOWN_NORMALIZATION`)."""
    if override is not None:
        if override.std == 0.0:
            raise SpecError(f"--input-std must not be 0, got {override.std}")
        return override
    if spec is not None:
        return RAW_PIXELS
    found = read_normalization(Path(path).read_bytes())
    if found is None:
        return UNKNOWN_NORMALIZATION
    mean, std = found
    if len(set(mean)) != 1 or len(set(std)) != 1 or std[0] == 0.0:
        raise SpecError(
            f"{path}: its metadata normalises each channel differently (mean {list(mean)}, std {list(std)}), "
            "which edgecls does not apply: pass one --input-mean and --input-std"
        )
    return Normalization(mean[0], std[0], "TFLite metadata")


def input_normalization(options: Any) -> Normalization | None:
    """--input-mean/--input-std from run/bench options (None when neither was given)."""
    mean, std = getattr(options, "input_mean", None), getattr(options, "input_std", None)
    if mean is None and std is None:
        return None
    return Normalization(0.0 if mean is None else float(mean), 1.0 if std is None else float(std),
                         "--input-mean/--input-std")


def normalization_warning(info: ModelInfo, input: TensorInfo) -> str | None:
    """A line for a model whose input is not raw pixels as they are and that says nothing about
    its normalisation: feeding it 0..255 may be wrong without an error anywhere."""
    if info.normalization is not UNKNOWN_NORMALIZATION or identity_input(input):
        return None
    kind = "float" if not input.quantized else f"quantized (scale {input.scale:.6g}, zero point {input.zero_point})"
    return (f"{info.path.name} has a {kind} input and no normalisation in its metadata: it is fed raw pixels "
            "0..255; if it was trained on another range, pass --input-mean and --input-std "
            "(for inputs in [-1, 1]: --input-mean 127.5 --input-std 127.5)")


def read_model_info(path: Path, labels: Path | None = None, normalization: Normalization | None = None) -> ModelInfo:
    """Check the file is TFLite and find its labels: embedded, ``--labels``, or labels.txt beside it.
    ``normalization`` is --input-mean/--input-std, if given (see :func:`find_normalization`)."""
    path = Path(path)
    check_tflite(path)
    spec, embedded = read_embedded(path)
    if spec is not None and spec.colour_order != "rgb":
        raise SpecError(f"{path}: the spec asks for {spec.colour_order} input; the device runtime feeds RGB: re-convert the model")
    norm = find_normalization(path, spec, normalization)
    if labels is not None:
        names = read_labels(labels)
        return ModelInfo(path, names, spec.head if spec else None, spec, str(labels), norm)
    if embedded is not None:
        return ModelInfo(path, embedded, spec.head if spec else None, spec, f"{path} (embedded)", norm)
    if spec is not None:
        return ModelInfo(path, spec.labels, spec.head, spec, f"{path} (embedded spec)", norm)
    beside = path.with_name(LABELS_BESIDE)
    if not beside.is_file():
        raise SpecError(
            f"{path} carries no labels and there is no {beside}: convert with 'edgecls convert' "
            "or put a labels.txt (one label a line) beside the model"
        )
    return ModelInfo(path, read_labels(beside), None, None, str(beside), norm)


def check_against_io(info: ModelInfo, input: TensorInfo, output: TensorInfo) -> ModelInfo:
    """Refuse an input that is not 1xHxWx3 (square) or labels that do not match the outputs.

    Returns the info with its head settled (a plain model: 1 output unit -> sigmoid).
    """
    shape = input.shape
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or shape[1] != shape[2] or shape[1] < 1:
        raise ModelError(
            f"{info.path} takes input of shape {'x'.join(map(str, shape))}: the device runtime feeds "
            "1xHxWx3 square RGB images (an edgecls model takes 1x64x64x3)"
        )
    if input.dtype not in INPUT_DTYPES:
        raise ModelError(f"{info.path} takes {input.dtype} input: expected uint8, int8 or float32")
    if info.spec is not None and info.spec.input_size != shape[1]:
        raise SpecError(f"{info.path}: the spec says {info.spec.input_size}x{info.spec.input_size} input, the model takes {shape[1]}x{shape[2]}")
    units = int(output.shape[-1]) if output.shape else 0
    if len(output.shape) != 2 or output.shape[0] != 1 or units < 1:
        raise ModelError(f"{info.path} has output shape {'x'.join(map(str, output.shape))}: expected 1xK class scores")
    head = info.head or ("sigmoid" if units == 1 else "softmax")
    want = 1 if head == "sigmoid" else len(info.labels)
    if head == "sigmoid" and units == 2:  # a converted sigmoid head gives [1 - p, p]
        want = 2
    if units != want or (head == "sigmoid" and len(info.labels) != 2):
        raise SpecError(
            f"{len(info.labels)} labels from {info.labels_from} do not match the model's {units} output"
            f"{'s' if units != 1 else ''} ({head} head): "
            + ("a 1-unit sigmoid head needs exactly 2 labels" if head == "sigmoid" else f"give {units} labels")
        )
    return ModelInfo(info.path, info.labels, head, info.spec, info.labels_from, info.normalization)

