#!/usr/bin/env python3
"""Resize alternatives for a 640x480 BGR frame: what each costs and how far it is from
OpenCV's INTER_AREA. The evidence behind edgecls's resize (area-exact-v4, a C kernel
with a numpy twin) and behind the frame-cost row of BENCHMARKS.md.

    .venv/bin/python scripts/bench_resize.py [--rounds 10] [--quick] > section.md

All variants run in the same rounds, one after another, so machine noise hits them
alike; figures are medians. Before each call the frame is copied into one capture buffer
(untimed), as a camera or decoder leaves a frame just written. OpenCV uses one thread,
like the device loop's invoke. Progress goes to stderr; only the markdown goes to stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import cv2
import numpy as np
from bench_device import camera_frames, say

from edgecls.preprocess import KERNEL_STATUS, _area_exact_numpy, resize_area

A, LE = cv2.INTER_AREA, cv2.INTER_LINEAR_EXACT
Resize = Callable[[np.ndarray], np.ndarray]


def chain(*steps: tuple[tuple[int, int], int]) -> Resize:
    def run(image: np.ndarray) -> np.ndarray:
        for size, interpolation in steps:
            image = cv2.resize(image, size, interpolation=interpolation)
        return image
    return run


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
    if not KERNEL_STATUS.startswith("C kernel"):
        say(f"note: the resize runs {KERNEL_STATUS}")
    variants: dict[str, tuple[Resize, str]] = {
        "edgecls area-exact-v4, C kernel": (resize_area, "in use (same bytes as the twin)"),
        "edgecls area-exact-v4, numpy twin": (lambda f: _area_exact_numpy(f, 64), "where no C compiler was at install"),
        "previous edgecls (area-pyramid-v3): 2x2 area, LINEAR_EXACT to 128, 2x2 area": (
            chain(((320, 240), A), ((128, 128), LE), ((64, 64), A)), "replaced"),
        "cv2 INTER_AREA straight to 64x64": (chain(((64, 64), A)), "slow generic path; float rounding differs across CPUs"),
        "a plain copy of the frame (memory, for scale)": (lambda f: f.copy(), "-"),
    }
    slow = {name for name in variants if "twin" in name or "INTER_AREA straight" in name}
    times: dict[str, list[float]] = {name: [] for name in variants}
    buffer = frames[0].copy()
    for r in range(args.rounds):
        say(f"round {r + 1}/{args.rounds}")
        for name, (fn, _) in variants.items():
            calls = max(5, args.calls // 10) if name in slow else args.calls
            for i in range(calls):
                np.copyto(buffer, frames[i % len(frames)])
                t = time.perf_counter()
                fn(buffer)
                times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(ts) * 1e6 for name, ts in times.items()}
    base = med[next(iter(variants))]

    def mad(fn: Resize) -> str:
        if fn(frames[0]).shape != (64, 64, 3):
            return "-"
        diffs = [np.abs(fn(f).astype(int) - cv2.resize(f, (64, 64), interpolation=A).astype(int)) for f in frames]
        return f"{max(float(d.mean()) for d in diffs):.3f} (max {max(int(d.max()) for d in diffs)})"

    print("## Resize alternatives (640x480 BGR -> 64x64)\n")
    print(f"`.venv/bin/python scripts/bench_resize.py --rounds {args.rounds}`: OpenCV {cv2.__version__}, one thread, "
          f"{os.cpu_count()} cores (shared), Python {sys.version.split()[0]}; medians over {args.rounds} interleaved rounds; "
          f"each frame just written into the capture buffer. The resize ran: {KERNEL_STATUS.split(' (')[0]}.\n")
    print("| resize | median us | vs edgecls | mean abs. diff. from INTER_AREA, worst of 16 frames (goal <= 1.5) | |")
    print("|---|---|---|---|---|")
    for name, (fn, why) in variants.items():
        print(f"| {name} | {med[name]:.0f} | {med[name] / base:.2f}x | {mad(fn)} | {why} |")
    print()


if __name__ == "__main__":
    main()
