"""Per-frame cost of ``Classifier.classify()``: this tree against an earlier commit, side by side.

    python scripts/bench_frame_cost.py [--base REV] [--rounds N] [--frames N] [--quick]

The earlier commit (default: the parent of the commit that moved tensor I/O into
edgecls/tensorio.py) is unpacked with ``git archive`` into a temporary folder laid out as
installed (edgecls/, edgecls/convert, edgecls/device; the compiled resize kernel copied
in), and each round runs one subprocess per tree, alternating which goes first, on the
same plain int8 model (uint8 in, one sigmoid unit out, labels.txt beside it) and the same
640x480 frame. Each subprocess reports the median seconds of the whole call and of its
three stages; the section gives the median over rounds and the ratio this/base.
Prints a markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE = "6b4d888"

CHILD = r"""
import json, statistics, sys, time
from pathlib import Path
import numpy as np
from edgecls.device.loop import open_classifier
from edgecls.device.options import RunOptions
from edgecls.device.results import Frame

model, frames = Path(sys.argv[1]), int(sys.argv[2])
_, backend, classifier = open_classifier(RunOptions(model=model))
image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
frame = Frame(image=image, colour="bgr", index=0, ts=0.0, mono=0.0)
for _ in range(min(200, frames)):
    classifier.classify(frame)
total, stages = [], []
for _ in range(frames):
    t0 = time.perf_counter()
    _, _, s = classifier.classify(frame)
    total.append(time.perf_counter() - t0)
    stages.append(s)
med = lambda xs: statistics.median(xs)
print(json.dumps({"total": med(total), "pre": med([s[0] for s in stages]),
                  "invoke": med([s[1] for s in stages]), "post": med([s[2] for s in stages]),
                  "tensorio": "edgecls.tensorio" in sys.modules}))
"""


def make_model(out: Path) -> Path:
    import numpy as np

    from edgecls.convert.export import tflite_bytes
    from edgecls.model import build_model, import_keras

    import_keras().utils.set_random_seed(0)
    samples = np.random.default_rng(0).integers(0, 256, (32, 64, 64, 3)).astype(np.uint8)
    path = out / "model_int8.tflite"
    path.write_bytes(tflite_bytes(build_model(2, batch_size=1), "int8", "uint8", samples))
    (out / "labels.txt").write_text("a\nb\n")
    return path


def base_tree(rev: str, into: Path) -> Path:
    """``rev`` laid out as installed, with this tree's compiled resize kernel."""
    src = into / "src"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    tree = into / "tree"
    (tree / "edgecls").mkdir(parents=True)
    for f in (src / "edgecls").iterdir():
        (tree / "edgecls" / f.name).symlink_to(f)
    (tree / "edgecls" / "convert").symlink_to(src / "convert")
    (tree / "edgecls" / "device").symlink_to(src / "device")
    for kernel in (ROOT / "edgecls").glob("_area*.so"):
        shutil.copy(kernel, tree / "edgecls" / kernel.name)
    return tree


def run_child(tree: Path | None, model: Path, frames: int) -> dict[str, float]:
    """One measurement in a fresh interpreter; cwd is the model's folder, never the checkout
    (``python -c`` puts the cwd first on sys.path, ahead of PYTHONPATH)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    out = subprocess.run([sys.executable, "-c", CHILD, str(model), str(frames)], env=env, cwd=model.parent,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=DEFAULT_BASE)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    rounds, frames = (3, 500) if args.quick else (args.rounds, args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or make_model(work)
        tree = base_tree(args.base, work)
        results: dict[str, list[dict[str, float]]] = {"base": [], "this": []}
        for r in range(rounds):
            order = ("base", "this") if r % 2 == 0 else ("this", "base")
            for side in order:
                results[side].append(run_child(tree if side == "base" else None, model, frames))
                print(f"[bench_frame_cost] round {r + 1} {side}: {results[side][-1]}", file=sys.stderr, flush=True)
    if results["base"][0]["tensorio"] or not results["this"][0]["tensorio"]:
        raise SystemExit("error: the base tree already has edgecls.tensorio, or this one lacks it: wrong trees compared")
    med = {side: {k: statistics.median(r[k] for r in rs) for k in ("total", "pre", "invoke", "post")}
           for side, rs in results.items()}
    print(f"## Frame cost: classify() before and after edgecls.tensorio (vs {args.base})\n")
    print(f"`python scripts/bench_frame_cost.py --base {args.base}`: {rounds} interleaved rounds of {frames} "
          "frames per tree, one subprocess each, plain int8 model (uint8 in, one sigmoid unit), 640x480 "
          "frame; medians of per-round medians, microseconds. The rounds pair the two trees a second "
          "apart, so the median of the per-round ratios is the figure least moved by other load.\n")
    print("| stage | base | this | this/base (medians) | this/base (median of per-round ratios) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for key, name in (("pre", "preprocess"), ("invoke", "invoke (encode + interpreter)"),
                      ("post", "postprocess (decode + top-k)"), ("total", "classify() total")):
        b, t = med["base"][key] * 1e6, med["this"][key] * 1e6
        paired = statistics.median(x[key] / y[key] for x, y in zip(results["this"], results["base"], strict=True))
        print(f"| {name} | {b:.1f} | {t:.1f} | {t / b:.3f} | {paired:.3f} |")
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
