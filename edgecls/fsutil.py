"""Atomic writes: a reader never sees a half-written model, report or run folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgecls.errors import OutputError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror}; choose a writable path") from err
    try:
        # mkstemp makes 0600 files; give the result the mode a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def npy_bytes(array: Any) -> bytes:
    """``array`` as the bytes of a C-ordered ``.npy`` file, never pickled (bundles and saved frames)."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def check_writable_dir(path: Path, *, force: bool, what: str = "output folder") -> None:
    """Refuse an existing non-empty folder unless ``force``; check the parent can be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} exists and is not a folder: choose another path")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OutputError(f"{what} {path} exists and is not empty: choose another path or pass --force")
    parent = path.resolve().parent
    if not parent.exists():
        try:
            parent.mkdir(parents=True)
        except OSError as err:
            raise OutputError(f"cannot create {parent}: {err.strerror}; choose a writable path") from err
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write into {parent}: choose a writable path for the {what}")


class StagedDir:
    """Build a folder under a temp name beside its target; :meth:`commit` swaps it in.

    If the work fails, the temp folder is removed and the target is untouched.
    """

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.target.resolve().parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(
            tempfile.mkdtemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.resolve().parent)
        )

    def commit(self) -> Path:
        old: Path | None = None
        if self.target.exists():
            old = self.target.with_name(f".{self.target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.target, old)
        os.replace(self.path, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.target

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> StagedDir:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.discard()
