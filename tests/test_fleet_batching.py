"""The batched event path of ``--mqtt``: the loop appends, the publisher spools and acknowledges
whole batches. Order, drop counting and the spool's bookkeeping must hold across batches,
with a real Mosquitto where the network is involved."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from mqtt_helpers import Mosquitto, needs_mosquitto

from edgecls.fleet_protocol import Topics, make_client, parse_broker


def _db_view(path: Path) -> tuple[int, int, list[int]]:
    """count, bytes and seqs as the file has them (a second reader: WAL allows it)."""
    con = sqlite3.connect(path)
    try:
        count, size = con.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM events").fetchone()
        seqs = [r[0] for r in con.execute("SELECT seq FROM events ORDER BY seq")]
    finally:
        con.close()
    return int(count), int(size), seqs


def test_pacer_ticks_long_only_while_label_changes_keep_coming() -> None:
    """A camera's occasional label change (and a short burst) goes out on the short tick; a
    label that changes many times a second gets the long tick, keeps it while the changes keep
    coming (a few big batches a second), and loses it when they calm down."""
    from edgecls.device.mqtt_publisher import (
        BUSY_EVENTS,
        BUSY_TICK_S,
        BUSY_WINDOW_S,
        TICK_S,
        Pacer,
    )

    pacer = Pacer()
    assert pacer.tick(0.0) == TICK_S
    for i in range(BUSY_EVENTS - 1):  # a burst one event short of busy
        pacer.batch(i * TICK_S, 1)
    assert pacer.tick(BUSY_EVENTS * TICK_S) == TICK_S
    pacer.batch(BUSY_EVENTS * TICK_S, 1)
    assert pacer.tick(BUSY_EVENTS * TICK_S) == BUSY_TICK_S
    # on long ticks the same rate comes in fewer, bigger batches: still busy, second after second
    rate = 2 * BUSY_EVENTS / BUSY_WINDOW_S
    now = BUSY_EVENTS * TICK_S
    for _ in range(round(3 * BUSY_WINDOW_S / BUSY_TICK_S)):
        now += pacer.tick(now)
        pacer.batch(now, round(rate * BUSY_TICK_S))
        assert pacer.tick(now) == BUSY_TICK_S
    spaced = Pacer()  # as many events, but spread over more than the window: not busy
    for i in range(BUSY_EVENTS):
        spaced.batch(i * BUSY_WINDOW_S / (BUSY_EVENTS - 1) * 1.01, 1)
    assert spaced.tick(BUSY_WINDOW_S * 1.01) == TICK_S
    assert pacer.tick(now + BUSY_WINDOW_S) == TICK_S  # a quiet second: short ticks again


def test_spool_batches_keep_order_count_drops_and_bytes(tmp_path: Path) -> None:
    from edgecls.device.spool import Spool

    path = tmp_path / "s.sqlite"
    spool = Spool(path, max_events=10)
    total = 0
    dropped = 0
    for size in (3, 1, 7, 12, 2):  # batches smaller and larger than the bound
        last, gone = spool.append_many([lambda seq: json.dumps({"seq": seq, "pad": "x" * (seq % 5)}).encode()] * size)
        total += size
        dropped += gone
        assert last == total - 1
    stats = spool.stats()
    assert (stats.pending, stats.dropped, stats.next_seq) == (10, total - 10, total) and dropped == total - 10
    count, size, seqs = _db_view(path)
    assert seqs == list(range(total - 10, total)) and (count, size) == (stats.pending, stats.bytes)
    assert [s for s, _ in spool.pending(-1, 100)] == seqs
    # one ack batch mixing dropped seqs (already gone), delivered ones and a repeat
    spool.ack([0, 1, total - 10, total - 9, total - 9, total - 1])
    count, size, seqs = _db_view(path)
    stats = spool.stats()
    assert seqs == list(range(total - 8, total - 1))
    assert (stats.pending, stats.bytes) == (count, size) == (7, size)
    spool.ack(list(range(total)))  # a batch larger than one IN list's chunk is fine too
    spool.close()
    again = Spool(path, max_events=10)  # everything delivered: seq goes on after the last one
    assert again.append(lambda seq: b"x") == (total, 0)
    assert again.stats().dropped == total - 10
    again.close()


_WRITER = """
import os, shutil, signal, sys
from pathlib import Path
from edgecls.device import spool as spool_mod
spool_mod.BOOT_ID = Path(sys.argv[2])
path = Path(sys.argv[1])
spool = spool_mod.Spool(path)
spool.append(lambda seq: b"first", sync=False)  # the first seq of a block: fsynced, with its reservation
for name in (path.name, path.name + "-wal"):  # what a disk holds after the last fsync
    shutil.copy(path.with_name(name), path.with_name(name + ".fsynced"))
for _ in range(30):
    last, _gone = spool.append_many([lambda seq: b"went out"] * 10, sync=False)
