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

from .model import ModelInfo
from .options import RunOptions
from .overlay import draw_label
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
    #: The :class:`.slot.ClassifierSlot` in use (cmd/reload swaps the model in it), if any.
    slot: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
    #: The :class:`.update.UpdateManager` of ``--store`` (cmd/update, cmd/rollback), if any.
    updates: Any = None


class JsonlSink:
    """One JSON object per classified frame, each line written whole (:mod:`.jsonl`), between
    a ``run_start`` and a ``run_end`` record. The constructor only checks the path; the loop
    calls :meth:`begin` once every check has passed, so a refused run never touches the file."""

    def __init__(self, path: Path, *, max_bytes: int = 0, keep: int = 10, ctx: SinkContext | None = None) -> None:
        from .jsonl import JsonlWriter

        self.path = Path(path)
        self.ctx = ctx
        self._writer = JsonlWriter(self.path, max_bytes=max_bytes, keep=keep)
        self._open = False

    def begin(self) -> None:
        from .runlog import run_start_record

        self._writer.open()
        self._open = True
        if self.ctx is not None:
            self._writer.write(run_start_record(self.ctx.model, self.ctx.source))

    def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None:
        if not self._open:
            self.begin()
        self._writer.write(result_record(prediction, stats))

    def end(self, summary: dict[str, object]) -> None:
        """The ``run_end`` record: the run's totals and how many records a full disk cost."""
        if self._open:
            self._writer.write({"event": "run_end", "time": _utc_now(), **summary,
                                "records_written": self._writer.written, "records_dropped": self._writer.dropped})

    def close(self) -> None:
        self._writer.close()
        self._open = False


def _utc_now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


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
        cv2.imshow("edgecls", draw_label(image.copy(), prediction, stats))
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
    if options.jsonl is None:
        return None
    return JsonlSink(options.jsonl, max_bytes=int(options.jsonl_max_mb * 1024 * 1024), keep=options.jsonl_keep, ctx=ctx)


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


def _mqtt(options: RunOptions, ctx: SinkContext) -> Sink | None:
    if options.mqtt is None:
        return None
    from .mqtt import open_mqtt  # paho-mqtt only when asked for

    return open_mqtt(options, ctx)


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
    "mqtt": _mqtt,  # after jsonl: a bad --mqtt-spool fails before the broker hears of the device
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
