"""The running classifier, replaceable between two frames (the spec is _notes/SLOT.md).

The loop calls :meth:`ClassifierSlot.classify` once a frame; an update (the gate, a
reload) calls :meth:`ClassifierSlot.swap` from another thread. Both take one lock, so a
swap lands between two frames: the frame in hand finishes on the old model, the next one
runs on the new, and the camera never stops. The lock is uncontended except during the
swap itself (a pointer assignment), so a frame pays for one acquire.

A swap can be put on probation (:meth:`ClassifierSlot.swap` with ``probation=True``):
the old triple is kept open, and if the new model raises on a frame the slot puts the
old one back at once, classifies that frame with it (no result is lost) and tells the
``on_error`` callback, which records the rollback in the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .backends import Backend
from .classify import Classifier
from .model import ModelInfo
from .results import Frame, ModelRef, Prediction

log = logging.getLogger("edgecls.device")

#: Classification timestamps kept for the per-model frame rate (a few seconds at camera speed).
RATE_WINDOW = 300


class Loaded(NamedTuple):
    """One opened model: what :func:`.loop.open_classifier` returns, plus who it is."""

    info: ModelInfo
    backend: Backend
    classifier: Classifier
    ref: ModelRef | None = None


class ClassifierSlot:
    """Holds the current :class:`Loaded`; classify and swap under one lock."""

    def __init__(self, info: ModelInfo, backend: Backend, classifier: Classifier, ref: ModelRef | None = None) -> None:
        self._lock = threading.Lock()
        self._current = Loaded(info, backend, classifier, ref)
        self._fallback: Loaded | None = None
        #: Called (on the loop thread) with (failed, restored, error) when a model on probation raised.
        self.on_error: Callable[[Loaded, Loaded, BaseException], None] | None = None
        #: The model that classified the last frame (read on the loop thread after classify).
        self.last_model: ModelRef | None = ref
        self.errors = 0
        #: Bumped whenever the current model changes (swap, revert, a fallback): a sink that
        #: caches what it knows of the model (its sha256, say) can tell it is stale.
        self.generation = 0
        self.stamps: deque[float] = deque(maxlen=RATE_WINDOW)

    @property
    def current(self) -> Loaded:
        return self._current

    def classify(self, frame: Frame) -> tuple[np.ndarray, Prediction, tuple[float, float, float]]:
        with self._lock:
            loaded = self._current
            try:
                out = loaded.classifier.classify(frame)
            except Exception as err:
                if self._fallback is None:
                    raise
                failed, restored = loaded, self._fallback
                self._current, self._fallback = restored, None
                self.generation += 1
                self.errors += 1
                log.warning("model %s failed on a frame (%s): back to %s", _name(failed), err, _name(restored))
                loaded = restored
                out = loaded.classifier.classify(frame)
                if self.on_error is not None:
                    self.on_error(failed, restored, err)
            self.last_model = loaded.ref
            self.stamps.append(time.monotonic())
            return out

    def reset(self) -> None:
        with self._lock:
            self._current.classifier.reset()

    def swap(self, info: ModelInfo, backend: Backend, classifier: Classifier, ref: ModelRef | None = None,
             *, probation: bool = False) -> Loaded:
        """Make the new model current between two frames; return the old one.

        Without probation the caller closes the old backend. With it, the slot keeps the
        old one as the fallback until :meth:`confirm` or :meth:`revert` (the returned
        triple must then not be closed by the caller)."""
        new = Loaded(info, backend, classifier, ref)
        with self._lock:
            old, self._current = self._current, new
            self.generation += 1
            if probation:
                self._fallback = old
        return old

    def confirm(self) -> Loaded | None:
        """Probation passed: forget (and close) the fallback."""
        with self._lock:
            old, self._fallback = self._fallback, None
        if old is not None:
            old.backend.close()
        return old

    def revert(self) -> Loaded | None:
        """Probation failed: the fallback becomes current again; the failed model is closed."""
        with self._lock:
            if self._fallback is None:
                return None
            failed, self._current, self._fallback = self._current, self._fallback, None
            self.generation += 1
        failed.backend.close()
        return failed

    @property
    def on_probation(self) -> bool:
        return self._fallback is not None

    def rate_since(self, since: float) -> tuple[int, float]:
        """Frames classified since ``since`` (monotonic) and their rate per second."""
        stamps = [t for t in list(self.stamps) if t >= since]
        if len(stamps) < 2:
            return len(stamps), 0.0
        return len(stamps), (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-9)

    def close(self) -> None:
        with self._lock:
            current, fallback = self._current, self._fallback
            self._fallback = None
        current.backend.close()
        if fallback is not None:
            fallback.backend.close()


def _name(loaded: Loaded) -> str:
    return loaded.ref.short if loaded.ref is not None else loaded.info.path.name
