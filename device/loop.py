"""The live loop: source -> preprocess -> backend -> postprocess -> sinks.

:func:`prepare` does every check that can fail on user input (model, labels, backend,
output files, source) before the first frame is read; :func:`run_loop` then only moves
frames. SIGINT and SIGTERM set a stop event: the frame in hand finishes, every sink is
closed (flushed), and the run returns its summary.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from edgecls.artifact import check_tflite
from edgecls.errors import DataError

from .backends import Backend, BackendOptions, open_backend
from .classify import Classifier, PostOptions
from .model import (
    ModelInfo,
    check_against_io,
    input_normalization,
    normalization_warning,
    read_model_info,
)
from .options import RunOptions
from .reader import DirectReader, FrameReader, LatestFrameReader, ReadAheadReader, ReaderOptions
from .results import FrameStats, LoopStats, StageTimings
from .sinks import Sink, SinkContext, build_sinks
from .slot import ClassifierSlot
from .sources import (
    FrameSource,
    SourceOptions,
    SourceSpec,
    check_decode_threads,
    open_source,
    parse_source,
)

log = logging.getLogger("edgecls.device")

#: Frames in the moving window behind the reported fps.
FPS_WINDOW = 30
#: The most interpreter threads accepted: LiteRT segfaults creating 100000; more threads than
#: a Pi's 4 cores (or any sane host's) only add contention.
MAX_THREADS = 64


@dataclass(frozen=True)
class RunSummary:
    frames: int
    seconds: float
    dropped: int
    reconnects: int
    stalls: int
    stopped_by: str
    #: CPU seconds this process used during the loop (all threads): headroom on a device,
    #: and a figure that other load on the machine does not distort.
    cpu_seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def open_classifier(options: RunOptions) -> tuple[ModelInfo, Backend, Classifier]:
    """Model file, labels, backend and the IO checks; raises before any capture."""
    post = PostOptions(options.top_k, options.threshold, options.smooth)
    post.validate()
    if not 1 <= options.num_threads <= MAX_THREADS:
        raise DataError(f"--num-threads must be from 1 to {MAX_THREADS} (this machine has {os.cpu_count()} cores), "
                        f"got {options.num_threads}")
    check_tflite(options.model)
    # The interpreter loads the flatbuffer before labels are looked for, so a truncated
    # artifact (its embedded labels cut off) is reported as truncated, not as unlabelled.
    backend = open_backend("edgetpu" if options.edgetpu else "cpu", options.model,
                           BackendOptions(options.num_threads, options.device))
    try:
        info = check_against_io(read_model_info(options.model, options.labels, input_normalization(options)),
                                backend.input, backend.output)
    except BaseException:
        backend.close()
        raise
    warning = normalization_warning(info, backend.input)
    if warning:
        log.warning("%s", warning)
    return info, backend, Classifier(info, backend, post)


def open_reader(spec: SourceSpec, source_options: SourceOptions | None = None,
                reader_options: ReaderOptions | None = None) -> FrameReader:
    """Files and folders: every frame in order. Live sources: the latest-frame reader."""
    return start_reader(open_source(spec, source_options), spec, source_options, reader_options)


def start_reader(first: FrameSource, spec: SourceSpec, source_options: SourceOptions | None = None,
                 reader_options: ReaderOptions | None = None, *, realtime: bool = False,
                 read_ahead: bool = False) -> FrameReader:
    """Wrap an opened source; a live one starts grabbing now and is reopened from ``spec``.
    ``realtime`` paces a file or folder at its frame rate (live sources pace themselves);
    otherwise ``read_ahead`` decodes it on a thread of its own while frames are classified."""
    if not first.live:
        if read_ahead and not realtime:
            return ReadAheadReader(first)
        return DirectReader(first, realtime=realtime)
    pending = [first]

    def reopen() -> Any:
        return pending.pop() if pending else open_source(spec, source_options)

    return LatestFrameReader(reopen, reader_options)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (a second one interrupts at once). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.info("%s: stopping after this frame", signal.Signals(signum).name)
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def run_loop(reader: FrameReader, classifier: Classifier | ClassifierSlot, sinks: Sequence[Sink], stop: threading.Event,
             max_frames: int | None = None) -> RunSummary:
    """Classify frames until the source ends, ``max_frames`` are done or ``stop`` is set."""
    start = time.monotonic()
    cpu_start = time.process_time()
    emitted: deque[float] = deque(maxlen=FPS_WINDOW)
    frames = 0
    reconnects = 0
    stopped_by = "end of source"
    while True:
        if stop.is_set():
            stopped_by = "signal"
            break
        if max_frames is not None and frames >= max_frames:
            stopped_by = "max frames"
            break
        t0 = time.perf_counter()
        frame = reader.next(0.25)
        if frame is None:
            if reader.finished:
                break
            continue
        capture_s = time.perf_counter() - t0
        if reader.reconnects != reconnects:
            reconnects = reader.reconnects
            classifier.reset()
        tensor, prediction, (pre_s, inv_s, post_s) = classifier.classify(frame)
        now = time.monotonic()
        emitted.append(now)
        fps = (len(emitted) - 1) / (now - emitted[0]) if len(emitted) > 1 and now > emitted[0] else 0.0
        stats = FrameStats(
            frame=frames, source_index=frame.index, ts=frame.ts, latency_ms=(now - frame.mono) * 1000.0,
            timings=StageTimings(capture_s * 1e3, pre_s * 1e3, inv_s * 1e3, post_s * 1e3),
            loop=LoopStats(fps, frames + 1, reader.dropped, reader.reconnects, reader.stalls),
            file=frame.name,
            model=classifier.last_model if isinstance(classifier, ClassifierSlot) else None,
        )
        for sink in sinks:
            sink.on_result(frame, tensor, prediction, stats)
        frames += 1
    return RunSummary(frames, time.monotonic() - start, reader.dropped, reader.reconnects, reader.stalls, stopped_by,
                      time.process_time() - cpu_start)


def run(options: RunOptions, extra_sinks: Sequence[Sink] = ()) -> RunSummary:
    """``edgecls run``: check everything, then classify until done or told to stop."""
    if options.max_frames is not None and options.max_frames < 1:
        raise DataError(f"--max-frames must be at least 1, got {options.max_frames}")
    if options.jsonl_max_mb < 0 or options.jsonl_keep < 1:
        raise DataError(f"--jsonl-max-mb must be 0 or more and --jsonl-keep at least 1, got "
                        f"{options.jsonl_max_mb} and {options.jsonl_keep}")
    check_decode_threads(options.decode_threads)
    if options.mqtt:  # option typos fail before the model loads (and prints its own notes)
        from .mqtt import check_options

        check_options(options)
    from .update import plain_ref, resolve_store, start_updates

    options, ref = resolve_store(options)
    info, backend, classifier = open_classifier(options)
    # The gate (--inbox), rollback and cmd/reload swap the model in the slot between frames.
    slot = ClassifierSlot(info, backend, classifier, ref or plain_ref(options.model))
    updates = None
    try:
        updates = start_updates(options, slot)
        spec = parse_source(options.source)
        width, height = options.capture_size
        source_options = SourceOptions(width=width, height=height, decode_threads=options.decode_threads)
        if options.capture_size != RunOptions.capture_size and spec.kind not in ("camera", "picamera2"):
            log.info("--capture-size applies to cameras and picamera2; %s is read at its own size", spec)
        source = open_source(spec, source_options)
    except BaseException:
        _close_quietly([updates, slot])
        raise
    stop = threading.Event()
    try:
        sinks = [*build_sinks(options, SinkContext(info, stop, str(spec), slot,
                                                  updates=updates.manager if updates else None)), *extra_sinks]
    except BaseException:
        _close_quietly([source, updates, slot])
        raise
    try:
        begin_sinks(sinks)  # opens --jsonl (append): only now, after every check has passed
    except BaseException:
        _close_quietly([source, *sinks, updates, slot])
        raise
    # Capture starts here: everything a user can get wrong has been checked above.
    reader = start_reader(source, spec, source_options, realtime=options.realtime, read_ahead=True)
    log.info("classifying %s with %s on %s (%s)", spec, info.path.name, backend.name, ", ".join(info.labels))
    summary: RunSummary | None = None
    try:
        with stop_on_signals(stop):
            summary = run_loop(reader, slot, sinks, stop, options.max_frames)
    finally:
        end_sinks(sinks, summary, source)
        close_all([*([updates] if updates else []), reader, *sinks, slot])
    assert summary is not None
    return summary


def begin_sinks(sinks: Sequence[Sink]) -> None:
    """Sinks with a ``begin()`` (the JSONL file) open their output now."""
    for sink in sinks:
        begin = getattr(sink, "begin", None)
        if begin is not None:
            begin()


def end_sinks(sinks: Sequence[Sink], summary: RunSummary | None, source: Any) -> None:
    """Sinks with an ``end(summary)`` (the JSONL ``run_end`` record) get the run's totals."""
    record: dict[str, object] = {"stopped_by": summary.stopped_by if summary else "error"}
    if summary is not None:
        record.update(frames=summary.frames, seconds=round(summary.seconds, 3), dropped=summary.dropped,
                      reconnects=summary.reconnects, stalls=summary.stalls)
    skipped = getattr(source, "skipped", None)
    if skipped is not None:
        record["skipped_files"] = len(skipped)
    for sink in sinks:
        end = getattr(sink, "end", None)
        if end is not None:
            try:
                end(record)
            except Exception as err:  # the summary line must not hide the run's own outcome
                log.warning("could not write the run_end record: %s", err)


def _close_quietly(things: Sequence[Any]) -> None:
    """Close what was opened before a check failed; the check's error is the one to report."""
    with contextlib.suppress(Exception):
        close_all([thing for thing in things if thing is not None])


def close_all(things: Sequence[Any]) -> None:
    """Close every one even if some fail (a full disk must not leave the JSONL unflushed
    because the preview server failed first); then raise the first failure."""
    first: BaseException | None = None
    for thing in things:
        try:
            thing.close()
        except Exception as err:
            first = first or err
    if first is not None:
        raise first
