"""Tensor I/O of a TFLite classifier: the one place its tensors are described, fed and read.

In the spirit of pycoral's ``adapters/common.py``: small pure functions over a duck-typed
interpreter (anything with ``get_input_details`` and ``get_output_details``: ai-edge-litert,
tflite-runtime, a delegate-backed one). The device classifier, the field check, host parity
and the conversion checks all call these, so the host checks run the same arithmetic the
device runs. Loading and invoking is :class:`edgecls.litert.LiteRTModel`, one class for all.

Quantization is read from the tensor, never assumed: ``real = scale * (q - zero_point)``,
a scale of 0 means a float tensor. Pixels become the model's "real" input as
``(pixel - mean) / std`` (:class:`Normalization`; edgecls models carry the 1/255 inside the
graph, so theirs is mean 0, std 1).

Speed: a frame goes through :func:`make_input_encoder` and :func:`make_output_decoder`,
which settle every decision once per model; a head of a handful of values is decoded in
plain Python, where numpy's per-call cost outweighs the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecls.heads import probabilities

#: Outputs up to this many values are decoded in plain Python (see the module docstring).
SMALL_OUTPUT = 64


@dataclass(frozen=True)
class TensorInfo:
    """Shape, dtype and affine quantization of one tensor (scale 0 means not quantized)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> TensorInfo:
        scale, zero_point = details.get("quantization", (0.0, 0))
        return cls(tuple(int(x) for x in details["shape"]), np.dtype(details["dtype"]), float(scale), int(zero_point))

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and self.dtype != np.float32

    def as_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype.name, "scale": self.scale, "zero_point": self.zero_point}


@dataclass(frozen=True)
class Normalization:
    """How pixels 0..255 become the model's real-valued input: ``(pixel - mean) / std``.

    source: where it came from ("edgecls spec", "TFLite metadata", "--input-mean/--input-std",
    "none"), for ``doctor`` and messages.
    """

    mean: float = 0.0
    std: float = 1.0
    source: str = "edgecls spec"

    @property
    def identity(self) -> bool:
        return self.mean == 0.0 and self.std == 1.0


#: What an edgecls model expects: raw pixels, the rescaling is inside the graph.
RAW_PIXELS = Normalization()


def input_info(interpreter: Any) -> TensorInfo:
    return TensorInfo.from_details(interpreter.get_input_details()[0])


def output_info(interpreter: Any) -> TensorInfo:
    return TensorInfo.from_details(interpreter.get_output_details()[0])


def identity_input(info: TensorInfo, norm: Normalization = RAW_PIXELS) -> bool:
    """True when uint8 pixels are the input tensor as they are (pycoral's fast path)."""
    if info.dtype != np.uint8:
        return False
    scale = info.scale or 1.0
    return abs(scale * norm.std - 1.0) < 1e-5 and abs(norm.mean - info.zero_point) < 1e-5


def make_input_encoder(info: TensorInfo, norm: Normalization = RAW_PIXELS) -> Callable[[np.ndarray], np.ndarray]:
    """A function uint8 HxWx3 RGB -> the model's 1xHxWx3 input tensor."""
    if identity_input(info, norm):
        return lambda x: x[None]
    mean, std = norm.mean, norm.std
    if info.dtype == np.float32:
        if norm.identity:
            return lambda x: x[None].astype(np.float32)
        return lambda x: ((x[None].astype(np.float32) - np.float32(mean)) / np.float32(std)).astype(np.float32)
    lo, hi = np.iinfo(info.dtype).min, np.iinfo(info.dtype).max
    scale, zp, dtype = info.scale or 1.0, info.zero_point, info.dtype
    if norm.identity:
        return lambda x: np.clip(np.rint(x[None] / scale) + zp, lo, hi).astype(dtype)
    step = scale * std
    return lambda x: np.clip(np.rint((x[None] - mean) / step) + zp, lo, hi).astype(dtype)


def dequantize(raw: np.ndarray, info: TensorInfo) -> np.ndarray:
    """Raw output tensor -> float64 real values."""
    if info.scale == 0.0 or raw.dtype == np.float32:
        return raw.astype(np.float64)
    return (raw.astype(np.float64) - info.zero_point) * info.scale


def make_output_decoder(info: TensorInfo, head: str) -> Callable[[np.ndarray], list[float]]:
    """A function raw output tensor -> one probability per label, as plain floats.

    The same float64 arithmetic as :func:`dequantize` and
    :func:`edgecls.heads.probabilities`; everything that does not change per frame is
    settled here.
    """
    if int(np.prod(info.shape)) > SMALL_OUTPUT:
        return lambda raw: probabilities(dequantize(raw, info)[0], head).tolist()  # type: ignore[no-any-return]
    quantized = info.scale != 0.0 and info.dtype != np.float32
    zero, scale = info.zero_point, info.scale

    def values(raw: np.ndarray) -> list[float]:
        plain: list[float] = raw.ravel().tolist()
        return [(v - zero) * scale for v in plain] if quantized else plain

    if head == "sigmoid" and int(np.prod(info.shape)) == 1:
        def sigmoid(raw: np.ndarray) -> list[float]:
            p = min(max(float(values(raw)[0]), 0.0), 1.0)
            return [1.0 - p, p]
        return sigmoid
    return lambda raw: [float(v) for v in values(raw)]


def top_k(values: list[float], k: int) -> list[int]:
    """Indices of the k largest values, best first (ties go to the lower index, as heads.top1)."""
    if k == 1:
        return [max(range(len(values)), key=values.__getitem__)]
    return np.argsort(-np.asarray(values), kind="stable")[: min(k, len(values))].tolist()  # type: ignore[no-any-return]

