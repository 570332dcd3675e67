"""The publisher process of ``edgecls run --mqtt`` (started by device/mqtt_process.py).

Reads its configuration, then events, state, stats and replies from stdin; writes status,
log lines and checked commands to stdout (the pipe; anything printed by accident goes to
stderr instead). Imports paho, sqlite3 and the protocol module only: it starts in a fraction of
a second and never loads a model, numpy or OpenCV.

It ends in one of two ways. ``close`` from the parent: flush, retained ``offline``, a clean
disconnect. The end of stdin without ``close`` (the parent died): the events already read are
spooled, then the process exits without a disconnect, so the broker sends the last will.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from edgecls.errors import EdgeclsError
from edgecls.fleet_protocol import Broker, Topics, dumps

from .mqtt_process import read_msg, write_msg
from .mqtt_publisher import CpuMeter, FleetPublisher
from .spool import Spool

log = logging.getLogger("edgecls.device")
#: The status (connected, ready) goes to the parent when it changes, checked this often ...
STATUS_EVERY_S = 0.1
#: ... and the seq and delivered count at most this often (the parent's copy is for commands' replies).
SEQ_EVERY_S = 1.0
#: After the parent is gone and stdin has not ended: exit anyway after this long.
ORPHAN_EXIT_S = 2.0
#: This process yields the CPU to the frame loop when both want it (a flickering label costs
#: paho ~150 us an event): on a busy CPU the events wait in the pipe and the spool, not the frames.
#: It counts because this process stays in the loop's session (mqtt_process: autogrouping). Not
#: more: at nice 5 it is still owed a quarter of a core beside a busy loop thread, more than
#: the worst flicker measured needs (scripts/bench_fleet.py: about 200 us an event, ~900 a second).
NICE = 5


class _PipeHandler(logging.Handler):
    """Log records go to the parent, which prints them with its own handler and filters."""

    def __init__(self, send: Any) -> None:
        super().__init__()
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.send({"t": "log", "l": record.levelno, "m": text})


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM when the parent goes (the pipe's end is the usual way; this covers a pipe
    that some other process keeps open). The handler exits only if the parent is really gone:
    the signal also comes when the thread that started this process ends."""
    if sys.platform.startswith("linux"):
        import ctypes

        with_errno = ctypes.CDLL(None, use_errno=True)
        with_errno.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    def on_term(_sig: int, _frame: Any) -> None:
        if os.getppid() != parent:
            threading.Timer(ORPHAN_EXIT_S, os._exit, (0,)).start()

    signal.signal(signal.SIGTERM, on_term)


def main() -> None:
    inp: IO[bytes] = sys.stdin.buffer
    out: IO[bytes] = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this process ends
    # Not the terminal's foreground group: a line to stderr must not stop it (``stty tostop``)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(NICE)
    lock = threading.Lock()

    def send(header: dict[str, Any], data: bytes | None = None) -> None:
        try:
            with lock:
                write_msg(out, header, data)
        except (OSError, ValueError):
            pass  # the parent is gone: stdin ends too and main() exits

    first = read_msg(inp)
    if first is None:
        return
    cfg = first[0]
    if cfg.get("deathsig"):
        _die_with_parent(int(cfg["pid"]))
    if os.getppid() != cfg["pid"]:
        return  # the parent died while this process started
    logger = logging.getLogger("edgecls.device")
    logger.addHandler(_PipeHandler(send))
    logger.setLevel(int(cfg["log_level"]))
    logger.propagate = False
    b = cfg["broker"]
    broker = Broker(**{**b, **{k: Path(b[k]) if b.get(k) else None for k in ("ca", "cert", "key")}})
    latest: dict[str, Any] = {"state": cfg["state"], "stats": cfg["stats"]}
    holder: list[FleetPublisher] = []

    def state() -> dict[str, Any]:
        s = dict(latest["state"])
        if "seq" in s and holder:
            s["seq"] = holder[0].last_seq  # the seq this process assigned
        return s

    meter = CpuMeter()

    def stats() -> dict[str, Any]:
        """The parent's figures and this process's CPU (the parent's cpu_percent is its own)."""
        return {**latest["stats"], "publisher_cpu_percent": meter.percent()}

    def forward(name: str, payload: bytes) -> None:
        """paho's thread: parse on a thread of its own (a 64 MB package's sha256 takes a while)."""
        threading.Thread(target=command, args=(name, payload), daemon=True, name=f"mqtt-cmd-{name[:20]}").start()

    def command(name: str, payload: bytes) -> None:
        args, reply = pub.parse(name, payload)  # hostile input is checked here, bounded
        if args is None:
            pub.publish(pub.topics.result, dumps(reply))
            return
        data = args.pop("data", None)
        send({"t": "cmd", "name": name, "args": args, "reply": reply}, data)

    try:  # what can be wrong here (the spool, TLS files) is the parent's one-line error
        spool = Spool(Path(cfg["spool"]))
        try:
            pub = FleetPublisher(broker, Topics(cfg["prefix"], cfg["device"]), spool, state=state, stats=stats,
                                 discovery_prefix=cfg["discovery_prefix"], state_every_s=cfg["state_every_s"],
                                 stats_every_s=cfg["stats_every_s"], commands=dict.fromkeys(cfg["commands"], _unused),
                                 instance=cfg["instance"], started=cfg["started"], pid=cfg["pid"], forward=forward)
        except BaseException:
            spool.close()
            raise
    except EdgeclsError as err:
        send({"t": "fatal", "m": str(err), "kind": type(err).__name__})
        return
    holder.append(pub)
    send({"t": "opened"})
    pub.start()
    threading.Thread(target=_report, args=(pub, send), name="mqtt-status", daemon=True).start()
    while True:
        msg = read_msg(inp)
        if msg is None:  # the parent is gone: keep what was read, no clean disconnect (the will goes out)
            pub.abandon()
            os._exit(0)
        header, data = msg
        kind = header["t"]
        if kind == "ev":
            for event in header["ev"]:
                pub.emit(event)
        elif kind == "state":
            latest["state"] = header["s"]
            if header.get("due"):
                pub.state_changed()
        elif kind == "stats":
            latest["stats"] = header["s"]
            if header.get("due"):
                pub.stats_changed()
        elif kind == "pub":
            pub.publish(header["topic"], data or b"", qos=int(header["q"]), retain=bool(header["r"]))
        elif kind == "close":
            pub.close(float(header["flush"]))
            send(_status(pub))
            return


def _unused(_pub: Any, _args: dict[str, Any]) -> dict[str, Any]:
    raise AssertionError("commands run in the parent process")  # pragma: no cover


def _status(pub: FleetPublisher) -> dict[str, Any]:
    return {"t": "st", "last_seq": pub.last_seq, "delivered": pub.delivered, "connected": pub._connected.is_set(),
            "ready": pub.ready}


def _report(pub: FleetPublisher, send: Any) -> None:
    """A change of connection goes to the parent within STATUS_EVERY_S; a change of seq or
    delivered count (every batch) at most every SEQ_EVERY_S: each message wakes a thread of the
    frame loop's process."""
    last: dict[str, Any] = {}
    sent = 0.0
    while True:
        status, now = _status(pub), time.monotonic()
        if status != last and (status["connected"] != last.get("connected") or status["ready"] != last.get("ready")
                               or now - sent >= SEQ_EVERY_S):
            send(status)
            last, sent = status, now
        time.sleep(STATUS_EVERY_S)


if __name__ == "__main__":
    main()
