"""Image folders with one subfolder per class: scanning, validation and loading (no TensorFlow).

Loading decodes and prepares each image once, through the shared preprocessing
(:func:`edgecls.images.load_model_input`), in a thread pool: OpenCV releases the GIL.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecls.errors import DataError
from edgecls.images import extensions_text, iter_image_files, load_model_input
from edgecls.labels import check_label
from edgecls.preprocess import INPUT_SIZE


@dataclass(frozen=True)
class FolderScan:
    """The image files of a class-folder dataset. ``classes`` is sorted; index = class id."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[tuple[Path, ...], ...]

    @property
    def num_files(self) -> int:
        return sum(len(f) for f in self.files)

    def items(self) -> list[tuple[Path, int]]:
        return [(path, ci) for ci, paths in enumerate(self.files) for path in paths]


@dataclass(frozen=True)
class LoadedImages:
    """Prepared model inputs (N x S x S x 3 uint8 RGB), their class ids and paths, and what was skipped."""

    x: np.ndarray
    y: np.ndarray
    paths: tuple[Path, ...]
    skipped: tuple[Path, ...]


def scan_folder(root: Path, *, what: str = "data folder", min_classes: int = 2) -> FolderScan:
    """List class subfolders and their image files; refuse what cannot be a dataset."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{what} {root} does not exist: give a folder with one subfolder per class")
    if not root.is_dir():
        raise DataError(f"{what} {root} is not a folder: give a folder with one subfolder per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        loose = any(True for _ in iter_image_files(root))
        hint = " (it holds images directly: put them in one subfolder per class)" if loose else ""
        raise DataError(f"{what} {root} is empty{hint}: give a folder with one subfolder per class")
    if len(class_dirs) < min_classes:
        raise DataError(
            f"{what} {root} has {len(class_dirs)} class folder ({class_dirs[0].name}); "
            f"a classifier needs at least {min_classes}: add a subfolder per class"
        )
    files = []
    for d in class_dirs:
        check_label(d.name, str(d))
        found = tuple(iter_image_files(d, recursive=True))
        if not found:
            raise DataError(
                f"class folder {d} has no image files ({extensions_text()}): add images or remove it"
            )
        files.append(found)
    return FolderScan(root, tuple(d.name for d in class_dirs), tuple(files))


def load_items(
    items: list[tuple[Path, int]], size: int = INPUT_SIZE, *, threads: int | None = None
) -> LoadedImages:
    """Decode and prepare each file once; unreadable files are skipped and listed."""
    workers = threads or min(8, (os.cpu_count() or 1) + 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(pool.map(lambda item: load_model_input(item[0], size), items))
    keep = [i for i, a in enumerate(arrays) if a is not None]
    skipped = tuple(items[i][0] for i, a in enumerate(arrays) if a is None)
    good = [a for a in arrays if a is not None]
    x = np.stack(good) if good else np.zeros((0, size, size, 3), np.uint8)
    y = np.array([items[i][1] for i in keep], dtype=np.int64)
    return LoadedImages(x, y, tuple(items[i][0] for i in keep), skipped)


def load_scan(scan: FolderScan, size: int = INPUT_SIZE) -> LoadedImages:
    """Load a whole scanned folder; refuse it if a class ends up with no readable image."""
    loaded = load_items(scan.items(), size)
    if len(loaded.y) == 0:
        raise DataError(f"no image in {scan.root} could be decoded ({len(loaded.skipped)} corrupt): check the files")
    counts = np.bincount(loaded.y, minlength=len(scan.classes))
    for ci, n in enumerate(counts):
        if n == 0:
            raise DataError(
                f"class folder {scan.root / scan.classes[ci]} has no readable image "
                f"({len(scan.files[ci])} files, all corrupt): replace them"
            )
    return loaded


def stratified_sample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of about ``n`` items, spread evenly over classes, deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per = max(1, n // max(1, len(classes)))
    picked = [rng.permutation(np.flatnonzero(y == c))[:per] for c in classes]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def check_classes_match(scan: FolderScan, labels: tuple[str, ...], *, what: str) -> None:
    """Refuse a folder whose class subfolders are not the model's labels."""
    extra = sorted(set(scan.classes) - set(labels))
    if extra:
        raise DataError(
            f"{what} {scan.root} has class folders the model does not know: {', '.join(extra)} "
            f"(model labels: {', '.join(labels)}): use data for this model"
        )


def load_extra_data(folders: tuple[Path, ...], classes: tuple[str, ...], data_dir: Path) -> LoadedImages:
    """Reviewed class folders (``edgecls train --extra-data``) loaded with DATA_DIR's class ids.

    A class folder DATA_DIR does not have is refused: a new class needs its own training
    images, not only the field's mistakes; add it to DATA_DIR if it is intended.
    """
    items: list[tuple[Path, int]] = []
    for folder in folders:
        scan = scan_folder(folder, what="--extra-data folder", min_classes=1)
        extra = sorted(set(scan.classes) - set(classes))
        if extra:
            raise DataError(
                f"--extra-data {folder} has class folders that training folder {data_dir} lacks: {', '.join(extra)} "
                f"(classes: {', '.join(classes)}): move those images into a known class, or add the class to {data_dir}"
            )
        items += [(path, classes.index(scan.classes[ci])) for path, ci in scan.items()]
    return load_items(items) if items else LoadedImages(np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), np.uint8),
                                                        np.zeros(0, np.int64), (), ())
