"""One frame -> model tensor -> prediction: the preprocess, invoke and postprocess stages.

Preprocessing is :func:`edgecls.preprocess.to_model_input`, the same function training
used; the frame's colour order comes from its source. The input is fed as uint8 when the
model's input quantization is the identity (scale 1, zero point 0) and quantized
otherwise; outputs are dequantized, then :func:`edgecls.heads.probabilities` turns sigmoid
and softmax heads alike into one probability per label.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgecls.errors import DataError
from edgecls.heads import probabilities
from edgecls.preprocess import to_model_input

from .backends import Backend, TensorInfo
from .model import ModelInfo
from .results import UNKNOWN, Frame, Prediction


@dataclass(frozen=True)
class PostOptions:
    """top_k: how many (label, probability) pairs to report. threshold: a top score under
    this is reported as "unknown". smooth: average probabilities over the last N frames."""

    top_k: int = 1
    threshold: float = 0.0
    smooth: int = 1

    def validate(self, num_labels: int) -> None:
        if self.top_k < 1:
            raise DataError(f"--top-k must be at least 1, got {self.top_k}")
        if not 0.0 <= self.threshold <= 1.0:
            raise DataError(f"--threshold must be between 0 and 1, got {self.threshold}")
        if self.smooth < 1:
            raise DataError(f"--smooth must be at least 1 frame, got {self.smooth}")


def make_input_encoder(info: TensorInfo) -> Callable[[np.ndarray], np.ndarray]:
    """A function uint8 HxWx3 RGB -> the model's 1xHxWx3 input tensor."""
    identity = info.dtype == np.uint8 and (info.scale in (0.0, 1.0)) and info.zero_point == 0
    if identity:
        return lambda x: x[None]
    if info.dtype == np.float32:
        return lambda x: x[None].astype(np.float32)
    lo, hi = np.iinfo(info.dtype).min, np.iinfo(info.dtype).max
    scale, zp, dtype = info.scale or 1.0, info.zero_point, info.dtype
    return lambda x: np.clip(np.rint(x[None] / scale) + zp, lo, hi).astype(dtype)


def dequantize(raw: np.ndarray, info: TensorInfo) -> np.ndarray:
    if info.scale == 0.0 or raw.dtype == np.float32:
        return raw.astype(np.float64)
    return (raw.astype(np.float64) - info.zero_point) * info.scale


def make_output_decoder(info: TensorInfo, head: str) -> Callable[[np.ndarray], list[float]]:
    """A function raw output tensor -> one probability per label, as plain floats.

    The same float64 arithmetic as :func:`dequantize` and
    :func:`edgecls.heads.probabilities`. A head has a handful of values, where numpy's
    per-call cost outweighs the arithmetic, so they are decoded in plain Python; a large
    output keeps numpy. Everything that does not change per frame is settled here.
    """
    if int(np.prod(info.shape)) > 64:
        return lambda raw: probabilities(dequantize(raw, info)[0], head).tolist()  # type: ignore[no-any-return]
    quantized = info.scale != 0.0 and info.dtype != np.float32
    zero, scale = info.zero_point, info.scale

    def values(raw: np.ndarray) -> list[float]:
        plain: list[float] = raw.ravel().tolist()
        return [(v - zero) * scale for v in plain] if quantized else plain

    if head == "sigmoid":
        def sigmoid(raw: np.ndarray) -> list[float]:
            p = min(max(float(values(raw)[0]), 0.0), 1.0)
            return [1.0 - p, p]
        return sigmoid
    return lambda raw: [float(v) for v in values(raw)]


class Classifier:
    """Runs one frame through preprocess -> backend -> postprocess, timing each stage."""

    def __init__(self, model: ModelInfo, backend: Backend, options: PostOptions) -> None:
        options.validate(len(model.labels))
        assert model.head is not None, "check_against_io settles the head"
        self.model = model
        self.backend = backend
        self.options = options
        self.size = backend.input.shape[1]
        self._encode = make_input_encoder(backend.input)
        self._decode = make_output_decoder(backend.output, model.head)
        self._recent: deque[list[float]] = deque(maxlen=options.smooth)

    def preprocess(self, frame: Frame) -> np.ndarray:
        return to_model_input(frame.image, frame.colour, self.size)

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        return self.backend.invoke(self._encode(tensor))

    def probabilities(self, raw: np.ndarray) -> list[float]:
        """One probability per label, averaged over the last ``smooth`` frames."""
        probs = self._decode(raw)
        if self.options.smooth > 1:
            self._recent.append(probs)
            probs = np.mean(self._recent, axis=0).tolist()
        return probs

    def postprocess(self, raw: np.ndarray) -> Prediction:
        values = self.probabilities(raw)
        labels = self.model.labels
        if self.options.top_k == 1:
            order = [max(range(len(values)), key=values.__getitem__)]  # ties go to the lower index, as heads.top1
        else:
            order = np.argsort(-np.asarray(values), kind="stable")[: min(self.options.top_k, len(labels))].tolist()
        best = order[0]
        score = values[best]
        top = tuple((labels[i], values[i]) for i in order)
        if score < self.options.threshold:
            return Prediction(UNKNOWN, -1, score, tuple(values), top)
        return Prediction(labels[best], best, score, tuple(values), top)

    def reset(self) -> None:
        """Forget the smoothing window (after a source reconnects, old frames say nothing)."""
        self._recent.clear()

    def classify(self, frame: Frame) -> tuple[np.ndarray, Prediction, tuple[float, float, float]]:
        """The tensor, the prediction and (preprocess, invoke, postprocess) seconds."""
        t0 = time.perf_counter()
        tensor = self.preprocess(frame)
        t1 = time.perf_counter()
        raw = self.invoke(tensor)
        t2 = time.perf_counter()
        prediction = self.postprocess(raw)
        t3 = time.perf_counter()
        return tensor, prediction, (t1 - t0, t2 - t1, t3 - t2)
