"""The network side of ``--mqtt``: one paho client, the spool and the command replies.

    FleetPublisher (one thread owns the paho client and the spool)
    ├── Spool          every event lands on disk with its seq before it is sent
    ├── paho thread    reconnects with backoff by itself; PUBACKs come back as acks
    └── commands       parsed and checked here (hostile input); run by CommandRunner

In ``edgecls run`` it lives in a process of its own (device/mqtt_child.py, driven through a
pipe by device/mqtt_process.py): paho's own Python costs about 150 us of CPU per QoS 1 message,
and on a thread of the frame loop's process it would hold the GIL the loop needs. Simulated
devices (tests, the fleet benchmark) use it in-process. Nothing here imports numpy or OpenCV,
so that process starts in a fraction of a second.

Delivered means acknowledged: an event leaves the spool only when the broker's PUBACK for it
arrives. Events are handed to paho in seq order, at most ``WINDOW`` unacknowledged at a time;
paho resends the unacknowledged ones itself after a reconnect (with the DUP flag), so a broker
that dies and comes back costs nothing while the spool has room. A broker killed outright
may have acknowledged events it neither passed on nor saved: after every outage the events
acknowledged in the ``REPLAY_S`` before it are sent once more. The host may see an event
twice (QoS 1 is at least once; replays) and drops repeats by seq.

``emit`` only appends the event to a deque (no lock, no wake-up, no JSON). The publisher takes
everything queued once a tick (``Pacer``: ``TICK_S``, or ``BUSY_TICK_S`` while label changes
keep coming), encodes it, stores the batch in one spool
transaction, hands it to paho and deletes the acknowledged ones in one more: its cost is per
tick, not per event. Idle, it sleeps ``IDLE_S``; the first event after that wakes it (one
``Event.set`` per burst, not per event).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from edgecls import __version__
from edgecls.fleet_protocol import (
    FRAMED_COMMANDS,
    MAX_COMMAND_BYTES,
    Broker,
    PayloadError,
    Topics,
    discovery_configs,
    dumps,
    loads,
    make_client,
    refusal,
    request_id,
    unframe_update,
)

from .spool import Spool

log = logging.getLogger("edgecls.device")


#: Events handed to paho and not yet acknowledged: a tick's batch goes out at once, not 20 per
#: round trip (a busy tick's too: 1000 events in BUSY_TICK_S is 10000 a second, ten times the
#: worst flicker measured). This is the only limit: paho's own is off (0), because with one set
#: paho walks every message in flight on each PUBACK (``Client._update_inflight``), a pass per
#: ack that grows with the window (at 1500 events a second the publisher process spent 129 us
#: an event with paho's limit at 1000, 113 without: BENCHMARKS.md, session 14).
WINDOW = 1000
STATS_EVERY_S = 5.0
#: Events are stored without an fsync while the broker keeps up (device/spool.py): connected,
#: and nothing in flight unacknowledged for longer than this. Otherwise they wait, fsynced.
ACK_WAIT_S = 1.0
#: How long close() waits for spooled events to be acknowledged before it gives up (they
#: stay in the spool and go out on the next start).
FLUSH_S = 5.0
#: While events are queued or in flight, the publisher works once per tick: a burst of label
#: changes costs one spool commit, one ack commit and one state message, not one each.
TICK_S = 0.02
#: While label changes keep coming (BUSY_EVENTS of them within BUSY_WINDOW_S: a label that
#: changes more than 15 times a second, as on a file decoded at 2000 frames/s) the tick is
#: BUSY_TICK_S. A batch has a fixed cost (pipe, spool commit, ack commit, wake-ups of four
#: threads): at 33 label changes a second the publisher process spent 1.2-1.5 ms of CPU an
#: event with 20 ms ticks, 1.0-1.1 ms with these. Events are counted, not batches: a batch
#: count cannot stay busy on long ticks (20 batches a second never come at 10 ticks a second),
#: so a rule on batches went back and forth between the two ticks. A camera's changes, even 8
#: a second (the no-loss recording of scripts/bench_fleet.py), still go out within TICK_S.
BUSY_TICK_S = 0.1
BUSY_EVENTS = 16
BUSY_WINDOW_S = 1.0
#: With nothing queued or in flight it sleeps this long (the loop's first event wakes it).
IDLE_S = 0.25
#: At start, before capture: how long to wait for the broker's first answer.
START_WAIT_S = 2.0
#: After a reconnect, events the broker acknowledged this long before the outage are sent again.
REPLAY_S = 10.0
#: At most this often a state message: a burst of label changes ends in one with the latest.
STATE_MIN_S = 0.2
#: How long after start a broker that has not answered is reported (once).
UNREACHABLE_AFTER_S = 3.0

Handler = Callable[[Any, dict[str, Any]], dict[str, Any]]


class CpuMeter:
    """This process's CPU use since the last reading, in percent of one core (the stats
    message's ``cpu_percent`` and ``publisher_cpu_percent``)."""

    def __init__(self) -> None:
        self._mark = (time.monotonic(), time.process_time())

    def percent(self) -> float | None:
        now, cpu = time.monotonic(), time.process_time()
        (t0, c0), self._mark = self._mark, (now, cpu)
        return round(100.0 * (cpu - c0) / (now - t0), 1) if now > t0 else None


