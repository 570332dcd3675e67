"""``edgecls train``: the article's CNN on a class-folder dataset. Host only.

Everything is written into a staged folder beside RUN_DIR and swapped in at the end, so
a failed or interrupted run leaves nothing at RUN_DIR.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from edgecls import plots
from edgecls.dataset import BATCH_SIZE, eval_dataset, train_dataset
from edgecls.errors import DataError
from edgecls.folders import FolderScan, LoadedImages, load_extra_data, load_scan, scan_folder
from edgecls.fsutil import StagedDir, atomic_write_json, atomic_write_text, check_writable_dir
from edgecls.labels import write_labels
from edgecls.model import LABELS_FILE, MODEL_FILE, SPEC_FILE, build_model, import_keras
from edgecls.spec import ModelSpec, save_spec

#: The article trains for 5 epochs (``--epochs 5``; the library's default).
DEFAULT_EPOCHS = 5
#: Without --epochs the CLI trains until validation accuracy has not improved for
#: DEFAULT_PATIENCE epochs, at most DEFAULT_MAX_EPOCHS, and keeps the best epoch: after the
#: article's 5 epochs the built-in data's validation accuracy is still climbing. Validation
#: accuracy on 800 images swings by 1-2 points from epoch to epoch, so a patience of 3 often
#: stopped while training loss and accuracy were still improving.
DEFAULT_PATIENCE = 5
DEFAULT_MAX_EPOCHS = 30
STEPS_PER_EXECUTION = 16


@dataclass(frozen=True)
class TrainOptions:
    """epochs: passes over the training set (>= 1); with ``patience`` the most it may run.
    patience: stop once validation accuracy has not improved for this many epochs (0: run
    all ``epochs``, as the article does). The saved model is the best epoch's either way.
    val_dir: a separate validation folder with the same class folders; else val_split is used.
    val_split: fraction of DATA_DIR held out (stratified) when no val_dir is given, in (0, 1).
    seed: seeds the split, the shuffles, the augmentation and the weights.
    batch_size: 32, as the article.
    force: replace a non-empty RUN_DIR.
    extra_data: reviewed class folders (e.g. from ``edgecls field import``) added to the
    training images only, never to validation; their classes must be DATA_DIR's.
    """

    epochs: int = DEFAULT_EPOCHS
    patience: int = 0
    val_dir: Path | None = None
    val_split: float = 0.2
    seed: int = 0
    batch_size: int = BATCH_SIZE
    force: bool = False
    extra_data: tuple[Path, ...] = ()

    def validate(self) -> None:
        if self.epochs < 1:
            raise DataError(f"--epochs must be at least 1, got {self.epochs}")
        if self.patience < 0:
            raise DataError(f"--patience must be 0 or more, got {self.patience}")
        if not 0.0 < self.val_split < 1.0:
            raise DataError(f"--val-split must be between 0 and 1 (exclusive), got {self.val_split}")
        if self.batch_size < 1:
            raise DataError(f"--batch-size must be at least 1, got {self.batch_size}")


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    labels: tuple[str, ...]
    history: dict[str, list[float]]
    best_epoch: int
    best_val_accuracy: float
    train_count: int
    val_count: int
    skipped: tuple[Path, ...]
    images_per_second: tuple[float, ...]
    #: Epochs actually run (fewer than ``TrainOptions.epochs`` when early stopping ended it).
    epochs_run: int = 0


def split_validation(loaded: LoadedImages, fraction: float, seed: int) -> tuple[LoadedImages, LoadedImages]:
    rng = np.random.default_rng(seed)
    val_idx = []
    for c in np.unique(loaded.y):
        idx = rng.permutation(np.flatnonzero(loaded.y == c))
        if len(idx) < 2:
            where = loaded.paths[idx[0]].parent if len(idx) else "a class folder"
            raise DataError(
                f"class folder {where} has {len(idx)} readable image: holding some out for validation "
                "needs at least 2 per class (dozens to learn anything); add images or give --val-dir"
            )
        val_idx.extend(idx[: max(1, round(len(idx) * fraction))].tolist())
    mask = np.zeros(len(loaded.y), bool)
    mask[val_idx] = True

    def pick(m: np.ndarray) -> LoadedImages:
        paths = tuple(p for p, keep in zip(loaded.paths, m, strict=True) if keep)
        return LoadedImages(loaded.x[m], loaded.y[m], paths, ())

    return pick(~mask), pick(mask)


def _concat(a: LoadedImages, b: LoadedImages) -> LoadedImages:
    if len(b.y) == 0:
        return a
    return LoadedImages(np.concatenate([a.x, b.x]), np.concatenate([a.y, b.y]), a.paths + b.paths, a.skipped)


def _epoch_callback(keras: Any, console: Console, epochs: int, steps: int, batch: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    class EpochReport(keras.callbacks.Callback):  # type: ignore[misc]
        """A progress bar per epoch and the article's per-epoch line; records images/s."""

        def __init__(self) -> None:
            super().__init__()
            self.images_per_second: list[float] = []
            self._progress: Progress | None = None
            self._task: Any = None
            self._start = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()
            if not console.is_terminal:  # a log file gets the per-epoch lines only
                return
            self._progress = Progress(
                TextColumn(f"epoch {epoch + 1}/{epochs}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=console, transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=steps)

        def on_train_batch_end(self, batch_index: int, logs: Any = None) -> None:
            if self._progress is not None:
                self._progress.update(self._task, completed=batch_index + 1)

        def on_test_begin(self, logs: Any = None) -> None:
            # validation runs after the last batch: stop the clock for images/s here
            if self._start:
                self.images_per_second.append(steps * batch / (time.perf_counter() - self._start))
                self._start = 0.0

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if self._progress is not None:
                self._progress.stop()
                self._progress = None
            logs = logs or {}
            console.print(
                f"epoch {epoch + 1}/{epochs}  loss {logs.get('loss', float('nan')):.4f}  "
                f"accuracy {logs.get('accuracy', float('nan')):.4f}  "
                f"val_loss {logs.get('val_loss', float('nan')):.4f}  "
                f"val_accuracy {logs.get('val_accuracy', float('nan')):.4f}"
            )

    return EpochReport()


def _warm_up_quietly(dataset: Any) -> None:
    """Build the pipeline's graph once with native output captured: TF 2.21 logs a harmless
    ERROR line about an unknown tf.data attribute the first time a parallel map runs."""
    from edgecls.quiet import captured

    with captured():
        next(iter(dataset.take(1)))


def _load_data(data_dir: Path, options: TrainOptions) -> tuple[FolderScan, LoadedImages, LoadedImages, tuple[Path, ...]]:
    scan = scan_folder(data_dir, what="training folder")
    val_scan = None
    if options.val_dir is not None:
        val_scan = scan_folder(options.val_dir, what="validation folder")
        if val_scan.classes != scan.classes:
            raise DataError(
                f"validation folder {options.val_dir} has classes {', '.join(val_scan.classes)} but "
                f"training folder {data_dir} has {', '.join(scan.classes)}: use matching class folders"
            )
    extra = load_extra_data(options.extra_data, scan.classes, data_dir)
    loaded = load_scan(scan)
    if val_scan is not None:
        val = load_scan(val_scan)
        return scan, _concat(loaded, extra), val, loaded.skipped + val.skipped + extra.skipped
    train, val = split_validation(loaded, options.val_split, options.seed)
    return scan, _concat(train, extra), val, loaded.skipped + extra.skipped


def train(data_dir: Path, run_dir: Path, options: TrainOptions, console: Console | None = None, *,
          callbacks: tuple[Any, ...] = ()) -> TrainResult:
    """Train the article's CNN on DATA_DIR and write a complete RUN_DIR. ``callbacks``: more
    Keras callbacks, run after edgecls's own (scripts/bench_demo.py scores each epoch with one)."""
    console = console or Console(stderr=True, markup=False)
    options.validate()
    check_writable_dir(run_dir, force=options.force, what="run folder")
    scan, tr, va, skipped = _load_data(Path(data_dir), options)
    labels = scan.classes
    console.print(
        f"training on {len(tr.y)} images, validating on {len(va.y)}, classes: {', '.join(labels)}"
        + (f"  ({len(skipped)} unreadable files skipped, listed in train.log)" if skipped else "")
    )
    keras = import_keras()
    import tensorflow as tf

    keras.utils.set_random_seed(options.seed)
    tf.config.experimental.enable_op_determinism()
    binary = len(labels) == 2
    model = build_model(len(labels))
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # Same batches and maths; running many steps per call removes the per-step Python
        # round trip that dominates for a model this small (about 1.5x images/s here).
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    steps = int(np.ceil(len(tr.y) / options.batch_size))
    with StagedDir(run_dir) as staged:
        report = _epoch_callback(keras, console, options.epochs, steps, options.batch_size)
        best = keras.callbacks.ModelCheckpoint(
            str(staged.path / MODEL_FILE), monitor="val_accuracy", mode="max", save_best_only=True
        )
        train_ds = train_dataset(tr.x, tr.y, seed=options.seed, batch_size=options.batch_size)
        _warm_up_quietly(train_ds)
        stops = []
        if options.patience > 0:
            stops.append(keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=options.patience, restore_best_weights=True))
        fit = model.fit(
            train_ds,
            validation_data=eval_dataset(va.x, va.y),
            epochs=options.epochs, verbose=0, callbacks=[report, best, *callbacks, *stops], shuffle=False,
        )
        history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
        best_epoch = int(np.argmax(history["val_accuracy"]))
        spec = ModelSpec(labels=labels, head="sigmoid" if binary else "softmax",
                         train_dir=str(Path(data_dir).resolve()))
        save_spec(staged.path / SPEC_FILE, spec)
        write_labels(staged.path / LABELS_FILE, labels)
        atomic_write_json(staged.path / "history.json", {
            "epochs": len(history["val_accuracy"]), "max_epochs": options.epochs, "patience": options.patience,
            "batch_size": options.batch_size, "seed": options.seed,
            # where the validation images came from, so conversion can re-check parity on them
            "val_dir": str(Path(options.val_dir).resolve()) if options.val_dir is not None else None,
            "val_split": None if options.val_dir is not None else options.val_split,
            "best_epoch": best_epoch + 1, "best_val_accuracy": history["val_accuracy"][best_epoch],
            "train_count": len(tr.y), "val_count": len(va.y),
            "images_per_second": report.images_per_second, "history": history,
        })
        plots.training_curves(history, staged.path / "curves.png")
        log = [f"data: {Path(data_dir).resolve()}", f"train images: {len(tr.y)}", f"validation images: {len(va.y)}",
               f"skipped (unreadable): {len(skipped)}", *[f"  skipped {p}" for p in skipped],
               f"history: {json.dumps(history)}"]
        atomic_write_text(staged.path / "train.log", "\n".join(log) + "\n")
        staged.commit()
    return TrainResult(
        run_dir=Path(run_dir), labels=labels, history=history, best_epoch=best_epoch + 1,
        best_val_accuracy=history["val_accuracy"][best_epoch], train_count=len(tr.y),
        val_count=len(va.y), skipped=skipped, images_per_second=tuple(report.images_per_second),
        epochs_run=len(history["val_accuracy"]),
    )
