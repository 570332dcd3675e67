"""The frame loop's end of ``--mqtt``: the publisher runs in a process of its own.

    frame loop ──emit: deque.append──> feeder thread ──JSON lines, one per batch──> pipe
                                                                                    │
    mqtt_child process: FleetPublisher (paho client, spool, acks, claim, will) <────┘
         │  commands (payload parsed and checked there), log lines, seq/connected
         └──pipe──> reader thread here ──> CommandRunner.dispatch on a thread of its own

Why a process: paho's own Python costs about 150 us of CPU per QoS 1 message (measured in
scripts/bench_fleet.py); on a thread of this process that time holds the GIL the frame loop
needs, so a label that flickers on every other frame cost 9-12 % of the frames/s. Here the
loop's share of an event is a deque append; the feeder encodes a batch once per tick (``Pacer``).

The state and stats messages are computed here (they need the loop's figures) and sent to the
child when the label changes (at most every ``STATE_MIN_S``), every ``REFRESH_S`` and every
``stats_every_s``; the child publishes them when they are due and puts its own seq, spool
and connection figures in. Command handlers run here too (they need the latest frame and the
model slot); their replies go out through the child.

The child is started (``python -m edgecls.device.mqtt_child``: a fresh interpreter, no fork of
this threaded process, no numpy or OpenCV) before capture. If this process dies the child
sees the end of its pipe, spools what it read and exits without a clean disconnect, so the
broker publishes the retained ``offline`` will (and a parent-death signal covers a pipe that
stays open). If the child dies, it is started again (it reopens the spool; seq goes on).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import IO, Any

from edgecls.errors import EdgeclsError, OutputError
from edgecls.fleet_protocol import Broker, Topics

from .mqtt_publisher import (
    FLUSH_S,
    IDLE_S,
    STATE_MIN_S,
    STATS_EVERY_S,
    CommandRunner,
    EventHandoff,
    Handler,
    Pacer,
)

log = logging.getLogger("edgecls.device")

#: A fresh state (the latest frame's label, score and time) goes to the child this often, so
#: the periodic retained state message is never older than this.
REFRESH_S = 1.0
#: How long start() waits for the child to open its spool (a wrong --mqtt-spool is reported then).
OPEN_WAIT_S = 20.0
#: A child that dies is started again, at most this often.
RESTART_EVERY_S = 5.0
#: Events kept here while there is no publisher process (it is being restarted).
MAX_HELD = 10_000


def write_msg(out: IO[bytes], header: dict[str, Any], data: bytes | None = None) -> None:
    """One message: a JSON line, then ``header["n"]`` raw bytes when there is data (a JPEG,
    a package: no base64). The caller holds the pipe's lock."""
    if data is not None:
        header = {**header, "n": len(data)}
    out.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
    if data is not None:
        out.write(data)
    out.flush()


def read_msg(inp: IO[bytes]) -> tuple[dict[str, Any], bytes | None] | None:
    """The next message, or None at the end of the pipe (the other process is gone)."""
    line = inp.readline()
    if not line.endswith(b"\n"):
        return None
    header = json.loads(line)
    data = None
    if "n" in header:
        data = inp.read(int(header["n"]))
        if len(data) != header["n"]:
            return None
    return header, data