class Pacer:
    """A worker's tick: ``TICK_S`` while label changes are rare (low latency), ``BUSY_TICK_S``
    while ``BUSY_EVENTS`` of them have gone within ``BUSY_WINDOW_S`` (fewer, bigger batches)."""

    def __init__(self) -> None:
        self._recent: deque[tuple[float, int]] = deque()  # (time, events) of the batches in the window
        self._events = 0

    def batch(self, now: float, events: int) -> None:
        """A batch of ``events`` went out at ``now`` (``time.monotonic()``)."""
        self._recent.append((now, events))
        self._events += events

    def tick(self, now: float) -> float:
        while self._recent and now - self._recent[0][0] >= BUSY_WINDOW_S:
            self._events -= self._recent.popleft()[1]
        return BUSY_TICK_S if self._events >= BUSY_EVENTS else TICK_S


class EventHandoff:
    """The frame loop's side of a worker that ticks while there is work and sleeps when idle.

    :meth:`emit` is a deque append (append and popleft are atomic: no lock), and the worker
    is woken only when it sleeps idle: while it ticks, its next tick sees the work. The
    worker sets ``_idle`` before an idle sleep and waits on ``_wake``; it sends the state or
    the stats when ``_state_due`` or ``_stats_due`` says so."""

    def __init__(self) -> None:
        self._events: deque[dict[str, Any]] = deque()
        self._idle = False
        self._wake = threading.Event()
        self._state_due = self._stats_due = False

    def emit(self, event: dict[str, Any]) -> None:
        """Loop thread: queue one event (its seq is assigned when it is spooled)."""
        self._events.append(event)
        self._nudge()

    def state_changed(self) -> None:
        """Any thread: publish the state soon (a label change), on the worker's next tick."""
        self._state_due = True
        self._nudge()

    def stats_changed(self) -> None:
        """Any thread: publish the stats soon (a command changed them: a field check's
        verdict), on the worker's next tick."""
        self._stats_due = True
        self._nudge()

    def _nudge(self) -> None:
        """Wake the worker if it sleeps idle."""
        if self._idle:
            self._idle = False
            self._wake.set()


