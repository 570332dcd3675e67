"""The demo model's accuracy, honestly measured: several training seeds, each scored on
images no choice was made on.

`scripts/demo` trains on the built-in data's train/ and picks its best epoch on val/
(`edgecls train data/train --val-dir data/val`, the CLI's defaults: early stopping, the
best epoch kept). This script trains exactly so, once per training seed, and scores every
run on the demo's test/ and on an independent test set drawn with another data seed (1000
images per class by default), float and int8 (edgecls's own conversion). It also records
the independent accuracy after every epoch, so the table can say what an earlier stop
would have kept. Goal (issue 12 item 9): at least 95 % on the independent set for every
seed, float and int8. Prints a markdown section.

    .venv/bin/python scripts/bench_demo.py [--data DIR] [--seeds 0,1,2] [--test-per-class 1000] [--work DIR]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from contextlib import redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GOAL = 0.95
#: The independent test set's data seed (the demo's data is seed 0).
TEST_SEED = 1
#: The patience of the previous default, replayed on each run's own validation curve.
OLD_PATIENCE = 3


@dataclass(frozen=True)
class SeedResult:
    seed: int
    epochs: int
    best_epoch: int
    best_val: float
    demo_test: float
    indep_float: float
    indep_int8: float
    agreement: float
    by_kind: dict[str, tuple[int, float]]
    seconds: float
    per_epoch_indep: tuple[float, ...]
    val_curve: tuple[float, ...]


def say(message: str) -> None:
    print(f"[bench_demo] {message}", file=sys.stderr, flush=True)


def _scorer(keras: Any, x: np.ndarray, y: np.ndarray, head: str) -> Any:
    from edgecls.evaluate import keras_probabilities
    from edgecls.heads import top1

    class Score(keras.callbacks.Callback):  # type: ignore[misc]
        """The independent set's accuracy after every epoch (not used for any choice)."""

        def __init__(self) -> None:
            super().__init__()
            self.accuracy: list[float] = []

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.accuracy.append(float(np.mean(top1(keras_probabilities(self.model, x, head)) == y)))

    return Score()


def stop_with_patience(val: list[float], patience: int) -> tuple[int, int]:
    """(epochs run, best epoch), 1-based, had training stopped with ``patience`` on this curve."""
    best = 0
    for epoch in range(1, len(val)):
        if val[epoch] > val[best]:
            best = epoch
        elif epoch - best >= patience:
            return epoch + 1, best + 1
    return len(val), best + 1