class PublisherProcess(CommandRunner, EventHandoff):
    """What the sink and the command handlers see of the publisher: ``emit``,
    ``state_changed``, ``publish``, ``topics``, ``instance``, ``last_seq``, ``started``."""

    def __init__(self, broker: Broker, topics: Topics, spool_path: os.PathLike[str], *, state: Callable[[], dict[str, Any]],
                 stats: Callable[[], dict[str, Any]], discovery_prefix: str | None = "homeassistant",
                 state_every_s: float = 30.0, stats_every_s: float = STATS_EVERY_S,
                 commands: Mapping[str, Handler] | None = None) -> None:
        import uuid

        self.broker, self.topics = broker, topics
        self._state_fn, self._stats_fn = state, stats
        self.commands: dict[str, Handler] = dict(commands or {})
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self.instance = uuid.uuid4().hex[:16]
        self.started = time.time()
        self.stats_every_s = stats_every_s
        self._config = {"t": "cfg", "broker": {k: (str(v) if v is not None and k in ("ca", "cert", "key") else v)
                                               for k, v in asdict(broker).items()},
                        "prefix": topics.prefix, "device": topics.device, "spool": str(spool_path),
                        "discovery_prefix": discovery_prefix, "state_every_s": state_every_s,
                        "stats_every_s": stats_every_s, "instance": self.instance, "started": self.started,
                        "pid": os.getpid(), "commands": sorted(self.commands),
                        "log_level": log.getEffectiveLevel(), "deathsig": threading.current_thread() is threading.main_thread()}
        self.last_seq: int | None = None
        self.delivered = 0
        self.lost = 0  # events dropped here while the publisher process was gone
        self.connected = False
        self.ready = False
        self.spool_path = spool_path
        EventHandoff.__init__(self)  # emit(), state_changed(), stats_changed(): the loop's hand-off to the feeder thread
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._fatal: str | None = None
        self._fatal_kind = "OutputError"
        self._closing = False
        self._started = False
        self._write_lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._feeder = threading.Thread(target=self._feed, name="mqtt-feeder", daemon=True)

    # -- the child

    def _spawn(self) -> None:
        """A fresh interpreter (not a fork of this threaded process), in a process group of its
        own so a Ctrl-C at the terminal reaches only the parent, which then closes it in order.

        A group, not a session: with autogrouping (sched(7); on in many distributions' kernels,
        the bench machine's too) the scheduler shares the CPU between sessions first, so a
        child in a session of its own weighed as much as the whole frame loop and its nice
        value counted for nothing. In the parent's session its nice value (mqtt_child.NICE)
        counts against the loop's threads, as intended."""
        self._opened.clear()
        # no process_group= before 3.11 (and preexec_fn is unsafe in a threaded process)
        group: dict[str, Any] = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
        proc = subprocess.Popen([sys.executable, "-m", "edgecls.device.mqtt_child"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, **group)
        assert proc.stdin is not None and proc.stdout is not None
        self._proc = proc
        with self._write_lock:
            write_msg(proc.stdin, {**self._config, "state": self._state_fn(), "stats": self._stats_fn()})
        self._reader = threading.Thread(target=self._read, args=(proc,), name="mqtt-reader", daemon=True)
        self._reader.start()

    def start(self) -> None:
        """Start the child and wait until it has opened the spool (its errors are ours)."""
        self._spawn()
        if not self._opened.wait(OPEN_WAIT_S) or self._fatal:
            self._closing = True
            self._kill()
            import edgecls.errors

            kind = getattr(edgecls.errors, self._fatal_kind, None)
            error = kind if isinstance(kind, type) and issubclass(kind, EdgeclsError) else OutputError
            raise error(self._fatal or f"the MQTT publisher process did not start within {OPEN_WAIT_S:.0f} s")
        self._started = True
        self._feeder.start()

    def wait_ready(self, timeout: float) -> bool:
        """Until connected and the first publications are out, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.ready:
            time.sleep(0.02)
        return self.ready

    def _send(self, header: dict[str, Any], data: bytes | None = None) -> bool:
        proc = self._proc
        if proc is None or proc.stdin is None:
            return False
        try:
            with self._write_lock:
                write_msg(proc.stdin, header, data)
            return True
        except (OSError, ValueError):  # the child is gone: the reader restarts it
            return False

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        opened = False
        while True:
            try:
                msg = read_msg(proc.stdout)
            except (OSError, ValueError):
                msg = None
            if msg is None:
                break
            header, data = msg
            kind = header.get("t")
            if kind == "st":
                self.last_seq, self.delivered = header["last_seq"], header["delivered"]
                self.connected, self.ready = header["connected"], header["ready"]
            elif kind == "log":
                log.log(int(header["l"]), "%s", header["m"])
            elif kind == "cmd":
                args = dict(header["args"])
                if data is not None:
                    args["data"] = data
                threading.Thread(target=self.dispatch, args=(header["name"], args, header["reply"]), daemon=True,
                                 name=f"mqtt-cmd-{str(header['name'])[:20]}").start()
            elif kind == "opened":
                opened = True
                self._opened.set()
            elif kind == "fatal":
                self._fatal, self._fatal_kind = str(header["m"]), str(header.get("kind"))
        code = proc.wait()
        if self._closing:
            return
        if not opened:  # it never got as far as its spool: start() says so, or a restart gives up
            self._fatal = self._fatal or f"the MQTT publisher process ended at its start (exit code {code}; see the lines above)"
            self._opened.set()
            if self._started:
                log.warning("MQTT publisher process cannot start again: %s; nothing is published from now on "
                            "(classification goes on)", self._fatal)
            return
        log.warning("MQTT publisher process ended (exit code %s); starting it again (events wait in this process)", code)
        self.connected = self.ready = False
        while not self._closing:
            time.sleep(RESTART_EVERY_S)
            try:
                if not self._closing:
                    self._spawn()
                return
            except OSError as err:
                log.warning("MQTT publisher process cannot be started (%s); trying again", err)

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    # -- any thread (command handlers)

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        self._send({"t": "pub", "topic": topic, "q": qos, "r": retain}, data)

    # -- the feeder thread

    def _feed(self) -> None:
        last_state = next_refresh = 0.0
        next_stats = time.monotonic() + self.stats_every_s
        held: list[dict[str, Any]] = []  # taken from the deque, not yet written (the child was gone)
        pacer = Pacer()  # labels changing many times a second: longer ticks, fewer writes (the child does the same)
        while True:
            self._idle = True
            if self._events or self._state_due or self._stats_due:
                self._idle = False
                self._wake.wait(pacer.tick(time.monotonic()))
            else:
                self._wake.wait(min(IDLE_S, max(0.0, next_refresh - time.monotonic())))
                self._idle = False
            self._wake.clear()
            stopping = self._stop.is_set()
            try:
                taken = len(held)
                while self._events:
                    held.append(self._events.popleft())
                if len(held) > taken:
                    pacer.batch(time.monotonic(), len(held) - taken)
                if len(held) > MAX_HELD:  # the child is gone for long: keep the newest, count the rest
                    if not self.lost:
                        log.warning("MQTT: no publisher process and %d events waiting: dropping the oldest from now on "
                                    "(they never get a seq)", MAX_HELD)
                    self.lost += len(held) - MAX_HELD
                    del held[:len(held) - MAX_HELD]
                if held and self._send({"t": "ev", "ev": held}):
                    held = []
                now = time.monotonic()
                if (self._state_due and now >= last_state + STATE_MIN_S) or now >= next_refresh or stopping:
                    due, self._state_due = self._state_due, False
                    last_state, next_refresh = now, now + REFRESH_S
                    self._send({"t": "state", "s": self._state_fn(), "due": due})
                if now >= next_stats or stopping or self._stats_due:
                    due, self._stats_due = self._stats_due, False
                    next_stats = now + self.stats_every_s
                    self._send({"t": "stats", "s": self._stats_fn(), "due": due})
            except Exception:  # the feeder must outlive any one failure
                log.exception("MQTT feeder error; retrying")
                time.sleep(1.0)
            if stopping:
                if held:
                    log.warning("MQTT: %d event(s) could not be handed to the publisher process", len(held))
                return

    def close(self, flush_s: float = FLUSH_S) -> None:
        """Hand over what is queued with fresh stats; the child flushes (up to ``flush_s``),
        says offline, disconnects and exits; its last log lines are printed before this returns."""
        self._stop.set()
        self._wake.set()
        if self._feeder.is_alive():
            self._feeder.join(5.0)
        self._closing = True
        self._send({"t": "close", "flush": flush_s})
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(flush_s + 10.0)
            except subprocess.TimeoutExpired:
                log.warning("MQTT publisher process did not stop; killed it (spooled events stay for the next start)")
                self._kill()
        if self._reader is not None:
            self._reader.join(5.0)
