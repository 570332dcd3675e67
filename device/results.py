"""The values that flow through the loop: frames in, predictions and per-frame stats out.

All frozen: a sink may keep any of them (a web preview holds the latest, a frame saver
writes them later) without the loop changing them underneath.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecls.preprocess import ColourOrder


@dataclass(frozen=True)
class Frame:
    """One captured image.

    image: HxWxC uint8, in ``colour`` order (settled by the source, never converted later).
    index: the source's sequence number (counts frames the reader dropped, so gaps show drops).
    ts: wall-clock capture time (``time.time()``), for logs and JSON.
    mono: ``time.monotonic()`` at capture, for ages and latencies.
    name: the file it came from (folder sources), else None.
    """

    image: np.ndarray
    colour: ColourOrder
    index: int
    ts: float
    mono: float
    name: str | None = None


@dataclass(frozen=True)
class Prediction:
    """label: the top class, or UNKNOWN when its score is under ``--threshold`` (index -1 then).
    score: the top class's probability (after smoothing). probabilities: one per label.
    top: the ``--top-k`` best (label, probability) pairs, best first."""

    label: str
    index: int
    score: float
    probabilities: tuple[float, ...]
    top: tuple[tuple[str, float], ...]


UNKNOWN = "unknown"


@dataclass(frozen=True)
class StageTimings:
    """Milliseconds spent on this frame in each stage. capture: reading the frame (files) or
    waiting for the newest one (live sources)."""

    capture_ms: float
    preprocess_ms: float
    invoke_ms: float
    postprocess_ms: float


@dataclass(frozen=True)
class LoopStats:
    """Running totals when this frame was emitted. fps: classified frames/s over the recent
    window. dropped: frames the latest-frame reader discarded as stale. reconnects: times a
    live source was reopened. stalls: failures detected (read errors, frozen frames, timeouts)."""

    fps: float
    frames: int
    dropped: int
    reconnects: int
    stalls: int


@dataclass(frozen=True)
class ModelRef:
    """Which model classified a frame: its file's sha256 and its package version (None for
    a bare ``--model`` file). Records, /status and /metrics name it, so a result can be tied
    to the exact model after an update swapped it."""

    sha256: str
    version: str | None = None

    @property
    def short(self) -> str:
        return f"{self.version or 'unversioned'} ({self.sha256[:12]})"


@dataclass(frozen=True)
class FrameStats:
    """frame: 0-based count of classified frames. source_index: :attr:`Frame.index`.
    ts: capture wall-clock time. latency_ms: capture to prediction (before the sinks)."""

    frame: int
    source_index: int
    ts: float
    latency_ms: float
    timings: StageTimings
    loop: LoopStats
    #: The file the frame came from (folder sources), else None.
    file: str | None = None
    #: The model that classified this frame (see :class:`ModelRef`); None outside the live loop.
    model: ModelRef | None = None


def result_record(prediction: Prediction, stats: FrameStats) -> dict[str, Any]:
    """The JSON object written per frame (``--jsonl``); sinks that log may reuse it."""
    t = stats.timings
    named = {"file": stats.file} if stats.file is not None else {}
    return {
        "frame": stats.frame,
        "source_index": stats.source_index,
        **named,
        "ts": round(stats.ts, 6),
        "label": prediction.label,
        "index": prediction.index,
        "score": round(prediction.score, 6),
        "top": [[label, round(p, 6)] for label, p in prediction.top],
        "latency_ms": round(stats.latency_ms, 3),
        "capture_ms": round(t.capture_ms, 3),
        "preprocess_ms": round(t.preprocess_ms, 3),
        "invoke_ms": round(t.invoke_ms, 3),
        "postprocess_ms": round(t.postprocess_ms, 3),
        "fps": round(stats.loop.fps, 2),
        "dropped": stats.loop.dropped,
        "reconnects": stats.loop.reconnects,
        **({"model_sha256": stats.model.sha256, "model_version": stats.model.version} if stats.model else {}),
    }
