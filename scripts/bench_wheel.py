"""Frame cost with the C kernel from the x86-64 release wheel against the one built in place.

The wheel's kernel is cross-compiled by zig's clang for glibc 2.17 and a baseline CPU (with
AVX2 copies picked at load time); the in-place one is what ``pip install`` builds with this
machine's gcc. Both are loaded into this one process and swapped in turn under the same
code path (``edgecls.preprocess``'s kernel), interleaved call by call so machine noise hits
both alike; medians. With ``--model``, the whole device frame cost (640x480 BGR frame ->
prediction through the device classifier) is measured too. Prints a markdown section.

    scripts/bench_wheel.py [--model M.tflite] [--wheel W.whl] [--rounds N] [--quick]

Without ``--wheel`` it takes dist/'s x86-64 wheel, or builds one with scripts/build-wheels.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from repo_paths import REPO, shown

import edgecls.preprocess as pre


def say(message: str) -> None:
    print(f"[bench_wheel] {message}", file=sys.stderr, flush=True)


def wheel_kernel(wheel: Path | None, work: Path) -> tuple[Path, Path]:
    if wheel is None:
        found = sorted((REPO / "dist").glob("edgecls-*-py3-none-manylinux_2_17_x86_64.whl"))
        if found:
            wheel = found[-1]
        else:
            say("no x86-64 wheel in dist/: building one (scripts/build-wheels --platform linux-x86_64)")
            subprocess.run(["bash", str(REPO / "scripts" / "build-wheels"), "--out", str(work / "dist"),
                            "--platform", "linux-x86_64"], check=True, stdout=sys.stderr)
            (wheel,) = (work / "dist").glob("edgecls-*-py3-none-manylinux_2_17_x86_64.whl")
    with zipfile.ZipFile(wheel) as zf:
        (work / "_area.so").write_bytes(zf.read("edgecls/_area.so"))
    return wheel, work / "_area.so"


def camera_frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (480 // 8, 640 // 8, 3), dtype=np.uint8)
    smooth = np.kron(base, np.ones((8, 8, 1), np.uint8))  # camera-like: mostly smooth
    return [np.clip(smooth.astype(np.int16) + rng.integers(-8, 9, smooth.shape), 0, 255).astype(np.uint8)
            for _ in range(n)]


def measure(kernels: dict[str, pre._Kernel], step, rounds: int) -> dict[str, float]:
    """Median microseconds of ``step(frame)`` under each kernel, interleaved call by call."""
    frames = camera_frames(16)
    buffer = frames[0].copy()
    times: dict[str, list[float]] = {name: [] for name in kernels}
    for kernel in kernels.values():  # warm-up, and plans made
        pre._KERNEL = kernel
        for _ in range(20):
            step(buffer)
    for i in range(rounds):
        np.copyto(buffer, frames[i % len(frames)])  # a frame just written, as a capture leaves it
        for name, kernel in kernels.items():
            pre._KERNEL = kernel
            t = time.perf_counter()
            step(buffer)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) * 1e6 for name, v in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="int8 .tflite: also measure the whole device frame cost")
    parser.add_argument("--wheel", type=Path, help="the x86-64 wheel (default: dist/'s, or build one)")
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="500 rounds")
    args = parser.parse_args()
    rounds = 500 if args.quick else args.rounds
    if not pre.KERNEL_STATUS.startswith("C kernel"):
        print(f"bench_wheel: error: no kernel built in place ({pre.KERNEL_STATUS}): pip install -e . with a C compiler",
              file=sys.stderr)
        return 2
    in_place = pre.KERNEL_STATUS.split("(", 1)[1].rstrip(")")
    with tempfile.TemporaryDirectory() as tmp:
        wheel, so = wheel_kernel(args.wheel, Path(tmp))
        kernels = {"wheel (zig clang, manylinux_2_17)": pre._Kernel(str(so)), "built in place (gcc)": pre._Kernel(in_place)}
        frames = camera_frames(16)
        pairs = [[k.resize(f, 64, True) for k in kernels.values()] for f in frames]
        same = all(a is not None and b is not None and np.array_equal(a, b) for a, b in pairs)
        say(f"resize, {rounds} rounds")
        resize = measure(kernels, lambda f: pre.to_model_input(f, "bgr"), rounds)
        whole: dict[str, float] = {}
        if args.model:
            from edgecls.device.loop import open_classifier
            from edgecls.device.options import RunOptions
            from edgecls.device.results import Frame

            _, _, classifier = open_classifier(RunOptions(model=args.model, num_threads=1))
            say(f"whole frame cost, {rounds} rounds")
            whole = measure(kernels, lambda f: classifier.classify(Frame(f, "bgr", 0, 0.0, 0.0)), rounds)
    names = list(kernels)
    print("## Kernel from the wheel vs built in place\n")
    print(f"`.venv/bin/python scripts/bench_wheel.py{' --quick' if args.quick else ''}"
          f"{' --model ' + shown(args.model) if args.model else ''}`: wheel `{wheel.name}`, in-place kernel "
          f"`{shown(in_place)}`; one process, kernels swapped call by call, {rounds} rounds, medians; "
          f"outputs of the two kernels on 16 camera-like frames: {'bit-identical' if same else 'DIFFERENT'}.\n")
    print(f"| figure | {names[0]} | {names[1]} | ratio |")
    print("|---|---|---|---|")
    rows = [("resize 640x480 BGR -> 64x64 RGB (`to_model_input`)", resize)]
    if whole:
        rows.append(("whole frame cost: 640x480 BGR -> prediction (int8, 1 thread)", whole))
    for label, fig in rows:
        a, b = fig[names[0]], fig[names[1]]
        print(f"| {label} | {a:.1f} us | {b:.1f} us | {a / b:.2f}x |")
    print()
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
