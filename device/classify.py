"""One frame -> model tensor -> prediction: the preprocess, invoke and postprocess stages.

Preprocessing is :func:`edgecls.preprocess.to_model_input`, the same function training
used; the frame's colour order comes from its source. Encoding the input tensor and
decoding the output (dequantize, sigmoid or softmax head, top-k) is :mod:`edgecls.tensorio`,
the code host parity and the field check run too.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from edgecls.errors import DataError
from edgecls.preprocess import to_model_input
from edgecls.tensorio import dequantize as dequantize  # re-exported: the field check's name
from edgecls.tensorio import make_input_encoder, make_output_decoder, top_k

from .backends import Backend
from .model import ModelInfo
from .results import UNKNOWN, Frame, Prediction


@dataclass(frozen=True)
class PostOptions:
    """top_k: how many (label, probability) pairs to report. threshold: a top score under
    this is reported as "unknown". smooth: average probabilities over the last N frames."""

    top_k: int = 1
    threshold: float = 0.0
    smooth: int = 1

    def validate(self) -> None:
        if self.top_k < 1:
            raise DataError(f"--top-k must be at least 1, got {self.top_k}")
        if not 0.0 <= self.threshold <= 1.0:
            raise DataError(f"--threshold must be between 0 and 1, got {self.threshold}")
        if self.smooth < 1:
            raise DataError(f"--smooth must be at least 1 frame, got {self.smooth}")


class Classifier:
    """Runs one frame through preprocess -> backend -> postprocess, timing each stage."""

    def __init__(self, model: ModelInfo, backend: Backend, options: PostOptions) -> None:
        options.validate()
        assert model.head is not None, "check_against_io settles the head"
        self.model = model
        self.backend = backend
        self.options = options
        self.size = backend.input.shape[1]
        self._encode = make_input_encoder(backend.input, model.normalization)
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
        order = top_k(values, self.options.top_k)
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