print(last, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _boot(path: Path, n: int) -> Path:
    path.write_text(f"{n:08x}-0000-4000-8000-000000000000\n")
    return path


@pytest.mark.parametrize("power_cut", [False, True])
def test_spool_seq_never_repeats_after_a_kill_or_a_power_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             power_cut: bool) -> None:
    """Events stored without an fsync are handed out only below a reservation that is on disk.
    A process SIGKILLed after 301 such events: in the same boot the next start goes on from
    the counter (no gap); after a power cut (the files as they were at the last fsync, a new
    boot id) it goes on past the reservation, above every seq that may have gone out, and
    says how many it skipped. A clean close then leaves no gap even across a reboot."""
    import subprocess
    import sys

    from edgecls.device import spool as spool_mod

    path, boot = tmp_path / "s.sqlite", _boot(tmp_path / "boot_id", 1)
    out = subprocess.run([sys.executable, "-c", _WRITER, str(path), str(boot)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == -9, out.stderr
    last = int(out.stdout)
    assert last == 300
    if power_cut:
        for name in (path.name, path.name + "-wal"):
            path.with_name(name + ".fsynced").replace(path.with_name(name))
        path.with_name(path.name + "-shm").unlink(missing_ok=True)
        boot = _boot(boot, 2)
    monkeypatch.setattr(spool_mod, "BOOT_ID", boot)
    spool = spool_mod.Spool(path)
    seq = spool.append(lambda seq: b"after")[0]
    stats = spool.stats()
    if power_cut:  # the disk had seq 0 and a reservation past it: resume there
        assert seq == 1 + spool_mod.SEQ_BLOCK > last and stats.skipped == spool_mod.SEQ_BLOCK
        assert [s for s, _ in spool.pending(-1, 10)] == [0, seq]
    else:
        assert (seq, stats.skipped) == (last + 1, 0)
    spool.close()
    monkeypatch.setattr(spool_mod, "BOOT_ID", _boot(boot, 3))  # a reboot after a clean stop
    again = spool_mod.Spool(path)
    assert again.append(lambda seq: b"x")[0] == seq + 1 and again.stats().skipped == stats.skipped
    again.close()


def _commit_modes(db: sqlite3.Connection, *, storing_only: bool = False) -> list[str]:
    """The synchronous mode (FULL or NORMAL) of each commit on ``db`` from now on, read from its
    statement trace; ``storing_only``: only commits that stored events."""
    modes: list[str] = []
    mode, storing = ["FULL"], [False]

    def trace(sql: str) -> None:
        if sql.startswith("PRAGMA synchronous="):
            mode[0] = sql.split("=")[1]
        elif sql.startswith("INSERT INTO events"):
            storing[0] = True
        elif sql == "COMMIT" and (storing[0] or not storing_only):
            modes.append(mode[0])
            storing[0] = False

    db.set_trace_callback(trace)
    return modes


def test_spool_fsyncs_a_batch_that_waits_or_reserves_seqs(tmp_path: Path) -> None:
    """The commit of a batch asked to wait (sync=True), and of one that raises the seq
    reservation, runs at synchronous=FULL; a batch that goes straight out at NORMAL."""
    from edgecls.device.spool import SEQ_BLOCK, Spool

    spool = Spool(tmp_path / "s.sqlite")
    modes = _commit_modes(spool._db)
    spool.append(lambda seq: b"a", sync=False)  # seq 0 takes the first block: up to SEQ_BLOCK
    spool.append_many([lambda seq: b"b"] * (SEQ_BLOCK - 1), sync=False)
    spool.append(lambda seq: b"c", sync=True)  # seq SEQ_BLOCK, still in the block
    spool.append(lambda seq: b"d", sync=False)  # the block's end: a new reservation
    spool.append(lambda seq: b"e", sync=False)
    spool.ack([0, 1])
    assert modes == ["FULL", "NORMAL", "FULL", "FULL", "NORMAL", "NORMAL"]
    spool.close()
    assert modes[6:] == ["FULL"]  # the clean close


def _collect(url: str, topic: str, out: list[dict[str, Any]], ready: threading.Event, *, keep: bool = False) -> Any:
    """A subscriber; ``keep``: a persistent session, so the broker queues for it while it is away."""
    client = make_client(parse_broker(url), "collector", clean_session=not keep)
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda _c, _u, msg: out.append(json.loads(msg.payload))
    client.connect("127.0.0.1", int(url.rsplit(":", 1)[1]))
    client.loop_start()
    return client


def _publisher(url: str, device: str, spool_path: Path, **spool_args: int) -> Any:
    from edgecls.device.mqtt import FleetPublisher
    from edgecls.device.spool import Spool

    return FleetPublisher(parse_broker(url), Topics("edgecls", device), Spool(spool_path, **spool_args),
                          state=lambda: {"label": "a"}, stats=lambda: {"fps": 1.0}, discovery_prefix=None)


def _wait(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.02)


@needs_mosquitto
def test_a_burst_at_loop_speed_arrives_once_and_in_order(tmp_path: Path) -> None:
    """2000 label changes emitted back to back (no pause: a flickering label on a fast
    loop): every one is delivered, by seq, in order, and leaves the spool."""
    broker = Mosquitto(tmp_path / "broker").start()
    got: list[dict[str, Any]] = []
    ready = threading.Event()
    collector = _collect(broker.url, "edgecls/burst/events", got, ready)
    pub = _publisher(broker.url, "burst", tmp_path / "burst.sqlite")
    try:
        assert ready.wait(10)
        pub.start()
        assert pub.wait_ready(10)
        n = 2000
        for i in range(n):
            pub.emit({"frame": i, "label": "ab"[i % 2]})
        _wait(lambda: len(got) >= n and pub.delivered >= n, 30)
        assert [e["seq"] for e in got] == list(range(n))
        assert [e["frame"] for e in got] == list(range(n))
        assert pub.spool.stats().pending == 0
    finally:
        pub.close(flush_s=1.0)
        collector.loop_stop()
        broker.stop()


@needs_mosquitto
@pytest.mark.parametrize("bound", [50])
def test_broker_away_spool_full_across_batches_then_in_order(tmp_path: Path, bound: int) -> None:
    """The broker is not there yet: events arrive over many publisher ticks, the spool keeps
    the newest ``bound`` and counts the rest as dropped; once the broker is up the kept ones
    arrive in seq order and the gap before them is exactly the dropped count."""
    broker = Mosquitto(tmp_path / "broker").start()
    got: list[dict[str, Any]] = []
    ready = threading.Event()
    collector = _collect(broker.url, "edgecls/away/events", got, ready, keep=True)
    assert ready.wait(10)
    broker.stop()  # the collector's session is saved; the device starts with no broker
    pub = _publisher(broker.url, "away", tmp_path / "away.sqlite", max_events=bound)
    pub.start()
    n = 300
    try:
        for i in range(n):
            pub.emit({"frame": i, "label": "ab"[i % 2]})
            if i % 30 == 29:
                time.sleep(0.05)  # several ticks, several spool transactions
        _wait(lambda: pub.last_seq == n - 1, 10)
        stats = pub.spool.stats()
        assert (stats.pending, stats.dropped, pub.dropped_now) == (bound, n - bound, n - bound)
        broker.start()
        _wait(lambda: pub.delivered >= bound and len({e["seq"] for e in got}) >= bound, 30)
        seqs = [e["seq"] for e in got]
        assert sorted(set(seqs)) == list(range(n - bound, n)), seqs[:5]
        assert seqs == sorted(seqs)  # in order (a repeat, if any, only next to itself)
        assert next(e["frame"] for e in got if e["seq"] == n - 1) == n - 1
    finally:
        pub.close(flush_s=1.0)
        collector.loop_stop()
        broker.stop()


@needs_mosquitto
def test_batches_are_fsynced_only_while_they_wait(tmp_path: Path) -> None:
    """While the broker acknowledges as it goes, the publisher stores its batches without an
    fsync; when the broker stops acknowledging (SIGSTOPped: the connection stays up) for
    ACK_WAIT_S, and while it is gone (SIGKILLed), the batches are fsynced. Every event still
    arrives, by seq, once the broker is back."""
    import os
    import signal

    from edgecls.device.mqtt_publisher import ACK_WAIT_S

    broker = Mosquitto(tmp_path / "broker").start()
    got: list[dict[str, Any]] = []
    ready = threading.Event()
    collector = _collect(broker.url, "edgecls/sync/events", got, ready, keep=True)
    pub = _publisher(broker.url, "sync", tmp_path / "sync.sqlite")
    commits = _commit_modes(pub.spool._db, storing_only=True)
    emitted = [0]

    def burst(k: int = 5) -> str:
        """k events, spooled in one batch or a few: the mode of the last commit that stored any."""
        for _ in range(k):
            pub.emit({"frame": emitted[0], "label": "ab"[emitted[0] % 2]})
            emitted[0] += 1
        _wait(lambda: pub.last_seq == emitted[0] - 1, 10)
        assert pub.last_seq == emitted[0] - 1
        return commits[-1]

    try:
        assert ready.wait(10)
        pub.start()
        assert pub.wait_ready(10)
        assert burst() == "FULL"  # the first seq reserves a block, fsynced
        for _ in range(3):
            _wait(lambda: pub.delivered == emitted[0], 10)
            assert burst() == "NORMAL"  # acknowledged as they go
        assert broker.proc is not None
        os.kill(broker.proc.pid, signal.SIGSTOP)  # connected, but nothing is acknowledged
        try:
            burst()
            time.sleep(ACK_WAIT_S + 0.3)
            assert burst() == "FULL"
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        _wait(lambda: pub.delivered == emitted[0], 10)
        assert burst() == "NORMAL"
        broker.kill()
        _wait(lambda: not pub._connected.is_set(), 10)
        assert burst() == "FULL" and burst() == "FULL"  # the broker is gone: they wait
        broker.start()
        _wait(lambda: pub.delivered >= emitted[0] and {e["seq"] for e in got} >= set(range(emitted[0])), 30)
        assert {e["seq"] for e in got} == set(range(emitted[0]))
        assert pub.spool.stats().pending == 0 and pub.spool.stats().skipped == 0
    finally:
        pub.close(flush_s=1.0)
        collector.loop_stop()
        broker.stop()
