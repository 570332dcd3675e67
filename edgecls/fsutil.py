"""Atomic writes: a reader never sees a half-written model, report or run folder."""

from __future__ import annotations

import contextlib
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
        fd, tmp = tempfile.mkstemp(prefix=f"{staging_name(path.name)}.", suffix=".tmp", dir=path.parent)
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


def existing_ancestor(path: Path) -> Path:
    """The nearest existing path above ``path``: where creating it starts, so the one to
    check for being a writable folder before any slow work."""
    ancestor = Path(path).absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    return ancestor


def check_writable_dir(path: Path, *, force: bool, what: str = "output folder") -> None:
    """Refuse an existing non-empty folder unless ``force``; check the parent can be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} exists and is not a folder: choose another path")
    if path.is_dir():
        clean_stale_staging(path)
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OutputError(f"{what} {path} exists and is not empty: choose another path or pass --force")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write into {path}: choose a writable path for the {what}")
        return
    ancestor = existing_ancestor(path)
    if not ancestor.is_dir():
        raise OutputError(f"{what} {path} cannot be created: {ancestor} is a file, not a folder; choose another path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into {ancestor}: choose a writable path for the {what}")


#: Prefix of the hidden folders and files edgecls stages work in; the owner's pid follows,
#: so a later run can tell a kill -9's leftovers (pid gone) from a run still in progress.
STAGING_PREFIX = ".edgecls-staging"


def staging_name(what: str) -> str:
    return f"{STAGING_PREFIX}.{os.getpid()}.{what}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_staging(folder: Path) -> list[Path]:
    """Remove staging folders and temp files that a killed run left in ``folder``.

    Only entries whose owner pid no longer exists are removed, so two runs writing into one
    folder do not delete each other's work. Returns what was removed.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        parts = entry.name.split(".")
        if not entry.name.startswith(STAGING_PREFIX + ".") or len(parts) < 4 or not parts[2].isdigit():
            continue
        if _pid_alive(int(parts[2])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        removed.append(entry)
    return removed


class StagedDir:
    """Build a folder's contents in a hidden staging folder inside it; :meth:`commit` moves them in.

    The target folder itself is never renamed or removed: it may be a mount point (a USB
    stick, a bind mount), where renaming fails with EBUSY after all the work is done. So
    the work is staged inside it (same filesystem: every move is a rename), and a commit
    replaces the target's old entries with the new ones. If the work fails, the staging
    folder is removed (and the target too, if this created it and it is empty), and the old
    contents are untouched. A kill -9 leaves only hidden ``.edgecls-staging.<pid>.*``
    entries, which the next run removes (:func:`clean_stale_staging`).
    """

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        try:
            self.created = not self.target.exists()
            self.target.mkdir(parents=True, exist_ok=True)
            clean_stale_staging(self.target)
            self.path = Path(tempfile.mkdtemp(prefix=staging_name("new") + ".", dir=self.target))
        except OSError as err:
            raise OutputError(f"cannot write into {self.target}: {err.strerror}; choose a writable path") from err

    def commit(self) -> Path:
        old = Path(tempfile.mkdtemp(prefix=staging_name("old") + ".", dir=self.target))
        for entry in self.target.iterdir():
            if entry not in (self.path, old):
                os.replace(entry, old / entry.name)
        for entry in self.path.iterdir():
            os.replace(entry, self.target / entry.name)
        self.path.rmdir()
        shutil.rmtree(old, ignore_errors=True)
        return self.target

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self.created:
            with contextlib.suppress(OSError):
                self.target.rmdir()  # only if empty

    def __enter__(self) -> StagedDir:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.discard()