class CommandRunner:
    """Commands: parse the hostile payload, then run the handler, one of a kind at a time, and
    reply on ``cmd/result``. Split in two because in ``edgecls run`` the payload is parsed in
    the publisher's process (:meth:`parse`) and the handler runs in the frame loop's process
    (:meth:`dispatch`: it needs the latest frame and the model slot). Needs ``commands``,
    ``topics`` and ``publish``."""

    commands: dict[str, Handler]
    topics: Topics
    _busy: set[str]
    _busy_lock: threading.Lock

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        raise NotImplementedError

    stats_changed: Callable[[], None]  # EventHandoff's: a command may have changed the stats

    def parse(self, name: str, payload: bytes) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(args, reply) for a payload from the network, or (None, the error reply): a bad
        payload or an unknown command. ``args["data"]`` holds cmd/update's package bytes."""
        reply: dict[str, Any] = {"command": name[:64], "ok": False}
        try:
            if name in FRAMED_COMMANDS:  # cmd/update: a header line, then the package's bytes
                args, data = unframe_update(payload)
                args["data"] = data
            else:
                args = loads(payload, MAX_COMMAND_BYTES)
            reply["id"] = request_id(args)
        except PayloadError as err:
            reply["error"] = f"bad payload: {err}"
            if name in FRAMED_COMMANDS:  # name the request the host is waiting on, if it can be read
                with contextlib.suppress(PayloadError):
                    reply["id"] = request_id(loads(payload[:MAX_COMMAND_BYTES + 1].partition(b"\n")[0], MAX_COMMAND_BYTES))
            return None, reply
        if name not in self.commands:
            reply["error"] = f"unknown command {name[:64]!r}; known: {', '.join(sorted(self.commands))}"
            return None, reply
        return args, reply

    def _command(self, name: str, payload: bytes) -> None:
        args, reply = self.parse(name, payload)
        if args is None:
            self.publish(self.topics.result, dumps(reply))
            return
        self.dispatch(name, args, reply)

    def dispatch(self, name: str, args: dict[str, Any], reply: dict[str, Any]) -> None:
        """Run a parsed command's handler (on the caller's thread) and publish the reply."""
        handler = self.commands[name]
        with self._busy_lock:
            if name in self._busy:
                reply["error"] = f"{name} is already running"
                self.publish(self.topics.result, dumps(reply))
                return
            self._busy.add(name)
        try:
            reply.update(ok=True, result=handler(self, args))
        except Exception as err:  # a command must never take the device down
            from edgecls.errors import EdgeclsError

            reply.update(ok=False, error=str(err) if isinstance(err, EdgeclsError) else f"{type(err).__name__}: {err}")
            if not isinstance(err, EdgeclsError):
                log.exception("MQTT command %s failed", name)
        finally:
            with self._busy_lock:
                self._busy.discard(name)
        self.publish(self.topics.result, dumps(reply))
        self.stats_changed()  # `fleet status` shows the verdict now, not at the next periodic stats


