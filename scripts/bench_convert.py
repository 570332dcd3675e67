"""Conversion: size and invoke time of each TFLite variant relative to float32, and int8 parity.

Converts RUN_DIR to all four variants (in a temp folder), then times ``invoke()`` with
ai-edge-litert on one thread, interleaving the variants in rounds inside one process so
machine noise hits all alike, and runs parity on TEST_DIR (the built-in test split).
Prints a markdown section (heading + tables) on stdout; progress goes to stderr.

    .venv/bin/python scripts/bench_convert.py [RUN_DIR TEST_DIR] [--rounds 30] [--invokes 100]

Without RUN_DIR and TEST_DIR it makes the built-in data and trains a run first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from repo_paths import shown

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODES = ("float32", "float16", "dynamic", "int8")
#: The issue's goals for int8 against float32.
GOAL_SIZE = 0.26
GOAL_INVOKE = 0.7
GOAL_AGREEMENT = 0.995
GOAL_ACC_PP = 0.5


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def prepare(work: Path) -> tuple[Path, Path]:
    from edgecls.demo_data import DemoDataOptions, generate
    from edgecls.train import TrainOptions, train

    log(f"making the built-in data and training a run in {work} ...")
    generate(work / "data", DemoDataOptions())
    train(work / "data" / "train", work / "run", TrainOptions(val_dir=work / "data" / "test"))
    return work / "run", work / "data" / "test"


def time_interleaved(paths: dict[str, Path], image: object, rounds: int, invokes: int) -> dict[str, float]:
    """Median seconds per invoke, variants interleaved round by round (order rotates)."""
    from edgecls.convert.runner import TFLiteModel

    models = {m: TFLiteModel(p, "sigmoid", 2, threads=1) for m, p in paths.items()}
    samples: dict[str, list[float]] = {m: [] for m in models}
    names = list(models)
    for m in names:  # warm-up
        models[m].time_invoke(image, 20)  # type: ignore[arg-type]
    for r in range(rounds):
        for m in names[r % len(names):] + names[: r % len(names)]:
            samples[m].extend(models[m].time_invoke(image, invokes))  # type: ignore[arg-type]
    return {m: statistics.median(s) for m, s in samples.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", nargs="?", type=Path)
    ap.add_argument("test_dir", nargs="?", type=Path)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--invokes", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="10 rounds of 50 invokes")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.invokes = 10, 50
    with tempfile.TemporaryDirectory(prefix="edgecls-bench-convert-") as tmp:
        work = Path(tmp)
        if args.run_dir is None or args.test_dir is None:
            args.run_dir, args.test_dir = prepare(work)
        from edgecls.convert.export import convert_run, import_tensorflow_quietly
        from edgecls.convert.parity import parity

        import_tensorflow_quietly()
        paths, convert_s, sizes = {}, {}, {}
        for mode in MODES:
            t0 = time.perf_counter()
            result = convert_run(args.run_dir, mode, work / f"model_{mode}.tflite")
            convert_s[mode] = time.perf_counter() - t0
            paths[mode], sizes[mode] = result.path, result.size_bytes
            log(f"converted {mode}: {result.size_bytes:,} bytes in {convert_s[mode]:.1f} s")
        log("parity on the test split ...")
        report = parity(args.run_dir, args.test_dir, [str(paths[m]) for m in MODES], convert_missing=False,
                        latency_repeats=0)
        by = {v.name: v for v in report.variants}
        from edgecls.folders import load_scan, scan_folder

        image = load_scan(scan_folder(args.test_dir)).x[0]
        log(f"timing invoke(): {args.rounds} rounds x {args.invokes} invokes per variant, interleaved ...")
        med = time_interleaved(paths, image, args.rounds, args.invokes)

    f32 = "float32"
    print("## Conversion and parity (`edgecls convert`, `edgecls parity`)\n")
    print(f"Run `{shown(args.run_dir)}`, parity on `{shown(args.test_dir)}` ({report.count} images, float Keras accuracy "
          f"{report.float_accuracy:.2%}). Invoke: ai-edge-litert, 1 thread, batch 1, median of "
          f"{args.rounds * args.invokes} invokes per variant, variants interleaved in one process.\n")
    print("| variant | size (bytes) | size vs float32 | invoke (µs) | invoke vs float32 | top-1 agreement | accuracy | Δ accuracy (pp) | max abs Δp | convert (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in MODES:
        v = by[m]
        print(f"| {m} | {sizes[m]:,} | {sizes[m] / sizes[f32]:.3f}x | {med[m] * 1e6:.1f} | {med[m] / med[f32]:.2f}x | "
              f"{v.top1_agreement:.2%} | {v.accuracy:.2%} | {v.accuracy_change * 100:+.2f} | {v.max_abs_prob_diff:.4f} | "
              f"{convert_s[m]:.1f} |")
    i8 = by["int8"]
    goals = [
        ("int8 size vs float32", f"{sizes['int8'] / sizes[f32]:.3f}x", f"<= {GOAL_SIZE}x", sizes["int8"] / sizes[f32] <= GOAL_SIZE),
        ("int8 invoke vs float32", f"{med['int8'] / med[f32]:.2f}x", f"<= {GOAL_INVOKE}x", med["int8"] / med[f32] <= GOAL_INVOKE),
        ("int8 top-1 agreement with float", f"{i8.top1_agreement:.2%}", f">= {GOAL_AGREEMENT:.1%}", i8.top1_agreement >= GOAL_AGREEMENT),
        ("int8 accuracy vs float", f"{i8.accuracy_change * 100:+.2f} pp", f"within {GOAL_ACC_PP} pp",
         abs(i8.accuracy_change) * 100 <= GOAL_ACC_PP + 1e-9),
    ]
    print("\n| goal | measured | target | met |")
    print("|---|---:|---:|:---:|")
    for name, got, want, ok in goals:
        print(f"| {name} | {got} | {want} | {'yes' if ok else '**no**'} |")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
