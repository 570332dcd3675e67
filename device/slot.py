"""The classifier in use, swappable between two frames (shared spec: _notes/SLOT.md).

``cmd/reload`` (and a gated update) open the new model on their own thread, then
:meth:`ClassifierSlot.swap` takes the lock the frame loop holds while it classifies, so the
swap lands between two frames and the camera never stops. The caller closes the old backend
after the swap returns. A new classifier has no smoothing history: that is the reset.
"""

from __future__ import annotations

import threading

import numpy as np

from .backends import Backend
from .classify import Classifier
from .model import ModelInfo
from .results import Frame, Prediction

Triple = tuple[ModelInfo, Backend, Classifier]


class ClassifierSlot:
    def __init__(self, info: ModelInfo, backend: Backend, classifier: Classifier) -> None:
        self._lock = threading.Lock()
        self._current: Triple = (info, backend, classifier)
        #: Bumped on every swap: a sink can tell the model changed.
        self.generation = 0

    @property
    def current(self) -> Triple:
        return self._current

    def classify(self, frame: Frame) -> tuple[np.ndarray, Prediction, tuple[float, float, float]]:
        with self._lock:
            return self._current[2].classify(frame)

    def reset(self) -> None:
        with self._lock:
            self._current[2].reset()

    def swap(self, info: ModelInfo, backend: Backend, classifier: Classifier) -> Triple:
        with self._lock:
            old, self._current = self._current, (info, backend, classifier)
            self.generation += 1
        return old

    def close(self) -> None:
        self._current[1].close()