class FleetPublisher(CommandRunner, EventHandoff):
    """The network side of one device. Usable without a classifier (the fleet benchmark
    simulates devices with it): feed :meth:`emit`, give ``state``/``stats`` callables."""

    def __init__(self, broker: Broker, topics: Topics, spool: Spool, *, state: Callable[[], dict[str, Any]],
                 stats: Callable[[], dict[str, Any]], discovery_prefix: str | None = "homeassistant",
                 state_every_s: float = 30.0, stats_every_s: float = STATS_EVERY_S,
                 commands: Mapping[str, Handler] | None = None, instance: str | None = None,
                 started: float | None = None, pid: int | None = None,
                 forward: Callable[[str, bytes], None] | None = None) -> None:
        """``instance``, ``started``, ``pid``: the run's own when this runs in a process of its
        own (the claim names the ``edgecls run`` process). ``forward(name, payload)``: hand
        commands on instead of running them on a thread here."""
        self.broker, self.topics, self.spool = broker, topics, spool
        self._state_fn, self._stats_fn = state, stats
        self.discovery_prefix = discovery_prefix
        self.state_every_s, self.stats_every_s = state_every_s, stats_every_s
        self.commands: dict[str, Handler] = dict(commands or {})
        self.instance = instance or uuid.uuid4().hex[:16]
        self.started = started or time.time()
        self.pid = pid or os.getpid()
        self.forward = forward
        EventHandoff.__init__(self)
        # deque.append and popleft are atomic: paho's thread hands acks over without a lock
        self._acks: deque[int] = deque()
        self._pacer = Pacer()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._just_connected = False
        self._ever_connected = False
        self._inflight: dict[int, tuple[int, bytes, float]] = {}  # mid -> (seq, payload, sent at), oldest first
        self._recent: deque[tuple[float, int, bytes]] = deque()  # (acked at, seq, payload), last REPLAY_S
        self._lost_at: float | None = None
        self.replayed = 0
        self._sent_upto = -1
        self._said: set[str] = set()
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._own_claim_seen = False
        self._prev_avail: str | None = None
        self._prev_claim: dict[str, Any] | None = None
        self._warned_instances: set[str] = set()
        self.last_seq: int | None = None
        self.dropped_now = 0
        self.delivered = 0
        self.client = make_client(broker, f"edgecls-{topics.device}-{self.instance[:8]}")
        self.client.max_inflight_messages_set(0)  # WINDOW is the limit (see there)
        self.client.will_set(topics.availability, "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)

    # -- any thread

    def start(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        self._thread.start()

    @property
    def ready(self) -> bool:
        """Connected once, and the first publications after the connect are out."""
        return self._ever_connected and not self._just_connected

    def wait_ready(self, timeout: float) -> bool:
        """Until :attr:`ready`, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready:
                return True
            time.sleep(0.02)
        return False

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def say_once(self, key: str, message: str, level: int = logging.WARNING) -> None:
        if key not in self._said:
            self._said.add(key)
            log.log(level, "%s", message)

    # -- paho's thread (keep these short: paho holds its own locks while calling them)

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self.say_once(f"refused:{reason}", refusal(self.broker, reason) +
                          "; classifying and spooling events, retrying with backoff")
            self._said.add("unreachable")  # it answered: "cannot be reached" would be wrong
            return
        t = self.topics
        client.subscribe([(t.availability, 1), (t.claim, 1), (t.cmd("+"), 1)])
        claim = {"instance": self.instance, "host": os.uname().nodename, "pid": self.pid, "started": round(self.started, 3)}
        client.publish(t.claim, dumps(claim), qos=1, retain=True)
        client.publish(t.availability, "online", qos=1, retain=True)
        if self.discovery_prefix:
            for topic, config in discovery_configs(t.prefix, t.device, self.discovery_prefix, __version__).items():
                client.publish(topic, json.dumps(config, separators=(",", ":")), qos=1, retain=True)
        self._just_connected = True
        self._connected.set()
        self._wake.set()

    def _on_connect_fail(self, _client: Any, _userdata: Any) -> None:
        self.say_once("unreachable", f"MQTT broker {self.broker.where} cannot be reached; classifying and spooling "
                                     "events until it answers (retrying with backoff)")

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self._connected.is_set():
            self._lost_at = time.monotonic()
        if self._connected.is_set() and not self._stop.is_set():
            log.warning("MQTT broker %s lost (%s); spooling events until it is back", self.broker.where, reason)
        self._connected.clear()

    def _on_publish(self, _client: Any, _userdata: Any, mid: int, _reason: Any, _props: Any) -> None:
        self._acks.append(mid)  # taken on the publisher's next tick (it ticks while events are in flight)

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        t = self.topics
        if msg.topic == t.claim:
            self._on_claim(msg.payload)
        elif msg.topic == t.availability:
            if not self._own_claim_seen:
                self._prev_avail = msg.payload.decode("utf-8", "replace")
        elif msg.topic.startswith(t.cmd("")) and msg.topic != t.result:
            name = msg.topic[len(t.cmd("")):]
            if self.forward is not None:
                self.forward(name, bytes(msg.payload))
                return
            threading.Thread(target=self._command, args=(name, bytes(msg.payload)), daemon=True,
                             name=f"mqtt-cmd-{name[:20]}").start()

    def _on_claim(self, payload: bytes) -> None:
        try:
            claim = loads(payload, MAX_COMMAND_BYTES)
        except PayloadError:
            return
        other = claim.get("instance")
        if other == self.instance:
            # Our own claim came back: what arrived before it was retained from before we
            # connected (the broker sends retained claim and availability in either order).
            self._own_claim_seen = True
            prev, self._prev_claim = self._prev_claim, None
            if prev is not None and self._prev_avail == "online":
                self._warned_instances.add(str(prev.get("instance")))
                log.warning("device id %r is already online (%s): two devices with one id mix their results; "
                            "give each its own --device-id (an old run of this one goes offline within a minute)",
                            self.topics.device, _who(prev))
            return
        if not isinstance(other, str) or other in self._warned_instances:
            return
        if not self._own_claim_seen:
            self._prev_claim = claim
            return
        self._warned_instances.add(other)
        log.warning("device id %r is now also used by another process (%s): their results mix; "
                    "give each device its own --device-id", self.topics.device, _who(claim))

    # -- the publisher thread

    def _spool_events(self) -> None:
        makers: list[Callable[[int], bytes]] = []
        while self._events:
            event = self._events.popleft()
            makers.append(lambda seq, e=event: dumps({"seq": seq, "instance": self.instance, **e}))  # type: ignore[misc]
        if makers:
            self._pacer.batch(time.monotonic(), len(makers))
            seq, dropped = self.spool.append_many(makers, sync=self._events_wait())
            self.last_seq = seq
            if dropped:
                self.dropped_now += dropped
                log.warning("MQTT spool %s full: dropped the %d oldest event(s) (%d this run); the host sees the gap in seq",
                            self.spool.path, dropped, self.dropped_now)

    def _events_wait(self) -> bool:
        """Will events stored now wait in the spool: the broker away, or the oldest event in
        flight unacknowledged for ``ACK_WAIT_S``? Then their commit is fsynced."""
        if not self._connected.is_set():
            return True
        oldest = next(iter(self._inflight.values()), None)
        return oldest is not None and time.monotonic() - oldest[2] > ACK_WAIT_S

    def _take_acks(self) -> None:
        done: list[int] = []
        while self._acks:
            sent = self._inflight.pop(self._acks.popleft(), None)
            if sent is not None:
                done.append(sent[0])
                self._recent.append((time.monotonic(), sent[0], sent[1]))
        horizon = time.monotonic() - REPLAY_S
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        if done:
            self.spool.ack(done)
            self.delivered += len(done)

    def _send_pending(self) -> None:
        room = WINDOW - len(self._inflight)
        if room <= 0 or not self._connected.is_set():
            return
        if self.last_seq is not None and self._sent_upto >= self.last_seq:
            return  # everything this run spooled is out (and seqs only grow): no query a tick
        for seq, payload in self.spool.pending(self._sent_upto, room):
            info = self.client.publish(self.topics.events, payload, qos=1)
            self._inflight[info.mid] = (seq, payload, time.monotonic())
            self._sent_upto = seq

    def _replay(self) -> None:
        """After an outage: send again what the broker acknowledged in the REPLAY_S before it.
        A broker that was killed may have acknowledged events it had neither passed on nor
        saved (TOOLCHAIN.md); the host drops the repeats by seq."""
        if self._lost_at is None:
            return
        since, self._lost_at = self._lost_at - REPLAY_S, None
        again = [(seq, payload) for acked, seq, payload in self._recent if acked >= since]
        for _seq, payload in again:
            self.client.publish(self.topics.events, payload, qos=1)
        self.replayed += len(again)
        if again:
            log.info("MQTT: sent the %d event(s) acknowledged in the %.0f s before the outage again "
                     "(a killed broker may have lost them; the host drops repeats by seq)", len(again), REPLAY_S)

    def _publish_state(self) -> None:
        self.publish(self.topics.state, dumps(self._state_fn()), retain=True)

    def _publish_stats(self) -> None:
        s = self.spool.stats()
        stats = {**self._stats_fn(), "spool_pending": s.pending, "spool_bytes": s.bytes, "spool_dropped": s.dropped,
                 "spool_skipped": s.skipped, "next_seq": s.next_seq, "delivered": self.delivered,
                 "replayed": self.replayed, "connected": self._connected.is_set()}
        self.publish(self.topics.stats, dumps(stats), retain=True)

    def _sleep(self) -> None:
        """Until the next tick, or longer when there is nothing to do. ``_idle`` is raised
        before the queues are looked at: an event appended after the look sees it and wakes
        this thread; one appended before is seen here."""
        self._idle = True
        if self._events or self._acks or (self._connected.is_set() and (self._inflight or self._state_due or self._stats_due)):
            self._idle = False
            self._wake.wait(self._pacer.tick(time.monotonic()))
        else:
            self._wake.wait(IDLE_S)
            self._idle = False

    def _run(self) -> None:
        next_state = next_stats = last_state = last_stats = 0.0
        deadline = time.monotonic() + UNREACHABLE_AFTER_S
        while True:
            self._sleep()
            self._wake.clear()
            stopping = self._stop.is_set()
            try:
                self._spool_events()
                self._take_acks()
                if self._just_connected:
                    self._just_connected = False
                    pending = self.spool.stats().pending
                    log.info("MQTT %s %s as %s%s", "reconnected to" if self._ever_connected else "connected to",
                             self.broker.where, self.topics.device, f"; delivering {pending} spooled events" if pending else "")
                    self._ever_connected = True
                    next_state = next_stats = 0.0
                    self._replay()
                self._send_pending()
                now = time.monotonic()
                if self._connected.is_set():
                    if (self._state_due and now >= last_state + STATE_MIN_S) or now >= next_state:
                        self._state_due = False
                        last_state, next_state = now, now + self.state_every_s
                        self._publish_state()
                    if (self._stats_due and now >= last_stats + STATE_MIN_S) or now >= next_stats:
                        self._stats_due = False
                        last_stats, next_stats = now, now + self.stats_every_s
                        self._publish_stats()
                elif not self._ever_connected and now > deadline:
                    self.say_once("unreachable", f"MQTT broker {self.broker.where} has not answered; classifying and "
                                                 "spooling events until it does (retrying with backoff)")
            except Exception:  # the publisher must outlive any one failure (a full disk, say)
                log.exception("MQTT publisher error; retrying")
                time.sleep(1.0)
            if stopping:
                return

    def abandon(self, timeout: float = 5.0) -> None:
        """Stop the publisher thread after its last pass (which spools the queued events, in
        seq order), with no clean disconnect: the broker then sends the last will."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def close(self, flush_s: float = FLUSH_S) -> None:
        """Spool what is queued, wait up to ``flush_s`` for acknowledgements, say offline, disconnect."""
        deadline = time.monotonic() + flush_s
        # Also while disconnected: a broker that is back within flush_s still gets everything.
        while time.monotonic() < deadline:
            self._wake.set()
            if not self._events and self.spool.stats().pending == 0:
                break
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self._spool_events()  # anything that came in after the thread's last pass
        left = self.spool.stats().pending
        if left:
            log.info("MQTT: %d event(s) not yet acknowledged stay in %s and go out on the next start", left, self.spool.path)
        if self._connected.is_set():
            self._publish_stats()
            info = self.client.publish(self.topics.availability, "offline", qos=1, retain=True)
            info.wait_for_publish(1.0)
        self.client.disconnect()
        self.client.loop_stop()
        self.spool.close()


def _who(claim: dict[str, Any]) -> str:
    return f"host {claim.get('host')!s:.64} pid {claim.get('pid')!s:.16}"


