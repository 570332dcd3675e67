"""The ``--jsonl`` results file: appended, never truncated, each line whole or not at all.

Why each rule:

- **Append, never truncate.** The systemd unit restarts ``edgecls run`` with the same path
  after a crash, an update or a reboot; opening with ``"w"`` erased every earlier result.
  The file is opened (O_APPEND) only by :meth:`JsonlWriter.open`, which the loop calls after
  every check has passed, so a run refused for a bad option leaves the file untouched.
- **Whole lines.** A record is encoded first and written with a single ``os.write`` on the
  O_APPEND descriptor. A kill -9 cannot split one ``write`` to a local file; a full disk can
  (a short write), so a short or failed write is cut back with ``ftruncate`` to the size
  before it: no torn JSON. A torn last line found at open (a power cut) is cut off and logged.
- **A full disk does not stop the classifier.** The run keeps classifying (the preview,
  the console and the other sinks still work); records are dropped and counted while writes
  fail, with one log line when it starts and one when writing resumes; ``run_end`` carries
  the count. Retries are at most once a second.
- **Bounded size.** With ``max_bytes`` the file is rotated before a line would cross it:
  renamed to ``NAME.<UTC time>``, gzip-compressed on a thread of its own (JSON lines shrink
  about 10x), and only the newest ``keep`` rotated files are kept. A compression cut short by
  a kill is redone by the next run.

gzip from the standard library, not logging's RotatingFileHandler: the handler's
``stream.write`` may split a line on a full disk and has no way to cut it back.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import logging
import os
import queue
import re
import shutil
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgecls.errors import OutputError

log = logging.getLogger("edgecls.device")

#: Seconds between fsyncs of the open file (a power cut loses at most this much).
FSYNC_EVERY_S = 5.0
#: After a failed write, the next attempt waits this long (a full disk is not retried per frame).
RETRY_AFTER_S = 1.0
#: The largest tail read to find the last whole line of an existing file.
TAIL_SCAN_BYTES = 1 << 20
_ROTATED = re.compile(r"\.(\d{8}T\d{12})(\.gz)?$")


def encode_record(record: dict[str, Any]) -> bytes:
    """One record as one line of UTF-8 JSON (compact; non-ASCII labels kept readable)."""
    return (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


class JsonlWriter:
    """Append JSON lines to ``path``; see the module docstring for the guarantees.

    ``max_bytes`` 0 disables rotation; ``keep`` is how many rotated files survive.
    """

    def __init__(self, path: Path, *, max_bytes: int = 0, keep: int = 10) -> None:
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.keep = int(keep)
        self.written = 0
        self.dropped = 0
        self.rotations = 0
        self._fd: int | None = None
        self._size = 0
        self._failing_since: float | None = None
        self._next_retry = 0.0
        self._last_sync = 0.0
        self._compress: queue.Queue[Path | None] = queue.Queue()
        self._compressor: threading.Thread | None = None
        check_jsonl_path(self.path)

    # -- opening ---------------------------------------------------------------------------
    def open(self) -> None:
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            self._size = os.fstat(self._fd).st_size
            self._cut_torn_tail()
        except OSError as err:
            self._close_fd()
            raise OutputError(f"cannot write --jsonl {self.path}: {err.strerror}; choose a writable file path") from err
        self._last_sync = time.monotonic()
        for stale in self.path.parent.glob(f".{self.path.name}.*.gz.tmp"):  # a compression cut short by a kill
            with contextlib.suppress(OSError):
                stale.unlink()
        if self.max_bytes > 0:
            self._start_compressor()
            for leftover in self._rotated(compressed=False):
                self._compress.put(leftover)

    def _cut_torn_tail(self) -> None:
        assert self._fd is not None
        if self._size == 0:
            return
        with open(self.path, "rb") as fh:
            start = max(0, self._size - TAIL_SCAN_BYTES)
            fh.seek(start)
            tail = fh.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        keep = start + cut + 1 if cut >= 0 else (0 if start == 0 else self._size)
        if keep == self._size:
            return
        os.ftruncate(self._fd, keep)
        log.warning("--jsonl %s ended in a torn line (%d bytes, a power cut mid-write?): cut it off",
                    self.path, self._size - keep)
        self._size = keep

    # -- writing ---------------------------------------------------------------------------
    def write(self, record: dict[str, Any]) -> bool:
        """Write one record as a whole line; False (and counted) if the disk refused it."""
        if self._fd is None:
            raise OutputError(f"--jsonl {self.path} is not open")
        line = encode_record(record)
        now = time.monotonic()
        if self._failing_since is not None and now < self._next_retry:
            self.dropped += 1
            return False
        if self.max_bytes > 0 and self._size > 0 and self._size + len(line) > self.max_bytes:
            self._rotate()
        if not self._write_whole(line):
            self.dropped += 1
            self._next_retry = now + RETRY_AFTER_S
            return False
        if self._failing_since is not None:
            log.warning("--jsonl %s: writing again after %.0f s; %d records were dropped while it failed",
                        self.path, now - self._failing_since, self.dropped)
            self._failing_since = None
        self.written += 1
        if now - self._last_sync >= FSYNC_EVERY_S:
            self._last_sync = now
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
        return True

    def _write_whole(self, line: bytes) -> bool:
        assert self._fd is not None
        before = self._size
        try:
            n = os.write(self._fd, line)
            if n == len(line):
                self._size += n
                return True
            err: OSError = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            err = exc
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, before)  # a short write must not leave half a line
        self._size = before
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("--jsonl %s: cannot write (%s); results are counted but not written until it can, "
                        "classifying continues", self.path, err.strerror or err)
        return False

    # -- rotation --------------------------------------------------------------------------
    def _rotated(self, *, compressed: bool | None = None) -> list[Path]:
        found = []
        for p in self.path.parent.glob(f"{self.path.name}.*"):
            m = _ROTATED.search(p.name[len(self.path.name):])
            if (m and p.name == f"{self.path.name}.{m.group(1)}{m.group(2) or ''}"
                    and (compressed is None or bool(m.group(2)) == compressed)):
                found.append(p)
        return sorted(found)

    def _rotate(self) -> None:
        assert self._fd is not None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        target = self.path.with_name(f"{self.path.name}.{stamp}")
        try:
            os.fsync(self._fd)
            os.replace(self.path, target)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as err:
            log.warning("--jsonl %s: cannot rotate (%s); appending to the current file", self.path, err.strerror)
            return
        os.close(self._fd)
        self._fd = fd
        self._size = 0
        self.rotations += 1
        self._compress.put(target)

    def _start_compressor(self) -> None:
        self._compressor = threading.Thread(target=self._compress_loop, name="jsonl gzip", daemon=True)
        self._compressor.start()

    def _compress_loop(self) -> None:
        while True:
            item = self._compress.get()
            if item is None:
                return
            try:
                gz_path(item)
            except OSError as err:
                log.warning("--jsonl: cannot compress %s (%s); left uncompressed", item.name, err.strerror)
            self._prune()

    def _prune(self) -> None:
        rotated = self._rotated()
        by_stamp: dict[str, list[Path]] = {}
        for p in rotated:
            by_stamp.setdefault(p.name.split(".")[-2 if p.suffix == ".gz" else -1], []).append(p)
        for stamp in sorted(by_stamp)[: max(0, len(by_stamp) - self.keep)]:
            for p in by_stamp[stamp]:
                with contextlib.suppress(OSError):
                    p.unlink()

    # -- closing ---------------------------------------------------------------------------
    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self._close_fd()
        if self._compressor is not None:
            self._compress.put(None)
            self._compressor.join()
            self._compressor = None


def gz_path(raw: Path) -> Path:
    """Compress a rotated file to ``raw.gz`` (via a temp name, so a kill leaves no half .gz)."""
    target = raw.with_name(raw.name + ".gz")
    tmp = raw.with_name(f".{raw.name}.gz.tmp")
    with open(raw, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    os.replace(tmp, target)
    raw.unlink()
    return target


def check_jsonl_path(path: Path) -> None:
    """Refuse a path that cannot become the results file, without creating or touching it."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write --jsonl {path}: it is a folder; choose a file path")
    parent = path.parent
    if not parent.is_dir():
        why = "is not a folder" if parent.exists() else "does not exist"
        raise OutputError(f"cannot write --jsonl {path}: {parent} {why}; choose a writable file path")
    if (path.exists() and not os.access(path, os.W_OK)) or (not path.exists() and not os.access(parent, os.W_OK)):
        raise OutputError(f"cannot write --jsonl {path}: permission denied; choose a writable file path")
