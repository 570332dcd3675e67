"""The on-disk event spool of ``--mqtt``: events wait here until the broker acknowledged them.

Why sqlite3 (stdlib) and not hand-written segment files: one transaction assigns the next
``seq``, stores the event and trims the spool to its bounds, so a kill at any instant leaves
either the event with its seq or neither; deleting an acknowledged event is one statement;
and a torn write is the database's problem, not ours.

Durability, in WAL mode: the transaction that assigns seqs and stores events commits with
``synchronous=FULL`` (the WAL is fsynced before the commit returns, and so before any of those
events is handed to the network), so neither a killed process nor a power cut can make seq go
back to a number the host may already have. The publisher stores a whole batch per
transaction, so that is one fsync per batch, not per event. Deleting acknowledged events
commits with ``synchronous=NORMAL`` (no fsync): a power cut may undo the last deletes, and
those events are then sent again; the host drops the repeats by seq.

``seq`` comes from a counter row, never from ``max(seq)+1``: when every event was delivered and
deleted, a restart still continues after the last number, so seq never repeats or goes back.
A lock file keeps a second process (the same --device-id twice) off the same spool.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecls.errors import OutputError

DEFAULT_MAX_EVENTS = 100_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Seqs per ``IN (...)`` list when acknowledging (well under sqlite's oldest 999-variable limit).
ACK_CHUNK = 500


@dataclass(frozen=True)
class SpoolStats:
    pending: int
    bytes: int
    dropped: int
    next_seq: int


class Spool:
    """Bounded, crash-safe, ordered. Thread-safe: appends and acks may come from two threads."""

    def __init__(self, path: Path, max_events: int = DEFAULT_MAX_EVENTS, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = Path(path)
        self.max_events, self.max_bytes = max_events, max_bytes
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lockfile = open(str(self.path) + ".lock", "w")  # noqa: SIM115 - held for the run
        except OSError as err:
            raise OutputError(f"cannot create the MQTT spool {self.path}: {err.strerror}; "
                              "choose a writable --mqtt-spool") from None
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lockfile.close()
            raise OutputError(f"the MQTT spool {self.path} is in use by another edgecls run "
                              "(the same --device-id twice?); give each run its own --device-id") from None
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('next_seq', 0), ('dropped', 0)")
            row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM events").fetchone()
        except sqlite3.Error as err:
            self._lockfile.close()
            raise OutputError(f"the MQTT spool {self.path} is unusable ({err}); move it away to start a new one") from None
        self._count, self._bytes = int(row[0]), int(row[1])

    def _meta(self, key: str) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0])

    def append(self, make_payload: Callable[[int], bytes]) -> tuple[int, int]:
        """Store ``make_payload(seq)`` under the next seq; returns (seq, events dropped to make room)."""
        return self.append_many([make_payload])

    def append_many(self, makers: list[Callable[[int], bytes]]) -> tuple[int, int]:
        """Several events in one transaction (one commit, not one per event); returns (last
        seq, events dropped to make room)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._meta("next_seq")
                rows = []
                for make_payload in makers:
                    rows.append((seq, make_payload(seq)))
                    seq += 1
                self._db.executemany("INSERT INTO events VALUES (?, ?)", rows)
                self._db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (seq,))
                seq -= 1
                count = self._count + len(rows)
                size, dropped = self._bytes + sum(len(p) for _s, p in rows), 0
                while count > 1 and (count > self.max_events or size > self.max_bytes):
                    old = self._db.execute("SELECT seq, LENGTH(payload) FROM events ORDER BY seq LIMIT 1").fetchone()
                    self._db.execute("DELETE FROM events WHERE seq=?", (old[0],))
                    count, size, dropped = count - 1, size - int(old[1]), dropped + 1
                if dropped:
                    self._db.execute("UPDATE meta SET value=value+? WHERE key='dropped'", (dropped,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count, self._bytes = count, size
            return seq, dropped

    def pending(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` events with seq > ``after``, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                    (after, limit)).fetchall()
        return [(int(s), bytes(p)) for s, p in rows]

    def ack(self, seqs: list[int]) -> None:
        """The broker has these (PUBACK): forget them. One transaction for the whole batch, a
        few statements per ``ACK_CHUNK`` seqs (not two per event), without an fsync (see the
        module docstring: a power cut may only bring back events that were delivered)."""
        if not seqs:
            return
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                gone = size = 0
                for i in range(0, len(seqs), ACK_CHUNK):
                    chunk = seqs[i:i + ACK_CHUNK]
                    where = f"WHERE seq IN ({','.join('?' * len(chunk))})"
                    row = self._db.execute(f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM events {where}",
                                           chunk).fetchone()
                    self._db.execute(f"DELETE FROM events {where}", chunk)
                    gone, size = gone + int(row[0]), size + int(row[1])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            finally:
                self._db.execute("PRAGMA synchronous=FULL")
            self._count -= gone
            self._bytes -= size

    def stats(self) -> SpoolStats:
        with self._lock:
            return SpoolStats(self._count, self._bytes, self._meta("dropped"), self._meta("next_seq"))

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._lockfile.close()  # the lock goes last, after the database is closed


def default_spool_path(device_id: str) -> Path:
    """$STATE_DIRECTORY (systemd's StateDirectory=) or $XDG_STATE_HOME or ~/.local/state."""
    base = os.environ.get("STATE_DIRECTORY") or os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base.split(":")[0]) / "edgecls" / f"mqtt-{device_id}.sqlite"
