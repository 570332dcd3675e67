"""Training throughput: `edgecls train`'s tf.data pipeline vs the article's ImageDataGenerator.

Both train the same CNN (the baseline without the Rescaling layer, since its generator
rescales) on the same built-in data for the same epochs, alternating runs in one process
so machine noise hits both alike. Reports median images/s over epochs after the first,
their ratio, and validation accuracy after the last epoch. Prints a markdown section.

    .venv/bin/python scripts/bench_train.py [--data DIR] [--runs 3] [--epochs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GOAL_RATIO = 3.0


def _timer_callback(keras: Any, batch: int) -> Any:
    class Timer(keras.callbacks.Callback):  # type: ignore[misc]
        """images/s of the training part of each epoch (validation excluded)."""

        def __init__(self) -> None:
            super().__init__()
            self.rates: list[float] = []
            self._t = 0.0
            self._steps = 0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._t, self._steps = time.perf_counter(), 0

        def on_train_batch_end(self, b: int, logs: Any = None) -> None:
            self._steps += 1

        def on_test_begin(self, logs: Any = None) -> None:
            if self._t:
                self.rates.append(self._steps * batch / (time.perf_counter() - self._t))
                self._t = 0.0

    return Timer()


def run_baseline(data: Path, epochs: int, seed: int) -> tuple[list[float], float]:
    """The article's pipeline, verbatim: ImageDataGenerator(...).flow_from_directory(...)."""
    import keras
    import tensorflow as tf

    from edgecls.model import build_model

    keras.utils.set_random_seed(seed)
    gen = tf.keras.preprocessing.image.ImageDataGenerator(rescale=1.0 / 255, zoom_range=0.2, horizontal_flip=True)
    train = gen.flow_from_directory(str(data / "train"), target_size=(64, 64), batch_size=32,
                                    class_mode="binary", seed=seed)
    val = tf.keras.preprocessing.image.ImageDataGenerator(rescale=1.0 / 255).flow_from_directory(
        str(data / "test"), target_size=(64, 64), batch_size=32, class_mode="binary", shuffle=False)
    model = build_model(2, rescale=False)
    model.compile(optimizer=keras.optimizers.Adam(), loss="binary_crossentropy", metrics=["accuracy"])
    timer = _timer_callback(keras, 32)
    hist = model.fit(train, validation_data=val, epochs=epochs, verbose=0, callbacks=[timer])
    return timer.rates, float(hist.history["val_accuracy"][-1])


def run_edgecls(data: Path, epochs: int, seed: int) -> tuple[list[float], float]:
    from edgecls.train import TrainOptions, train

    with tempfile.TemporaryDirectory() as tmp:
        result = train(data / "train", Path(tmp) / "run", TrainOptions(epochs=epochs, val_dir=data / "test", seed=seed))
    return list(result.images_per_second), float(result.history["val_accuracy"][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="built-in data folder with train/ and test/ (generated if absent)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from edgecls.demo_data import DemoDataOptions, generate

    tmp = tempfile.TemporaryDirectory()
    data = args.data
    if data is None:
        data = Path(tmp.name) / "data"
        generate(data, DemoDataOptions())
    ours: list[list[float]] = []
    base: list[list[float]] = []
    acc_ours: list[float] = []
    acc_base: list[float] = []
    for run in range(args.runs):
        with redirect_stderr(io.StringIO()):  # keep the progress bars out of the report
            r, a = run_edgecls(data, args.epochs, seed=run)
        ours.append(r)
        acc_ours.append(a)
        with redirect_stdout(sys.stderr):  # flow_from_directory prints "Found N images" on stdout
            r, a = run_baseline(data, args.epochs, seed=run)
        base.append(r)
        acc_base.append(a)
    later_ours = statistics.median(x for r in ours for x in r[1:])
    later_base = statistics.median(x for r in base for x in r[1:])
    first_ours = statistics.median(r[0] for r in ours)
    first_base = statistics.median(r[0] for r in base)
    ratio = later_ours / later_base
    va_o, va_b = statistics.median(acc_ours), statistics.median(acc_base)
    print("## Training throughput (issue 2)\n")
    print(f"Built-in data (2 classes), {args.epochs} epochs, batch 32, Adam, same CNN; {args.runs} runs of each, "
          "alternating, in one process. images/s counts the training part of each epoch (validation excluded).\n")
    print("| pipeline | images/s, epoch 1 (median) | images/s, epochs 2+ (median) | val accuracy after last epoch (median) |")
    print("|---|---:|---:|---:|")
    print(f"| article: ImageDataGenerator.flow_from_directory | {first_base:.0f} | {later_base:.0f} | {va_b:.3f} |")
    print(f"| edgecls train (tf.data, decoded once, cached) | {first_ours:.0f} | {later_ours:.0f} | {va_o:.3f} |")
    verdict = "PASS" if ratio >= GOAL_RATIO and va_o >= va_b else "FAIL"
    print(f"\n**Ratio (epochs 2+): {ratio:.1f}x** (goal >= {GOAL_RATIO:.0f}x, validation accuracy at least as good): "
          f"{verdict}. Validation accuracy: edgecls {va_o:.3f} vs baseline {va_b:.3f}.")
    print("Note: flow_from_directory ignores .webp files, so the baseline trains on 11/12 of the images; "
          "the figures are per image.\n")
    tmp.cleanup()


if __name__ == "__main__":
    main()
