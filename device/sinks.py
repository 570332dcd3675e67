"""Where results go. A sink gets every classified frame; the loop knows nothing else about it.

    class Sink(Protocol):
        def on_result(self, frame, tensor, prediction, stats) -> None
        def close(self) -> None            # flush; called once, also on SIGINT/SIGTERM

``frame`` is the captured :class:`.results.Frame` (original image, colour order, capture
time), ``tensor`` the preprocessed 64x64x3 uint8 RGB model input, ``prediction`` a
:class:`.results.Prediction`, ``stats`` a :class:`.results.FrameStats` (frame number,
latency, per-stage timings, fps, dropped, reconnects). A sink must be quick: it runs on
the loop's thread (hand slow work to a thread of its own).

To add one (a web preview, a frame saver): write the class, add its option to
:class:`.options.RunOptions` and ``device/cli.py``, and one factory in :data:`SINKS`
that returns the sink, or None when its option is off. The loop is not edited.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import cv2
import numpy as np

from edgecls.errors import OutputError

from .model import ModelInfo
from .options import RunOptions
from .results import Frame, FrameStats, Prediction, result_record

log = logging.getLogger("edgecls.device")


class Sink(Protocol):
    def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SinkContext:
    """What a sink factory may need besides the options: the model (labels), the event that
    stops the run (a window's close button sets it), and the source's description.

    extras: sinks that report state (the drift monitor, capture) put themselves here by
    name; each has ``state() -> dict`` (/status, MQTT), ``gauges()`` (/metrics) and
    ``summary() -> str`` (the stats line). Read when reported, so order does not matter."""

    model: ModelInfo
    stop: threading.Event
    source: str
    extras: dict[str, Any] = field(default_factory=dict)


class JsonlSink:
    """One JSON object per classified frame, written and flushed line by line, so a crash
    or a kill loses at most the frame being classified."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            if self.path.is_dir():
                raise IsADirectoryError(21, "is a folder")
            self._fh: IO[str] | None = open(self.path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
        except OSError as err:
            raise OutputError(f"cannot write --jsonl {path}: {err.strerror}; choose a writable file path") from err

    def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None:
        assert self._fh is not None
        try:
            self._fh.write(json.dumps(result_record(prediction, stats), separators=(",", ":")) + "\n")
        except OSError as err:
            raise OutputError(f"cannot write --jsonl {self.path}: {err.strerror}") from err

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            with contextlib.suppress(OSError):
                os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


class ConsoleSink:
    """One short line per result on stdout (plain writes: rich per frame costs frames/s)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None:
        self.stream.write(
            f"frame {stats.frame} {prediction.label} {prediction.score:.3f} latency {stats.latency_ms:.1f} ms\n"
        )

    def close(self) -> None:
        self.stream.flush()


class StatsSink:
    """A stats line (fps, frames, dropped, reconnects) on the log every ``every_s`` seconds."""

    def __init__(self, every_s: float, extras: dict[str, Any] | None = None) -> None:
        self.every_s = every_s
        self._next = time.monotonic() + every_s
        self.extras = extras if extras is not None else {}

    def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.every_s
            s = stats.loop
            log.info("stats: %.1f fps, %d frames, %d dropped, %d reconnects, latency %.1f ms%s",
                     s.fps, s.frames, s.dropped, s.reconnects, stats.latency_ms,
                     "".join(f"; {extra.summary()}" for extra in self.extras.values()))

    def close(self) -> None:
        pass


def display_available() -> bool:
    """A display to draw on exists and this OpenCV build can open windows."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow("edgecls", cv2.WINDOW_AUTOSIZE)
    except cv2.error:
        return False
    return True


class WindowSink:
    """The frame with label, score and FPS drawn on it; q or Esc stops the run."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None:
        # Display only: imshow wants BGR. The model input was settled by the source already.
        image = frame.image if frame.colour == "bgr" else cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
        image = image.copy()
        text = f"{prediction.label} {prediction.score:.2f}  {stats.loop.fps:.1f} fps"
        cv2.putText(image, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(image, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.imshow("edgecls", image)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop.set()

    def close(self) -> None:
        with contextlib.suppress(cv2.error):
            cv2.destroyAllWindows()


def _window(options: RunOptions, ctx: SinkContext) -> Sink | None:
    if options.headless:
        return None
    if not display_available():
        log.info("no display (or OpenCV without GUI support): running headless")
        return None
    return WindowSink(ctx.stop)


def _console(options: RunOptions, ctx: SinkContext) -> Sink | None:
    return None if options.quiet else ConsoleSink()


def _jsonl(options: RunOptions, ctx: SinkContext) -> Sink | None:
    return JsonlSink(options.jsonl) if options.jsonl is not None else None


def _serve(options: RunOptions, ctx: SinkContext) -> Sink | None:
    if options.serve is None:
        return None
    from .serve import open_preview  # prometheus_client and http.server only when asked for

    sink = open_preview(options, ctx.model, ctx.source)
    if sink is not None:
        sink.attach(ctx.extras)
    return sink


def _save_frames(options: RunOptions, ctx: SinkContext) -> Sink | None:
    if options.save_frames is None:
        return None
    from .frames import FrameSaver

    return FrameSaver(options.save_frames, ctx.model, every=options.save_every,
                      source=ctx.source, smooth=options.smooth)


def _stats(options: RunOptions, ctx: SinkContext) -> Sink | None:
    return StatsSink(options.stats_every_s, ctx.extras) if options.stats_every_s > 0 else None


def _drift(options: RunOptions, ctx: SinkContext) -> Sink | None:
    if not options.drift:
        return None
    from .drift import open_drift

    monitor = open_drift(ctx.model)
    ctx.extras["drift"] = monitor
    return monitor if monitor.enabled else None


def _capture(options: RunOptions, ctx: SinkContext) -> Sink | None:
    if options.capture is None:
        return None
    from .capture import CaptureOptions, CaptureSink

    sink = CaptureSink(CaptureOptions(options.capture, options.capture_rules, options.capture_rate, options.capture_quota_mb),
                       ctx.model, source=ctx.source, smooth=options.smooth)
    ctx.extras["capture"] = sink
    return sink


SinkFactory = Callable[[RunOptions, SinkContext], "Sink | None"]

#: Sink factories in the order the sinks run. Each returns its sink, or None when off.
SINKS: dict[str, SinkFactory] = {
    "serve": _serve,  # first: a port in use fails before any output file is created
    "jsonl": _jsonl,
    "save_frames": _save_frames,
    "capture": _capture,
    "drift": _drift,  # after the sinks that can refuse to start: its "off" note is no error's preamble
    "console": _console,
    "stats": _stats,
    "window": _window,
}


def build_sinks(options: RunOptions, ctx: SinkContext) -> list[Sink]:
    """Every enabled sink; if one fails to open, the ones already open are closed."""
    sinks: list[Sink] = []
    try:
        for factory in SINKS.values():
            sink = factory(options, ctx)
            if sink is not None:
                sinks.append(sink)
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks
