"""The on-disk event spool of ``--mqtt``: events wait here until the broker acknowledged them.

Why sqlite3 (stdlib) and not hand-written segment files: one transaction assigns the next
``seq``, stores the event and trims the spool to its bounds, so a kill at any instant leaves
either the event with its seq or neither; deleting an acknowledged event is one statement;
and a torn write is the database's problem, not ours.

Durability, in WAL mode. A transaction that stores events while they wait (the broker is
away, or has acknowledged nothing for the publisher's ``ACK_WAIT_S``) commits with
``synchronous=FULL``: the WAL is fsynced before the commit returns, so a power cut cannot take
an event the spool was trusted to keep. While the broker acknowledges as it goes, events are
stored with ``synchronous=NORMAL`` (no fsync): a power cut may take those not yet acknowledged
(about ``ACK_WAIT_S`` worth at most: the next fsync'd commit makes every earlier one durable
too), as it takes the events still queued in memory; a killed process takes none (the kernel
holds the commit). Why: an fsync a batch is a write barrier a batch on a Pi's SD card, and on
one bench machine it was the whole cost of ``--mqtt`` to the frame loop (BENCHMARKS.md,
sessions 10 and 11). Deleting acknowledged events commits with NORMAL: a power cut may undo
the last deletes, and those events are then sent again; the host drops the repeats by seq.

``seq`` never repeats or goes back, power cut or not. It comes from a counter row, never from
``max(seq)+1`` (when every event was delivered and deleted, a restart continues after the last
number), and a commit without an fsync only ever hands out seqs below a reservation that is on
disk: every ``SEQ_BLOCK`` seqs one commit raises it, with FULL. A spool reopened in the same
boot (the process was killed; the kernel kept every commit) goes on from its counter; one
reopened after a reboot that followed an unclean stop goes on past the reservation, and counts
the seqs it skips (``skipped``, in the device's stats): the host sees them as a gap, which
may also hold events a power cut took. A clean close lowers the reservation to the counter,
so a clean stop never leaves a gap. A lock file keeps a second process (the same
--device-id twice) off the same spool.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edgecls.errors import OutputError

log = logging.getLogger("edgecls.device")

DEFAULT_MAX_EVENTS = 100_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Seqs per ``IN (...)`` list when acknowledging (well under sqlite's oldest 999-variable limit).
ACK_CHUNK = 500
#: Seqs handed out per fsync'd reservation: the most a reboot after a power cut can skip.
SEQ_BLOCK = 1000
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class SpoolStats:
    pending: int
    bytes: int
    dropped: int
    next_seq: int
    skipped: int = 0


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
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('next_seq', 0), ('dropped', 0), ('reserved', 0), "
                             "('boot', 0), ('skipped', 0)")
            self._sync = True
            self._next = self._reserved = self._resume()
            row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM events").fetchone()
        except sqlite3.Error as err:
            self._lockfile.close()
            raise OutputError(f"the MQTT spool {self.path} is unusable ({err}); move it away to start a new one") from None
        self._count, self._bytes = int(row[0]), int(row[1])

    def _resume(self) -> int:
        """The next seq at open, which is also the reservation from then on. After a reboot (or
        with no boot id to tell), commits made without an fsync may be gone: go on past the
        reservation, which holds."""
        boot = boot_id()
        with self._transaction(full=True):
            nxt, reserved, last_boot = (self._meta(k) for k in ("next_seq", "reserved", "boot"))
            if (boot == 0 or boot != last_boot) and reserved > nxt:
                self._db.execute("UPDATE meta SET value=value+? WHERE key='skipped'", (reserved - nxt,))
                nxt = reserved
            self._db.executemany("UPDATE meta SET value=? WHERE key=?",
                                 [(nxt, "next_seq"), (nxt, "reserved"), (boot, "boot")])
        return nxt

    @contextlib.contextmanager
    def _transaction(self, *, full: bool) -> Iterator[None]:
        """One write transaction, committed with an fsync (``full``) or without; rolled back on
        any error. The caller holds ``_lock`` (or is ``__init__``)."""
        if full != self._sync:
            self._db.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
            self._sync = full
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _meta(self, key: str) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0])

    def append(self, make_payload: Callable[[int], bytes], *, sync: bool = True) -> tuple[int, int]:
        """Store ``make_payload(seq)`` under the next seq; returns (seq, events dropped to make room)."""
        return self.append_many([make_payload], sync=sync)

    def append_many(self, makers: list[Callable[[int], bytes]], *, sync: bool = True) -> tuple[int, int]:
        """Several events in one transaction (one commit, not one per event); returns (last
        seq, events dropped to make room). ``sync=False``: no fsync (the events go straight
        out; see the module docstring), unless the batch needs a new seq reservation."""
        with self._lock:
            first = self._next
            last = first + len(makers) - 1
            reserved = self._reserved if last < self._reserved else last + 1 + SEQ_BLOCK
            with self._transaction(full=sync or reserved != self._reserved):
                rows = [(seq, make(seq)) for seq, make in enumerate(makers, start=first)]
                self._db.executemany("INSERT INTO events VALUES (?, ?)", rows)
                self._db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (last + 1,))
                if reserved != self._reserved:
                    self._db.execute("UPDATE meta SET value=? WHERE key='reserved'", (reserved,))
                count = self._count + len(rows)
                size, dropped = self._bytes + sum(len(p) for _s, p in rows), 0
                while count > 1 and (count > self.max_events or size > self.max_bytes):
                    old = self._db.execute("SELECT seq, LENGTH(payload) FROM events ORDER BY seq LIMIT 1").fetchone()
                    self._db.execute("DELETE FROM events WHERE seq=?", (old[0],))
                    count, size, dropped = count - 1, size - int(old[1]), dropped + 1
                if dropped:
                    self._db.execute("UPDATE meta SET value=value+? WHERE key='dropped'", (dropped,))
            self._count, self._bytes = count, size
            self._next, self._reserved = last + 1, reserved
            return last, dropped

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
        gone = size = 0
        with self._lock, self._transaction(full=False):
            for i in range(0, len(seqs), ACK_CHUNK):
                chunk = seqs[i:i + ACK_CHUNK]
                where = f"WHERE seq IN ({','.join('?' * len(chunk))})"
                row = self._db.execute(f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM events {where}",
                                       chunk).fetchone()
                self._db.execute(f"DELETE FROM events {where}", chunk)
                gone, size = gone + int(row[0]), size + int(row[1])
            self._count -= gone
            self._bytes -= size

    def stats(self) -> SpoolStats:
        with self._lock:
            return SpoolStats(self._count, self._bytes, self._meta("dropped"), self._next, self._meta("skipped"))

    def close(self) -> None:
        """A clean stop: the reservation comes down to the counter (so the next start, even
        after a reboot, leaves no gap), in one fsync'd commit that also makes every event
        stored without an fsync durable."""
        with self._lock:
            try:
                with self._transaction(full=True):
                    self._db.execute("UPDATE meta SET value=? WHERE key='reserved'", (self._next,))
            except sqlite3.Error as err:  # the next start after a reboot skips a block: no harm
                log.warning("MQTT spool %s: could not record a clean stop (%s)", self.path, err)
            self._db.close()
            self._lockfile.close()  # the lock goes last, after the database is closed


def boot_id() -> int:
    """This boot's id (Linux), 0 when there is none to read: then every start counts as
    after a reboot."""
    try:
        return int(BOOT_ID.read_text(encoding="ascii").strip().replace("-", "")[:15], 16)
    except (OSError, ValueError):
        return 0


def default_spool_path(device_id: str) -> Path:
    """$STATE_DIRECTORY (systemd's StateDirectory=) or $XDG_STATE_HOME or ~/.local/state."""
    base = os.environ.get("STATE_DIRECTORY") or os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base.split(":")[0]) / "edgecls" / f"mqtt-{device_id}.sqlite"
