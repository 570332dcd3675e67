"""Frame readers: every frame of a file in order, or only the newest frame of a live source.

Files and folders: :class:`ReadAheadReader` decodes the next frames on a thread while the
loop classifies the current one (a bounded queue, nothing dropped); :class:`DirectReader`
reads on the loop's thread, for ``--realtime`` pacing and for ``edgecls bench``, whose
capture figure is the decode itself.

:class:`LatestFrameReader` keeps one slot. A grab thread reads as fast as the camera
delivers and overwrites the slot; the loop takes whatever is newest, so when inference is
slower than the camera, stale frames are dropped (and counted), never queued.

A supervisor thread watches the grabber. A failed read, frames that stay identical
(a frozen camera or encoder) or no frame at all for ``stall_s`` are a stall: it is logged,
the grabber is abandoned (it releases its capture itself when its read returns, so a
read blocked inside a driver cannot block us), and the source is reopened with
exponential backoff until it answers again. The run never stops because a camera did.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgecls.errors import SourceError

from .results import Frame
from .sources import FrameSource

log = logging.getLogger("edgecls.device")

#: The longest run of identical frames tolerated from a source that keeps looking still.
FROZEN_MAX_S = 60.0


class FrameReader(Protocol):
    finished: bool
    dropped: int
    reconnects: int
    stalls: int

    def next(self, timeout: float) -> Frame | None:
        """The next frame, or None if none came within ``timeout`` (or the source ended:
        then ``finished`` is True)."""
        ...

    def close(self) -> None: ...


#: --realtime plays a folder of images, which has no frame rate of its own, at this rate.
FOLDER_REALTIME_FPS = 30.0


class DirectReader:
    """Every frame of a file or folder source, in order, read on the caller's thread.

    ``realtime`` paces reading at the file's recorded frame rate (a folder at
    FOLDER_REALTIME_FPS), as a camera would deliver it: for watching a recording through
    the live preview, or rehearsing a live setup. Frames are still never skipped.
    """

    dropped = 0
    reconnects = 0
    stalls = 0

    def __init__(self, source: FrameSource, *, realtime: bool = False) -> None:
        self.source = source
        self.finished = False
        self._index = 0
        fps = float(getattr(source, "fps", 0.0) or FOLDER_REALTIME_FPS)
        self._interval = 1.0 / fps if realtime else 0.0
        self._start = 0.0

    def next(self, timeout: float) -> Frame | None:
        if self.finished:
            return None
        if self._interval:
            now = time.monotonic()
            if self._index == 0:
                self._start = now
            wait = self._start + self._index * self._interval - now
            if wait > 0:
                time.sleep(wait)
        image = self.source.read()
        if image is None:
            self.finished = True
            return None
        index, name = source_position(self.source, self._index)
        frame = Frame(image, self.source.colour, index, time.time(), time.monotonic(), name)
        self._index += 1
        return frame

    def close(self) -> None:
        self.source.close()


_END = object()


def source_position(source: FrameSource, counted: int) -> tuple[int, str | None]:
    """The index and file name of the image just read: a folder source says which file it
    was (so a skipped file does not shift the indexes after it); others are counted."""
    index = getattr(source, "index", None)
    name = getattr(source, "name", None)
    return (index if isinstance(index, int) and index >= 0 else counted), (name if isinstance(name, str) else None)


class ReadAheadReader:
    """Every frame of a file or folder source, in order, decoded ahead on a thread of its own.

    Decoding a 640x480 MJPG frame costs about three times its preprocessing and inference
    together, so reading on the loop's thread leaves the other cores idle. Here the next
    frames are decoded while the current one is classified; a queue of ``depth`` frames
    bounds the memory. Nothing is dropped and the order is kept. ``Frame.ts``/``mono`` are
    the moment a frame was decoded, so latencies include any wait in the queue.
    """

    dropped = 0
    reconnects = 0
    stalls = 0

    def __init__(self, source: FrameSource, depth: int = 2) -> None:
        self.source = source
        self.finished = False
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._decode, name=f"read {source.description}", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode(self) -> None:
        index = 0
        try:
            while not self._stop.is_set():
                image = self.source.read()
                if image is None:
                    break
                position, name = source_position(self.source, index)
                if not self._put(Frame(image, self.source.colour, position, time.time(), time.monotonic(), name)):
                    return
                index += 1
        except Exception as err:  # handed to the loop's thread, which raises it there
            self._put(err)
            return
        finally:
            # Released here, on the thread that reads: never under a read in progress.
            self.source.close()
        self._put(_END)

    def next(self, timeout: float) -> Frame | None:
        if self.finished:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self.finished = True
            return None
        if isinstance(item, Exception):
            self.finished = True
            raise item
        assert isinstance(item, Frame)
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


@dataclass(frozen=True)
class ReaderOptions:
    """stall_s: no new frame for this long, or identical frames for this long, is a stall
    (detection lands within 2 s with the defaults). backoff_s/backoff_max_s: first and
    longest wait between reopen attempts. frozen_check: compare frames for freezes."""

    stall_s: float = 1.5
    backoff_s: float = 0.25
    backoff_max_s: float = 4.0
    frozen_check: bool = True


def _signature(image: np.ndarray) -> np.ndarray:
    """A sparse sample of the frame: identical samples over seconds mean a frozen source."""
    return np.array(image[::15, ::15], copy=True)


class _Grabber(threading.Thread):
    """Reads one opened source until it fails, freezes or is abandoned."""

    def __init__(self, source: FrameSource, publish: Callable[[np.ndarray, float, float], None], options: ReaderOptions,
                 frozen_s: float) -> None:
        super().__init__(name=f"grab {source.description}", daemon=True)
        self.source = source
        self.publish = publish
        self.options = options
        self.frozen_s = frozen_s
        self.abandoned = threading.Event()
        self.failure: str | None = None
        self.frozen = False
        self.saw_change = False
        self.last_progress = time.monotonic()

    def run(self) -> None:
        previous: np.ndarray | None = None
        frozen_since: float | None = None
        try:
            while not self.abandoned.is_set():
                image = self.source.read()
                if self.abandoned.is_set():
                    break
                now = time.monotonic()
                if image is None:
                    self.failure = "read failed (the camera or stream stopped delivering)"
                    break
                self.last_progress = now
                if self.options.frozen_check:
                    sig = _signature(image)
                    if previous is not None and np.array_equal(sig, previous):
                        frozen_since = frozen_since or now
                        if now - frozen_since >= self.frozen_s:
                            self.failure = f"frozen: identical frames for {now - frozen_since:.1f} s"
                            self.frozen = True
                            break
                    else:
                        self.saw_change = previous is not None or self.saw_change
                        frozen_since = None
                    previous = sig
                self.publish(image, time.time(), now)
        except Exception as err:  # a driver error is a failed read, not a crash of the run
            self.failure = f"read raised {type(err).__name__}: {err}"
        finally:
            self.source.close()


class LatestFrameReader:
    """The newest frame of a live source, with stall detection and reconnects (see module doc)."""

    def __init__(self, open_source: Callable[[], FrameSource], options: ReaderOptions | None = None) -> None:
        self.options = options or ReaderOptions()
        self._open = open_source
        self.finished = False
        self.dropped = 0
        self.reconnects = 0
        self.stalls = 0
        #: (monotonic time, message) for every stall and reconnect, oldest first.
        self.events: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._index = 0
        self._stop = threading.Event()
        # A scene can be truly still (a black room at night, MJPEG-encoded): if frames are
        # still identical after a reopen, wait twice as long before calling them frozen
        # again (up to a minute), and go back to stall_s once they change.
        self._frozen_s = self.options.stall_s
        # The first open happens here, on the caller's thread: a source that cannot be
        # opened at all is a user error, reported before capture starts.
        source = self._open()
        self.description = source.description
        self.colour = source.colour
        self._grabber = self._start(source)
        self._supervisor = threading.Thread(target=self._supervise, name="reader supervisor", daemon=True)
        self._supervisor.start()

    def _start(self, source: FrameSource) -> _Grabber:
        grabber = _Grabber(source, self._publish, self.options, self._frozen_s)
        grabber.start()
        return grabber

    def _publish(self, image: np.ndarray, ts: float, mono: float) -> None:
        with self._cond:
            if self._slot is not None:
                self.dropped += 1
            self._slot = Frame(image, self.colour, self._index, ts, mono)
            self._index += 1
            self._cond.notify()

    def _event(self, message: str, level: int = logging.WARNING) -> None:
        self.events.append((time.monotonic(), message))
        log.log(level, "%s: %s", self.description, message)

    def _supervise(self) -> None:
        while not self._stop.is_set():
            grabber = self._grabber
            reason = None
            while reason is None and not self._stop.wait(0.05):
                if not grabber.is_alive():
                    reason = grabber.failure or "the grab thread ended"
                elif time.monotonic() - grabber.last_progress > self.options.stall_s:
                    reason = f"no new frame for {time.monotonic() - grabber.last_progress:.1f} s"
            grabber.abandoned.set()
            if self._stop.is_set():
                return
            if grabber.saw_change:
                self._frozen_s = self.options.stall_s
            if grabber.frozen:
                self._frozen_s = min(2 * self._frozen_s, FROZEN_MAX_S)
            self.stalls += 1
            self._event(f"stall detected: {reason}; reopening")
            source = self._reopen()
            if source is None:
                return
            self._grabber = self._start(source)

    def _reopen(self) -> FrameSource | None:
        delay = self.options.backoff_s
        attempt = 0
        while not self._stop.wait(delay if attempt else 0.0):
            attempt += 1
            try:
                source = self._open()
            except SourceError as err:
                self._event(f"reopen attempt {attempt} failed ({err}); next in {delay:.2f} s", logging.INFO)
                delay = min(delay * 2, self.options.backoff_max_s)
                continue
            self.reconnects += 1
            self._event(f"reconnected after {attempt} attempt{'s' if attempt > 1 else ''}")
            return source
        return None

    def next(self, timeout: float) -> Frame | None:
        with self._cond:
            if self._slot is None:
                self._cond.wait(timeout)
            frame, self._slot = self._slot, None
            return frame

    def close(self) -> None:
        self._stop.set()
        self._grabber.abandoned.set()
        self._supervisor.join(timeout=2.0)
        self._grabber.join(timeout=1.0)
        with self._cond:
            self._cond.notify_all()
