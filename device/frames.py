"""``edgecls run --save-frames DIR``: keep sampled live frames for ``edgecls field replay``.

Every ``--save-every`` N-th classified frame is written as three files named
``<run>-<frame>``: the original image as PNG (lossless, BGR as OpenCV writes it), the
preprocessed model input as ``.npy``, and a ``.json`` with the device's prediction, score,
probabilities, frame index and capture time. ``session.json`` names the model (sha256),
labels and each run that wrote into the folder.

Crash safety: each file is written to a temp name, fsynced and renamed, and the ``.json``
goes last, so a frame with a ``.json`` is complete; a crash or kill loses at most the frames
still queued. Encoding and fsync run on a writer thread; when the disk falls behind, the
loop waits for it at most ``QUEUE_WAIT_S`` per frame, then skips saving that frame
(counted and reported), so a dying SD card cannot stall classification.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecls.bundle import file_sha256
from edgecls.errors import DataError, OutputError
from edgecls.frameset import FRAME_NAME as FRAME_NAME  # the layout lives in the core
from edgecls.frameset import FRAMES_FORMAT, FRAMES_VERSION, SESSION_FILE
from edgecls.fsutil import atomic_write_bytes, atomic_write_json, npy_bytes

from .model import ModelInfo
from .options import DEFAULT_SAVE_EVERY
from .results import Frame, FrameStats, Prediction

log = logging.getLogger("edgecls.device")

#: Frames waiting for the writer, and how long the loop waits when it is full.
QUEUE_FRAMES = 32
QUEUE_WAIT_S = 0.5


def _bgr(image: np.ndarray, colour: str) -> np.ndarray:
    """The frame as OpenCV writes files (BGR); a permutation, so nothing is lost."""
    if colour == "rgb" and image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    return image


@dataclass(frozen=True)
class FrameJob:
    """One frame on its way to disk in the saved-frames layout (``--save-frames``, ``--capture``)."""

    name: str
    image: np.ndarray
    tensor: np.ndarray
    record: dict[str, Any]

    @classmethod
    def make(cls, run_id: str, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats,
             **extra: Any) -> FrameJob:
        """Copies of the frame (BGR, for PNG) and tensor, and the record that names them."""
        name = f"{run_id}-{stats.frame:06d}"
        h, w = frame.image.shape[:2]
        record = {
            "frame": stats.frame, "source_index": stats.source_index, "ts": round(stats.ts, 6), "run": run_id,
            "image": f"{name}.png", "tensor": f"{name}.npy", "image_size": [int(w), int(h)],
            "label": prediction.label, "index": prediction.index, "score": prediction.score,
            "probabilities": list(prediction.probabilities), **extra,
        }
        return cls(name, _bgr(frame.image, frame.colour).copy(), np.array(tensor, copy=True), record)

    def files(self) -> list[tuple[str, bytes]]:
        """The three files in write order: the ``.json`` last, so its presence marks the frame complete."""
        ok, png = cv2.imencode(".png", self.image)
        if not ok:
            raise OSError(f"OpenCV could not encode frame {self.name} as PNG")
        return [(f"{self.name}.png", png.tobytes()), (f"{self.name}.npy", npy_bytes(self.tensor)),
                (f"{self.name}.json", json.dumps(self.record).encode("utf-8"))]


class FrameSaver:
    """The sink: samples frames and hands them to the writer thread."""

    def __init__(self, folder: Path, model: ModelInfo, *, every: int = DEFAULT_SAVE_EVERY, source: str = "",
                 smooth: int = 1) -> None:
        if every < 1:
            raise DataError(f"--save-every must be at least 1, got {every}")
        self.folder = Path(folder)
        self.every = every
        self.smooth = smooth
        self.run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self._open_session(model, source)
        self.saved = 0
        self.skipped = 0
        self._error: str | None = None
        self._queue: queue.Queue[FrameJob | None] = queue.Queue(QUEUE_FRAMES)
        self._thread = threading.Thread(target=self._write_all, name="edgecls-save-frames", daemon=True)
        self._thread.start()

    def _open_session(self, model: ModelInfo, source: str) -> None:
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"--save-frames {folder} exists and is not a folder: choose a folder path")
        sha = file_sha256(model.path)
        session_path = folder / SESSION_FILE
        runs: list[dict[str, Any]] = []
        if session_path.is_file():
            try:
                old = json.loads(session_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as err:
                raise OutputError(f"--save-frames {folder} has an unreadable {SESSION_FILE} ({err}): choose a new folder") from err
            if old.get("model_sha256") != sha or old.get("labels") != list(model.labels):
                raise OutputError(
                    f"--save-frames {folder} holds frames of another model (sha256 {str(old.get('model_sha256'))[:16]}, "
                    f"this one {sha[:16]}): choose a new folder"
                )
            runs = list(old.get("runs") or [])
            if any(r.get("run") == self.run_id for r in runs):
                self.run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f".{time.time_ns() % 10**6:06d}"
        elif folder.is_dir() and any(folder.iterdir()):
            raise OutputError(f"--save-frames {folder} exists and holds other files: choose a new or empty folder")
        runs.append({"run": self.run_id, "started": time.time(), "source": source, "save_every": self.every,
                     "smooth": self.smooth})
        try:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(session_path, {
                "format": FRAMES_FORMAT, "version": FRAMES_VERSION, "model": model.path.name, "model_sha256": sha,
                "labels": list(model.labels), "head": model.head, "runs": runs,
            })
        except OSError as err:
            raise OutputError(f"cannot write --save-frames {folder}: {err.strerror}; choose a writable folder") from err

    def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None:
        if self._error is not None:
            raise OutputError(f"cannot write --save-frames {self.folder}: {self._error}")
        if stats.frame % self.every:
            return
        try:
            self._queue.put(FrameJob.make(self.run_id, frame, tensor, prediction, stats), timeout=QUEUE_WAIT_S)
        except queue.Full:
            self.skipped += 1

    def _write_all(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._error is not None:
                continue
            try:
                self._write(job)
                self.saved += 1
            except (OSError, OutputError) as err:
                self._error = str(getattr(err, "strerror", None) or err)

    def _write(self, job: FrameJob) -> None:
        for name, data in job.files():
            atomic_write_bytes(self.folder / name, data)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._queue.put(None)
        self._thread.join()
        note = f" ({self.skipped} skipped: the disk did not keep up)" if self.skipped else ""
        log.info("saved %d frames to %s%s", self.saved, self.folder, note)
        if self._error is not None:
            log.error("saving frames stopped: %s", self._error)
