"""Per-frame cost of ``Classifier.classify()``: this tree against an earlier commit, side by side.

    python scripts/bench_frame_cost.py [--base REV] [--rounds N] [--frames N] [--quick]

The earlier commit (default: 6b4d888, the parent of the commit that moved tensor I/O into
edgecls/tensorio.py) is unpacked with ``git archive`` into a temporary folder laid out as
installed (edgecls/, edgecls/convert, edgecls/device; the compiled resize kernel copied
in), and one process per tree loads the same plain int8 model (uint8 in, one sigmoid unit
out, labels.txt beside it). The two take turns timing a short batch on the same 640x480
frame, alternating which goes first, so both sides of a round see the same load; each
batch reports the median seconds of the whole call and of its three stages; the section's verdict is the median of the per-round ratios this/base.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE = "6b4d888"

CHILD = r"""
import json, statistics, sys, time
from pathlib import Path
import numpy as np
import edgecls
from edgecls.device.loop import open_classifier
from edgecls.device.options import RunOptions
from edgecls.device.results import Frame

_, backend, classifier = open_classifier(RunOptions(model=Path(sys.argv[1])))
image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
frame = Frame(image=image, colour="bgr", index=0, ts=0.0, mono=0.0)
for _ in range(200):
    classifier.classify(frame)
print(json.dumps({"tree": str(Path(edgecls.__file__).resolve().parent.parent)}), flush=True)
for line in sys.stdin:  # one batch per line: the number of frames to time
    total, stages = [], []
    for _ in range(int(line)):
        t0 = time.perf_counter()
        _, _, s = classifier.classify(frame)
        total.append(time.perf_counter() - t0)
        stages.append(s)
    med = statistics.median
    print(json.dumps({"total": med(total), "pre": med([s[0] for s in stages]),
                      "invoke": med([s[1] for s in stages]), "post": med([s[2] for s in stages])}), flush=True)
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


class Child:
    """One tree's classifier in its own interpreter, timing a batch of frames when asked.

    cwd is the model's folder, never the checkout (``python -c`` puts the cwd first on
    sys.path, ahead of PYTHONPATH)."""

    def __init__(self, tree: Path | None, model: Path) -> None:
        env = dict(os.environ)
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, str(model)], env=env, cwd=model.parent,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.tree: str = self._read()["tree"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"error: a benchmark child exited with {self.proc.wait()} (see above)")
        return json.loads(line)  # type: ignore[no-any-return]

    def batch(self, frames: int) -> dict[str, float]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{frames}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=DEFAULT_BASE)
    parser.add_argument("--rounds", type=int, default=301)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    rounds, frames = (31, 50) if args.quick else (args.rounds, args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or make_model(work)
        tree = base_tree(args.base, work)
        children = {"base": Child(tree, model), "this": Child(None, model)}
        results: dict[str, list[dict[str, float]]] = {"base": [], "this": []}
        try:
            for r in range(rounds):
                for side in ("base", "this") if r % 2 == 0 else ("this", "base"):
                    results[side].append(children[side].batch(frames))
                if r % 50 == 0:
                    last = {side: round(rs[-1]["total"] * 1e6, 1) for side, rs in results.items()}
                    print(f"[bench_frame_cost] round {r + 1} of {rounds}, classify() us: {last}", file=sys.stderr, flush=True)
        finally:
            for child in children.values():
                child.close()
    trees = {side: child.tree for side, child in children.items()}
    if trees["base"] != str((tree.parent / "src").resolve()) or trees["this"] != str(ROOT):
        raise SystemExit(f"error: a child imported edgecls from the wrong tree ({trees}): nothing compared")
    med = {side: {k: statistics.median(r[k] for r in rs) for k in ("total", "pre", "invoke", "post")}
           for side, rs in results.items()}
    subject = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h (%s)", args.base],
                             capture_output=True, text=True, check=True).stdout.strip()
    print(f"## Frame cost: classify() side by side with {args.base}\n")
    print(f"`python scripts/bench_frame_cost.py --base {args.base}`: this tree against {subject}. "
          f"One process per tree, both alive throughout, taking turns: {rounds} rounds of {frames} frames "
          "each, alternating which goes first, so the two batches of a round run some 50 ms apart; "
          "plain int8 model (uint8 in, one sigmoid unit), 640x480 frame. Times are medians over rounds "
          "of each batch's median, in microseconds.\n")
    print("**Verdict: the median of the per-round ratios this/base** (each round pairs the two trees "
          "under the same load, so a busy moment moves both sides alike); below 1 is faster. The middle "
          "half of the per-round ratios shows how far one round can stray. Dividing the two time "
          "columns instead mixes rounds run under different load, so it is not the verdict.\n")
    print("| stage | base (us) | this (us) | **this/base, verdict** | middle half of the per-round ratios |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for key, name in (("pre", "preprocess"), ("invoke", "invoke (encode + interpreter)"),
                      ("post", "postprocess (decode + top-k)"), ("total", "classify() total")):
        b, t = med["base"][key] * 1e6, med["this"][key] * 1e6
        ratios = [x[key] / y[key] for x, y in zip(results["this"], results["base"], strict=True)]
        q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
        print(f"| {name} | {b:.1f} | {t:.1f} | **{statistics.median(ratios):.3f}** | {q1:.3f} to {q3:.3f} |")
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
