#!/usr/bin/env python3
"""Resize alternatives for a 640x480 BGR frame: what each costs and how far it is from
exact INTER_AREA. The evidence behind BENCHMARKS.md's "frame cost is not met": no
OpenCV-built area-quality resize comes near the 2x-invoke budget.

    .venv/bin/python scripts/bench_resize.py [--rounds 10] [--quick] > section.md

All variants run in the same rounds, one after another, so machine noise hits them
alike; figures are medians. OpenCV uses one thread, like the device loop's invoke.
Progress goes to stderr; only the markdown goes to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from bench_device import camera_frames, say

from edgecls.preprocess import resize_area

A, LE, NE = cv2.INTER_AREA, cv2.INTER_LINEAR_EXACT, cv2.INTER_NEAREST_EXACT
Resize = Callable[[np.ndarray], np.ndarray]


def chain(*steps: tuple[tuple[int, int], int]) -> Resize:
    def run(image: np.ndarray) -> np.ndarray:
        for size, interpolation in steps:
            image = cv2.resize(image, size, interpolation=interpolation)
        return image
    return run


def two_thread_halving() -> Resize:
    """The 2x2 INTER_AREA first pass, top and bottom halves on two threads."""
    pool = ThreadPoolExecutor(1)

    def run(image: np.ndarray) -> np.ndarray:
        out = np.empty((image.shape[0] // 2, image.shape[1] // 2, 3), np.uint8)
        mid = out.shape[0] // 2

        def half(a: int, b: int) -> None:
            cv2.resize(image[2 * a:2 * b], (out.shape[1], b - a), dst=out[a:b], interpolation=A)

        job = pool.submit(half, 0, mid)
        half(mid, out.shape[0])
        job.result()
        return out
    return run


def xnnpack_pooling(work: Path) -> dict[str, Resize]:
    """Two 2x2 average pools as a LiteRT graph (float, and full int8 with uint8 I/O)."""
    import tensorflow as tf  # host side: only to build the pooling graphs
    from ai_edge_litert.interpreter import Interpreter

    inp = tf.keras.Input((480, 640, 3), batch_size=1)
    model = tf.keras.Model(inp, tf.keras.layers.AveragePooling2D(2)(tf.keras.layers.AveragePooling2D(2)(inp)))
    rng = np.random.default_rng(0)
    made: dict[str, Resize] = {}
    for name in ("float", "int8"):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if name == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([rng.integers(0, 256, (1, 480, 640, 3)).astype(np.float32)] for _ in range(4))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
        with contextlib.redirect_stdout(io.StringIO()):
            (work / f"{name}.tflite").write_bytes(converter.convert())
        it = Interpreter(model_path=str(work / f"{name}.tflite"), num_threads=1)
        it.allocate_tensors()
        index, dtype = it.get_input_details()[0]["index"], it.get_input_details()[0]["dtype"]

        def run(image: np.ndarray, it=it, index=index, dtype=dtype) -> np.ndarray:  # type: ignore[no-untyped-def]
            it.set_tensor(index, image[None].astype(dtype, copy=False))
            it.invoke()
            return image
        made[name] = run
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=100, help="calls per variant per round")
    parser.add_argument("--quick", action="store_true", help="3 rounds, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 3
    cv2.setNumThreads(1)
    frames = camera_frames(16, seed=1)
    full: dict[str, tuple[Resize, str]] = {
        "edgecls (area-pyramid-v3): 2x2 area while >= 256, LINEAR_EXACT to 128, 2x2 area": (resize_area, "in use"),
        "cv2 INTER_AREA straight to 64x64": (chain(((64, 64), A)), "too slow; float weights differ across CPUs"),
        "2x2 area, 2x2 area, LINEAR_EXACT to 128, 2x2 area": (
            chain(((320, 240), A), ((160, 120), A), ((128, 128), LE), ((64, 64), A)), "barely faster"),
        "2x2 area, 2x2 area, NEAREST_EXACT to 128, 2x2 area": (
            chain(((320, 240), A), ((160, 120), A), ((128, 128), NE), ((64, 64), A)), "too far from INTER_AREA"),
        "2x2 area, 2x2 area, LINEAR to 128, 2x2 area": (
            chain(((320, 240), A), ((160, 120), A), ((128, 128), cv2.INTER_LINEAR), ((64, 64), A)),
            "plain INTER_LINEAR: scripts/check-aarch64 found it not bit-exact between x86 and aarch64"),
    }
    first: dict[str, Resize] = {
        "2x2 INTER_AREA, one thread (the floor)": chain(((320, 240), A)),
        "2x2 INTER_AREA split over two threads": two_thread_halving(),
        "BGR->BGRA, then 4-channel 2x2 INTER_AREA": lambda f: cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2BGRA), (320, 240), interpolation=A),
        "a plain copy of the frame (memory, for scale)": lambda f: f.copy(),
    }
    with tempfile.TemporaryDirectory(prefix="bench_resize.") as tmp:
        try:
            for name, fn in xnnpack_pooling(Path(tmp)).items():
                first[f"LiteRT/XNNPACK 2x2 average pools ({name}), set_tensor + invoke"] = fn
        except ImportError as err:
            say(f"no TensorFlow here, skipping the LiteRT pooling variants ({err})")
        variants = {**{k: v[0] for k, v in full.items()}, **first}
        times: dict[str, list[float]] = {name: [] for name in variants}
        slow = {name for name in variants if "INTER_AREA straight" in name or "int8" in name}
        for r in range(args.rounds):
            say(f"round {r + 1}/{args.rounds}")
            for name, fn in variants.items():
                calls = max(5, args.calls // 10) if name in slow else args.calls
                for i in range(calls):
                    frame = frames[i % len(frames)]
                    t = time.perf_counter()
                    fn(frame)
                    times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(ts) * 1e6 for name, ts in times.items()}
    base = med[next(iter(full))]

    def mad(fn: Resize) -> float:
        return max(float(np.mean(np.abs(fn(f).astype(int) - cv2.resize(f, (64, 64), interpolation=A).astype(int))))
                   for f in frames)

    print("## Resize alternatives (640x480 BGR -> 64x64)\n")
    print(f"`.venv/bin/python scripts/bench_resize.py --rounds {args.rounds}`: OpenCV {cv2.__version__}, one thread, "
          f"{os.cpu_count()} cores (shared), Python {sys.version.split()[0]}; medians over {args.rounds} interleaved rounds. "
          "The frame-cost budget for preprocessing is about one int8 invoke (about 40 us here).\n")
    print("| whole resize | median us | vs edgecls | mean abs. diff. from INTER_AREA (goal <= 1.5) | |")
    print("|---|---|---|---|---|")
    for name, (fn, why) in full.items():
        print(f"| {name} | {med[name]:.0f} | {med[name] / base:.2f}x | {mad(fn):.2f} | {why} |")
    print("\n| first pass only (640x480 -> 320x240) | median us |")
    print("|---|---|")
    for name in first:
        print(f"| {name} | {med[name]:.0f} |")
    print()


if __name__ == "__main__":
    main()
