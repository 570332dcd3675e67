"""``edgecls fleet deploy``: a staged rollout of one signed package over MQTT.

    canaries (first N devices) ── cmd/update ──> verdict on cmd/result, then the end of
                                                 probation on PREFIX/DEVICE/update
    all canaries confirmed?  yes -> the rest, all at once;  no -> stop, the rest untouched

A device passes when its gate accepted the package and its probation ended in
``confirmed`` for that model. It fails when the gate refused the package, or probation
ended in ``probation_failed``/``rollback``. It did not answer when no verdict or no end of
probation came within ``timeout`` seconds. The devices judge the package themselves
(signature, hashes, field check on their own runtime); the host's optional ``--trust``
check only saves a round trip for a package that no device would take.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgecls.errors import DataError
from edgecls.fleet_host import FleetMonitor
from edgecls.fleet_protocol import (
    MAX_JSON_BYTES,
    MAX_UPDATE_BYTES,
    PayloadError,
    Topics,
    frame_update,
    loads,
)

#: Outcomes, and the exit code each leads to (the worst one wins: 1 over 2 over 0).
CONFIRMED, REFUSED, FAILED, NO_ANSWER, SKIPPED = "confirmed", "refused", "failed", "no answer", "skipped"
#: Probation ends in one of these for the deployed model.
_FAILED_EVENTS = ("probation_failed", "rollback", "recovered")


@dataclass(frozen=True)
class Outcome:
    """One device's row of the deploy table."""

    device: str
    stage: str
    outcome: str
    reason: str
    before: str | None = None
    after: str | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def exit_code(outcomes: list[Outcome]) -> int:
    kinds = {o.outcome for o in outcomes}
    if kinds & {REFUSED, FAILED, SKIPPED}:
        return 1
    return 2 if NO_ANSWER in kinds else 0


class DeployMonitor(FleetMonitor):
    """The fleet monitor, also listening to every device's ``update`` topic (live messages
    only: a retained one is from an earlier update)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, events=False, **kwargs)
        self.updates: dict[str, list[dict[str, Any]]] = {}

    def _on_connect(self, client: Any, u: Any, f: Any, reason: Any, p: Any) -> None:
        super()._on_connect(client, u, f, reason, p)
        if not reason.is_failure:
            client.subscribe([(self.topics.update, 1)])

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        parts = Topics(self.prefix, "").split(msg.topic)
        if parts is not None and parts[1] == "update":
            if msg.retain:
                return
            try:
                record = loads(bytes(msg.payload), MAX_JSON_BYTES)
            except PayloadError:
                return
            with self._lock:
                self.updates.setdefault(parts[0], []).append(record)
            return
        super()._on_message(c, u, msg)

    def send_update(self, device: str, rid: str, data: bytes, name: str | None = None) -> None:
        self.client.publish(Topics(self.prefix, device).cmd("update"), frame_update(rid, data, name), qos=1)

    def records(self, device: str, rid: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.updates.get(device, []) if r.get("id") == rid]

    def model_of(self, device: str) -> str | None:
        with self._lock:
            view = self.devices.get(device)
            if view is None:
                return None
            model = (view.state or {}).get("model") or (view.stats or {}).get("model") or {}
        return _short(model.get("version"), model.get("sha256"))


def _short(version: Any, sha: Any) -> str | None:
    if not isinstance(sha, str) or not sha:
        return None
    return f"{version or '?'} ({sha[:12]})"


def read_package(path: Path, trust: list[Path] | None) -> bytes:
    """The package's bytes, bounded; verified against ``trust`` first when given."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise DataError(f"cannot read package {path}: {err.strerror}; give the file from 'edgecls package'") from None
    if size > MAX_UPDATE_BYTES:
        raise DataError(f"package {path} is {size:,} bytes, over the {MAX_UPDATE_BYTES:,}-byte cap of cmd/update")
    if trust:
        import tempfile

        from edgecls.package import load_public_keys, open_package

        with tempfile.TemporaryDirectory() as tmp:
            open_package(path, load_public_keys(trust), Path(tmp))  # raises a DataError naming what is wrong
    return path.read_bytes()


def _one(monitor: DeployMonitor, device: str, stage: str, data: bytes, timeout: float, name: str) -> Outcome:
    """Send to one device and follow it to the end of its probation (or the timeout)."""
    import uuid

    rid = uuid.uuid4().hex[:16]
    before = monitor.model_of(device)
    started = time.monotonic()
    deadline = started + timeout
    monitor.send_update(device, rid, data, name)

    def row(outcome: str, reason: str, after: str | None = None) -> Outcome:
        return Outcome(device, stage, outcome, reason, before, after, round(time.monotonic() - started, 1))

    reply = None
    while reply is None:
        reply = monitor.result(device, rid)
        if reply is None:
            if time.monotonic() > deadline:
                return row(NO_ANSWER, f"no verdict within {timeout:.0f} s (is it online, and on this broker?)", before)
            time.sleep(0.05)
    if not reply.get("ok"):
        return row(REFUSED, str(reply.get("error"))[:300], before)
    result = reply.get("result") or {}
    before = _short(result.get("before_version"), result.get("before")) or before
    if not result.get("accepted"):
        return row(REFUSED, str(result.get("reason"))[:300], before)
    sha, after = result.get("sha256"), _short(result.get("version"), result.get("sha256"))
    while True:
        for record in monitor.records(device, rid):
            if record.get("model") != sha:
                continue
            if record.get("event") == "confirmed":
                return row(CONFIRMED, f"probation passed ({record.get('fps')} fps, before {record.get('fps_before')})", after)
            if record.get("event") in _FAILED_EVENTS:
                back = _short(None, record.get("to"))
                return row(FAILED, str(record.get("reason"))[:300], back or before)
        if time.monotonic() > deadline:
            return row(NO_ANSWER, f"accepted, but no end of probation within {timeout:.0f} s", after)
        time.sleep(0.05)


def _stage(monitor: DeployMonitor, devices: list[str], stage: str, data: bytes, timeout: float, name: str,
           on_done: Callable[[Outcome], None]) -> list[Outcome]:
    """All devices of one stage at once, each followed on a thread of its own."""
    results: dict[str, Outcome] = {}

    def follow(device: str) -> None:
        outcome = _one(monitor, device, stage, data, timeout, name)
        results[device] = outcome
        on_done(outcome)

    threads = [threading.Thread(target=follow, args=(d,), daemon=True) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [results[d] for d in devices]


def deploy(monitor: DeployMonitor, devices: list[str], data: bytes, *, canary: int, timeout: float,
           name: str = "package.edgecls", on_done: Callable[[Outcome], None] = lambda o: None) -> list[Outcome]:
    """Canaries first; the rest only if every canary was confirmed."""
    canaries, rest = devices[:canary], devices[canary:]
    outcomes = _stage(monitor, canaries, "canary", data, timeout, name, on_done) if canaries else []
    if any(o.outcome != CONFIRMED for o in outcomes):
        stopped = next(o for o in outcomes if o.outcome != CONFIRMED)
        return outcomes + [Outcome(d, "rest", SKIPPED, f"not sent: canary {stopped.device} {stopped.outcome}",
                                   monitor.model_of(d), monitor.model_of(d)) for d in rest]
    return outcomes + (_stage(monitor, rest, "rest", data, timeout, name, on_done) if rest else [])
