"""The host's view of a fleet: every device's retained availability, claim, state and stats,
the events as they come (with seq bookkeeping), and commands with their replies.

Used by ``edgecls fleet status|watch|check`` and by the fleet benchmark's collector. Needs
paho-mqtt only (``edgecls[fleet]``): no TensorFlow, nothing from convert/ or device/.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgecls.errors import EdgeclsError
from edgecls.fleet_protocol import (
    MAX_JSON_BYTES,
    Broker,
    PayloadError,
    SeqTracker,
    Topics,
    check_event,
    dumps,
    loads,
    make_client,
    refusal,
)


class BrokerError(EdgeclsError):
    """The broker cannot be reached or refused us."""


@dataclass
class DeviceView:
    device: str
    availability: str | None = None
    claim: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    seqs: SeqTracker = field(default_factory=SeqTracker)
    last_event: dict[str, Any] | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad_payloads: int = 0

    def row(self, now: float) -> dict[str, Any]:
        """The figures of ``fleet status``, as JSON-ready values."""
        state, stats = self.state or {}, self.stats or {}
        model = state.get("model") or stats.get("model") or {}
        event_ts = state.get("event_ts")
        verdict = stats.get("field_check")
        return {
            "device": self.device,
            "online": self.availability == "online",
            "model": model.get("name"),
            "model_sha256": model.get("sha256"),
            "fps": stats.get("fps"),
            "label": state.get("label"),
            "score": state.get("score"),
            "last_event_age_s": round(now - event_ts, 1) if isinstance(event_ts, (int, float)) else None,
            "field_check": None if not isinstance(verdict, dict) else ("pass" if verdict.get("passed") else "FAIL"),
            "seq": state.get("seq"),
            "seq_gaps": self.seqs.gaps,
            "spool_dropped": stats.get("spool_dropped"),
            "spool_skipped": stats.get("spool_skipped"),
            "spool_pending": stats.get("spool_pending"),
            "host": (self.claim or {}).get("host"),
        }


class FleetMonitor:
    """Subscribes to every device under ``prefix``. ``session``: a persistent session name, so
    events published while this monitor is away are queued for it by the broker."""

    def __init__(self, broker: Broker, prefix: str = "edgecls", *, session: str | None = None,
                 on_event: Callable[[str, dict[str, Any], float], None] | None = None,
                 events: bool = True) -> None:
        self.broker, self.prefix = broker, prefix
        self.topics = Topics(prefix, "+")
        self.devices: dict[str, DeviceView] = {}
        self.on_event = on_event
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._refused: str | None = None
        self._events = events
        self._subscribed = threading.Event()
        self.last_retained = time.monotonic()
        client_id = f"edgecls-host-{session}" if session else f"edgecls-host-{uuid.uuid4().hex[:12]}"
        self.client = make_client(broker, client_id, clean_session=session is None)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refused = refusal(self.broker, reason)
            self._connected.set()
            return
        t = self.topics
        subs = [(t.availability, 1), (t.claim, 1), (t.state, 1), (t.stats, 1), (t.result, 1)]
        if self._events:
            subs.append((t.events, 1))
        client.subscribe(subs)
        self._connected.set()

    def _on_subscribe(self, *_args: Any) -> None:
        self._subscribed.set()

    def _view(self, device: str) -> DeviceView:
        view = self.devices.get(device)
        if view is None:
            view = self.devices[device] = DeviceView(device)
        return view

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        received = time.time()
        if msg.retain:  # sent for our new subscription (MQTT 3.1.1 3.3.1.3), not live traffic
            self.last_retained = time.monotonic()
        parts = Topics(self.prefix, "").split(msg.topic)
        if parts is None:
            return
        device, kind = parts
        with self._lock:
            view = self._view(device)
            try:
                if kind == "availability":
                    view.availability = msg.payload[:16].decode("utf-8", "replace")
                    return
                obj = loads(bytes(msg.payload), MAX_JSON_BYTES) if msg.payload else None
                if obj is None:
                    return
                if kind == "claim":
                    view.claim = obj
                elif kind == "state":
                    view.state = obj
                elif kind == "stats":
                    view.stats = obj
                elif kind == "cmd/result":
                    rid = obj.get("id")
                    if isinstance(rid, str):
                        view.results[rid] = obj
                elif kind == "events":
                    event = check_event(obj)
                    if view.seqs.add(event["seq"]):
                        view.last_event = event
                        if self.on_event is not None:
                            self.on_event(device, event, received)
            except PayloadError:
                view.bad_payloads += 1

    def start(self, timeout: float = 5.0) -> FleetMonitor:
        try:
            self.client.connect(self.broker.host, self.broker.port, keepalive=30)
        except OSError as err:
            raise BrokerError(f"cannot reach MQTT broker {self.broker.where}: {err.strerror or err}; "
                              "is it running, and is the URL right?") from None
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.close()
            raise BrokerError(f"MQTT broker {self.broker.where} did not answer within {timeout:.0f} s")
        if self._refused:
            self.close()
            raise BrokerError(self._refused)
        return self

    def settle(self, quiet_s: float = 0.3, max_s: float = 2.0) -> None:
        """Wait for the retained messages: from the broker's SUBACK until ``quiet_s`` passes
        with no retained message, at most ``max_s``. Only retained ones count: a live fleet
        (50 devices, stats every few seconds) is never quiet, and waiting for silence made
        every ``fleet status`` take ``max_s``."""
        start = time.monotonic()
        self._subscribed.wait(max_s)
        self.last_retained = time.monotonic()
        while time.monotonic() - start < max_s and time.monotonic() - self.last_retained < quiet_s:
            time.sleep(0.05)

    def rows(self) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            return [self.devices[d].row(now) for d in sorted(self.devices)]

    def send(self, device: str, command: str, args: dict[str, Any] | None = None) -> str:
        rid = uuid.uuid4().hex[:16]
        self.client.publish(Topics(self.prefix, device).cmd(command), dumps({"id": rid, **(args or {})}), qos=1)
        return rid

    def result(self, device: str, rid: str) -> dict[str, Any] | None:
        with self._lock:
            view = self.devices.get(device)
            return None if view is None else view.results.get(rid)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
