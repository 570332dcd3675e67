"""The preview stream: the latest frame, annotated and JPEG-encoded once, shared by every viewer.

The loop thread only hands over a reference (:meth:`Preview.offer`, a pointer store and an
event). A thread of its own encodes, and only while someone watches: at most once per
classified frame and at most ``max_fps`` times a second, whatever the number of viewers.
Each viewer waits for the next encoded frame and takes the newest one when it is ready
again, so a slow client misses frames instead of queueing them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator

import cv2
import numpy as np

from edgecls.device.overlay import draw_label
from edgecls.device.results import Frame, FrameStats, Prediction

#: Preview frames per second at most: a browser needs no more, and each costs an encode.
PREVIEW_FPS = 15.0
#: Wider frames are shrunk to this before encoding (a Pi's uplink, and the encode cost).
PREVIEW_WIDTH = 640
JPEG_QUALITY = 75

Latest = tuple[Frame, Prediction, FrameStats]


def annotate(frame: Frame, prediction: Prediction, stats: FrameStats, width: int = PREVIEW_WIDTH) -> np.ndarray:
    """A BGR copy of the frame (at most ``width`` wide) with label, score and fps drawn on it."""
    image = frame.image
    h, w = image.shape[:2]
    if w > width:
        image = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif frame.colour == "rgb":
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    else:
        image = image.copy()
    return draw_label(image, prediction, stats)


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
        raise RuntimeError("OpenCV could not encode the preview frame")
    return buf.tobytes()


class Preview:
    """The latest result (set by the loop) and its encoded JPEG (read by viewers)."""

    def __init__(self, max_fps: float = PREVIEW_FPS) -> None:
        self.min_interval = 1.0 / max_fps
        self.latest: Latest | None = None
        self.encoded = 0  # JPEGs encoded so far (tests and the benchmark read it)
        self._fresh = threading.Event()
        self._wanted = threading.Event()
        self._cond = threading.Condition()
        self._jpeg = b""
        self._seq = 0
        self._viewers = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="edgecls-preview", daemon=True)
        self._thread.start()

    @property
    def viewers(self) -> int:
        return self._viewers

    def offer(self, frame: Frame, prediction: Prediction, stats: FrameStats) -> None:
        """Loop thread: keep a reference to the newest result. Nothing is copied or encoded here."""
        self.latest = (frame, prediction, stats)
        self._fresh.set()

    def _run(self) -> None:
        last = 0.0
        while not self._closed:
            if not self._wanted.wait(0.5) or not self._fresh.wait(0.5):
                continue
            wait = last + self.min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._fresh.clear()
            latest = self.latest
            if latest is None or self._closed:
                continue
            last = time.monotonic()
            jpeg = encode_jpeg(annotate(*latest))
            with self._cond:
                self._jpeg = jpeg
                self._seq += 1
                self.encoded += 1
                self._cond.notify_all()

    def admit(self, limit: int) -> bool:
        """Count one more viewer if fewer than ``limit`` watch: checked and taken under one
        lock, so 200 clients arriving at once cannot all pass the check before any counts."""
        with self._cond:
            if self._viewers >= limit:
                return False
            self._viewers += 1
            self._wanted.set()
            return True

    def release(self) -> None:
        """The viewer :meth:`admit` counted has gone."""
        with self._cond:
            self._viewers -= 1
            if self._viewers == 0:
                self._wanted.clear()

    def frames(self, idle_timeout: float = 1.0, *, counted: bool = True) -> Generator[bytes | None, None, None]:
        """Each newly encoded JPEG for one viewer, newest only; None when nothing new came
        within ``idle_timeout`` (the caller may send a keep-alive). Ends when closed.
        ``counted=False``: the caller already :meth:`admit`-ted this viewer and releases it."""
        if counted:
            with self._cond:
                self._viewers += 1
                self._wanted.set()
        seen = 0

        def ready() -> bool:
            return self._closed or self._seq != seen

        try:
            while True:
                with self._cond:
                    self._cond.wait_for(ready, idle_timeout)
                    if self._closed:
                        return
                    fresh = self._seq != seen
                    seen, jpeg = self._seq, self._jpeg
                yield jpeg if fresh else None
        finally:
            if counted:
                self.release()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._wanted.set()
        self._fresh.set()
        self._thread.join(2)
