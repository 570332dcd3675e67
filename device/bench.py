"""``edgecls bench``: per-stage latency of the real loop stages, warm-up excluded.

The stages are the ones :func:`.loop.run_loop` runs (capture, preprocess, invoke,
postprocess), measured with the same :class:`.classify.Classifier`. Without ``--source``
the frame is a 640x480 BGR image in memory, so capture costs nothing and the figures are
the classifier's own. The XNNPACK check counts DELEGATE nodes in the execution plan: the
"Created XNNPACK delegate" log line appears even when no partition was delegated.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecls.errors import DataError

from .loop import open_classifier, open_reader
from .options import DEFAULT_CAPTURE_SIZE, EDGETPU_DEVICE, RunOptions
from .results import Frame
from .sources import SourceOptions, check_decode_threads, parse_source

STAGES = ("capture", "preprocess", "invoke", "postprocess", "total")


@dataclass(frozen=True)
class BenchOptions:
    model: Path
    source: str | None = None
    frames: int = 500
    warmup: int = 20
    num_threads: int = 1
    edgetpu: bool = False
    device: str = EDGETPU_DEVICE
    #: Asked of a camera source; without a source, the size of the synthetic frame.
    capture_size: tuple[int, int] = DEFAULT_CAPTURE_SIZE
    #: FFmpeg threads decoding a --source file or stream (0: FFmpeg picks, one per core).
    decode_threads: int = 1
    #: (pixel - mean) / std for a model whose metadata says nothing (None: from the model).
    input_mean: float | None = None
    input_std: float | None = None


@dataclass(frozen=True)
class StageStat:
    name: str
    median_ms: float
    p99_ms: float


@dataclass(frozen=True)
class BenchReport:
    model: str
    backend: str
    runtime: str
    source: str
    frames: int
    fps: float
    stages: tuple[StageStat, ...]
    delegated_partitions: int
    ops: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def synthetic_frame(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """A camera-like BGR frame: smooth noise (a blank frame would flatter any resize)."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (5, 5), 0)


def run_bench(options: BenchOptions) -> BenchReport:
    if options.frames < 1 or options.warmup < 0:
        raise DataError(f"--frames must be at least 1 and --warmup at least 0, got {options.frames} and {options.warmup}")
    check_decode_threads(options.decode_threads)
    _, backend, classifier = open_classifier(RunOptions(
        model=options.model, num_threads=options.num_threads, edgetpu=options.edgetpu, device=options.device,
        input_mean=options.input_mean, input_std=options.input_std))
    width, height = options.capture_size
    source_options = SourceOptions(width=width, height=height, decode_threads=options.decode_threads)
    reader = (open_reader(parse_source(options.source), source_options)
              if options.source is not None else None)
    image = synthetic_frame(width, height)
    samples = np.zeros((options.frames, len(STAGES)))
    done = 0
    wall_start = 0.0
    try:
        for i in range(options.warmup + options.frames):
            if i == options.warmup:
                wall_start = time.perf_counter()
            t0 = time.perf_counter()
            if reader is None:
                frame: Frame | None = Frame(image, "bgr", i, time.time(), time.monotonic())
            else:
                frame = reader.next(2.0)
                while frame is None and not reader.finished:
                    frame = reader.next(2.0)
            if frame is None:
                break
            t1 = time.perf_counter()
            _, _, (pre, inv, post) = classifier.classify(frame)
            t2 = time.perf_counter()
            if i >= options.warmup:
                samples[done] = (t1 - t0, pre, inv, post, t2 - t0)
                done += 1
        wall = time.perf_counter() - wall_start
    finally:
        if reader is not None:
            reader.close()
    if done == 0:
        raise DataError(f"source {options.source} ended during warm-up ({options.warmup} frames): lower --warmup")
    ms = samples[:done] * 1e3
    stages = tuple(StageStat(name, float(np.median(ms[:, j])), float(np.percentile(ms[:, j], 99)))
                   for j, name in enumerate(STAGES))
    partitions = backend.delegated_partitions() if hasattr(backend, "delegated_partitions") else -1
    ops = backend.op_count() if hasattr(backend, "op_count") else -1
    runtime = getattr(backend, "runtime", None)
    backend.close()
    return BenchReport(
        model=str(options.model), backend=backend.name,
        runtime=f"{runtime.name} {runtime.version}" if runtime else "unknown",
        source=options.source or f"synthetic {width}x{height} frame in memory", frames=done,
        fps=done / wall if wall > 0 else 0.0, stages=stages, delegated_partitions=partitions, ops=ops,
    )
