"""``edgecls collect``: training images taken by the camera that will classify them.

Frames from any source (camera, picamera2, stream, file, folder) are saved as lossless
PNG originals, never resized, into ``OUT/LABEL/``, the class-folder layout
``edgecls train`` reads. Near-duplicates of recent saves are skipped with the same test
as ``--capture`` (:mod:`.dedupe`), so holding the camera still does not fill the class
with copies; ``--every S`` spaces saves in time. Headless by design (works over SSH);
``--serve`` shows the label being collected and the running count on the preview page.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecls.errors import DataError, OutputError
from edgecls.fsutil import atomic_write_bytes
from edgecls.preprocess import INPUT_SIZE, to_model_input

from .dedupe import Deduper, fingerprint
from .frames import _bgr
from .model import ModelInfo
from .results import FrameStats, LoopStats, Prediction, StageTimings

log = logging.getLogger("edgecls.device")

LABEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


@dataclass(frozen=True)
class CollectOptions:
    """source: as ``edgecls run --source``. label: the class folder. out: the dataset folder.
    count: stop after this many saves (None: until the source ends or Ctrl-C).
    every_s: at least this many seconds between saves. serve: ``[HOST:]PORT`` for the preview."""

    source: str
    label: str
    out: Path
    count: int | None = None
    every_s: float = 0.0
    serve: str | None = None
    serve_token: str | None = None
    dedupe: bool = True


@dataclass(frozen=True)
class CollectResult:
    folder: Path
    saved: int
    duplicates: int
    frames: int


class _Progress:
    """What the preview's /status shows while collecting."""

    def __init__(self, label: str) -> None:
        self.label, self.saved = label, 0

    def state(self) -> dict[str, Any]:
        return {"label": self.label, "saved": self.saved}

    def gauges(self) -> list[tuple[str, str, dict[str, str], float]]:
        return [("edgecls_collect_saved", "Images saved by edgecls collect.", {"label": self.label}, float(self.saved))]

    def summary(self) -> str:
        return f"collecting {self.label}: {self.saved} saved"


def collect(options: CollectOptions) -> CollectResult:
    from .loop import start_reader, stop_on_signals
    from .sources import SourceOptions, open_source, parse_source

    if not LABEL_NAME.match(options.label) or options.label in (".", ".."):
        raise DataError(f"--label {options.label!r} cannot be a folder name: use letters, digits, space, '.', '_' or '-'")
    if options.count is not None and options.count < 1:
        raise DataError(f"--count must be at least 1, got {options.count}")
    if options.every_s < 0:
        raise DataError(f"--every must be 0 or more seconds, got {options.every_s}")
    folder = Path(options.out) / options.label
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".edgecls-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OutputError(f"cannot write {folder}: {err.strerror}; choose a writable --out") from err
    spec = parse_source(options.source)
    source_options = SourceOptions()
    preview = None
    progress = _Progress(options.label)
    if options.serve is not None:
        from .options import RunOptions
        from .serve import open_preview

        info = ModelInfo(Path("collect"), (options.label,), None, None, "edgecls collect")
        preview = open_preview(RunOptions(model=Path("collect"), serve=options.serve, serve_token=options.serve_token),
                               info, str(spec))
        if preview is not None:
            preview.attach({"collect": progress})
    reader = start_reader(open_source(spec, source_options), spec, source_options, realtime=False, read_ahead=True)
    run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    dedupe = Deduper() if options.dedupe else None
    stop = threading.Event()
    frames, last = 0, float("-inf")
    try:
        with stop_on_signals(stop):
            while not stop.is_set() and (options.count is None or progress.saved < options.count):
                frame = reader.next(0.25)
                if frame is None:
                    if reader.finished:
                        break
                    continue
                frames += 1
                now = time.monotonic()
                keep = now - last >= options.every_s
                if keep and dedupe is not None:
                    fp = fingerprint(to_model_input(frame.image, frame.colour, INPUT_SIZE))
                    keep = not dedupe.seen(fp)
                    if keep:
                        dedupe.remember(fp)
                if keep:
                    ok, png = cv2.imencode(".png", _bgr(frame.image, frame.colour))
                    if not ok:
                        raise OutputError(f"OpenCV could not encode a {frame.image.shape} frame as PNG")
                    atomic_write_bytes(folder / f"{options.label}_{run_id}_{progress.saved:05d}.png", png.tobytes())
                    progress.saved += 1
                    last = now
                if preview is not None:
                    caption = f"collecting {options.label}: {progress.saved}"
                    preview.on_result(frame, np.zeros(0, np.uint8),
                                      Prediction(caption, 0, 1.0, (1.0,), ((options.label, 1.0),)),
                                      FrameStats(frames - 1, frame.index, frame.ts, 0.0, StageTimings(0, 0, 0, 0),
                                                 LoopStats(0.0, frames, reader.dropped, reader.reconnects, reader.stalls)))
    finally:
        reader.close()
        if preview is not None:
            preview.close()
    return CollectResult(folder, progress.saved, dedupe.suppressed if dedupe else 0, frames)