def run_seed(seed: int, data: Path, indep: Any, kinds: list[str], work: Path) -> SeedResult:
    from edgecls.convert.export import convert_run
    from edgecls.convert.runner import TFLiteModel
    from edgecls.evaluate import keras_probabilities, load_labelled
    from edgecls.heads import top1
    from edgecls.model import import_keras, load_keras_model
    from edgecls.spec import load_spec
    from edgecls.train import DEFAULT_MAX_EPOCHS, DEFAULT_PATIENCE, TrainOptions, train

    keras = import_keras()
    run = work / f"run-seed{seed}"
    score = _scorer(keras, indep.x, indep.y, "sigmoid")
    options = TrainOptions(epochs=DEFAULT_MAX_EPOCHS, patience=DEFAULT_PATIENCE, val_dir=data / "val", seed=seed, force=True)
    started = time.perf_counter()
    result = train(data / "train", run, options, callbacks=(score,))  # its per-epoch lines go to stderr
    seconds = time.perf_counter() - started
    spec = load_spec(run / "spec.json")
    model = load_keras_model(run)
    test = load_labelled(data / "test", spec)
    demo_test = float(np.mean(top1(keras_probabilities(model, test.x, spec.head)) == test.y))
    f_pred = top1(keras_probabilities(model, indep.x, spec.head))
    with redirect_stderr(io.StringIO()):
        int8 = convert_run(run, "int8").path
    q_pred = top1(TFLiteModel(int8, spec.head, len(spec.labels)).predict(indep.x))
    right = f_pred == indep.y
    by_kind = {k: (int(sum(1 for x in kinds if x == k)), float(np.mean([r for r, x in zip(right, kinds, strict=True) if x == k])))
               for k in ("normal", "small", "faint")}
    return SeedResult(
        seed=seed, epochs=result.epochs_run, best_epoch=result.best_epoch, best_val=result.best_val_accuracy,
        demo_test=demo_test, indep_float=float(np.mean(right)), indep_int8=float(np.mean(q_pred == indep.y)),
        agreement=float(np.mean(q_pred == f_pred)), by_kind=by_kind, seconds=seconds,
        per_epoch_indep=tuple(score.accuracy), val_curve=tuple(result.history["val_accuracy"]),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="built-in data with train/, val/ and test/ (generated, seed 0, if absent)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    parser.add_argument("--test-per-class", type=int, default=1000, help="independent test images per class")
    parser.add_argument("--work", type=Path, help="keep the runs and the test set here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="one seed")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")][: 1 if args.quick else None]

    from edgecls.demo_data import DemoDataOptions, describe, generate
    from edgecls.folders import load_scan, scan_folder
    from edgecls.model import import_tensorflow_quietly
    from edgecls.train import DEFAULT_MAX_EPOCHS, DEFAULT_PATIENCE

    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data is None or not (data / "val").is_dir():
        data = work / "data"
        if not (data / "val").is_dir():
            say(f"writing the demo's data (seed 0) to {data}")
            generate(data, DemoDataOptions(), force=True)
    indep_dir = work / f"independent-seed{TEST_SEED}"
    indep_opts = DemoDataOptions(train_per_class=1, test_per_class=args.test_per_class, seed=TEST_SEED, val_per_class=0)
    if not (indep_dir / "test").is_dir():
        say(f"writing {2 * args.test_per_class} independent test images (data seed {TEST_SEED}) to {indep_dir}")
        generate(indep_dir, indep_opts, force=True)
    indep = load_scan(scan_folder(indep_dir / "test"))
    drawn = describe(indep_opts, "test", args.test_per_class)
    kinds = []
    for path in indep.paths:
        d = drawn[f"{path.parent.name}/{path.name}"]
        kinds.append("faint" if d.faint else "small" if d.hard else "normal")
    import_tensorflow_quietly()
    results = []
    for seed in seeds:
        say(f"training seed {seed} as scripts/demo does")
        results.append(run_seed(seed, data, indep, kinds, work))
        r = results[-1]
        say(f"seed {seed}: {r.epochs} epochs, best {r.best_epoch}, independent float {r.indep_float:.2%} "
            f"int8 {r.indep_int8:.2%}, {r.seconds:.0f} s")
    tmp.cleanup()

    n = len(indep.y)
    print("## Demo model accuracy (issue 12 item 9)\n")
    print(f"`scripts/demo`'s training, once per training seed: built-in data seed 0, 3000 training images per class, "
          f"best epoch chosen on val/ (400 per class): `edgecls train data/train --val-dir data/val` (patience "
          f"{DEFAULT_PATIENCE}, at most {DEFAULT_MAX_EPOCHS} epochs, best epoch kept). Scored on the demo's test/ "
          f"(800) and on an independent set of {n} images (data seed {TEST_SEED}); neither was used for any choice. "
          "int8 is `edgecls convert --quantize int8` (calibrated on the training images). "
          f"Goal: at least {GOAL:.0%} on the independent set, float and int8, for every seed.\n")
    print("| training seed | epochs run | best epoch | val/ accuracy (best) | test/ (800) | independent float | "
          "independent int8 | int8 agrees with float | normal / small / faint (float) | training s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in results:
        kinds_cell = " / ".join(f"{acc:.1%} ({count})" for count, acc in r.by_kind.values())
        print(f"| {r.seed} | {r.epochs} | {r.best_epoch} | {r.best_val:.2%} | {r.demo_test:.2%} | {r.indep_float:.2%} | "
              f"{r.indep_int8:.2%} | {r.agreement:.2%} | {kinds_cell} | {r.seconds:.0f} |")
    ok = all(r.indep_float >= GOAL and r.indep_int8 >= GOAL for r in results)
    worst = min(min(r.indep_float, r.indep_int8) for r in results)
    print(f"\n**{'PASS' if ok else 'FAIL'}**: the lowest independent accuracy over {len(results)} seeds, float or int8, "
          f"is {worst:.2%} (goal {GOAL:.0%}); median float {statistics.median(r.indep_float for r in results):.2%}. "
          f"Standard error of one figure on {n} images: about {np.sqrt(0.95 * 0.05 / n):.1%}.\n")
    replayed = []
    for r in results:
        ran, best = stop_with_patience(list(r.val_curve), OLD_PATIENCE)
        if ran <= len(r.per_epoch_indep):
            replayed.append(f"seed {r.seed}: {ran} epochs, best {best}, independent float {r.per_epoch_indep[best - 1]:.2%}")
    print(f"With the previous patience of {OLD_PATIENCE}, replayed on the same validation curves: "
          + "; ".join(replayed) + ".\n")
    return 0  # the verdict is in the section; a FAIL is a figure, not a failure to run


if __name__ == "__main__":
    raise SystemExit(main())
