"""``cmd/update`` and ``cmd/rollback``: the update gate (:mod:`.update`) driven over MQTT.

    host: edgecls fleet deploy ──cmd/update (header line + package bytes)──> device
    device: package -> STORE/tmp (fsynced) -> UpdateManager.submit -> cmd/result {verdict}
            every history record (swapped, confirmed, probation_failed, rollback, refused)
            -> PREFIX/DEVICE/update, tagged with the id of the cmd/update that started it

The package travels inside the MQTT message (bounded by ``MAX_UPDATE_BYTES``, its length
and sha256 checked against its header before it touches the disk) rather than as a URL:
the devices then need no route to the host, only the broker they already use. The file is
written into the store's ``tmp/`` (removed at every start, so a ``kill -9`` mid-write
leaves nothing), and the gate runs on the command's own thread: the frame loop never waits.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecls.errors import DataError, OutputError
from edgecls.fleet_protocol import dumps

if TYPE_CHECKING:
    from .mqtt import FleetPublisher, MqttSink
    from .update import UpdateManager

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _manager(pub: FleetPublisher, command: str) -> UpdateManager:
    sink = getattr(pub, "sink", None)
    manager = getattr(getattr(sink, "ctx", None), "updates", None)
    if manager is None:
        raise DataError(f"cmd/{command} needs a model store: start 'edgecls run' with --store DIR --trust KEY.pub")
    return manager  # type: ignore[no-any-return]


def publish_updates(sink: MqttSink, manager: UpdateManager) -> None:
    """Wire the gate's history to ``PREFIX/DEVICE/update`` (QoS 1, not retained: a host
    that deploys listens from before it sends)."""
    pub = sink.publisher

    def publish(record: dict[str, Any]) -> None:
        # The id of the command that caused it: records written while a cmd/update or
        # cmd/rollback runs, and the end of probation of the model a cmd/update put in
        # (not records of an --inbox package that came later).
        rid, active, sha = getattr(pub, "update_tag", (None, False, None))
        tagged = rid and (active or (sha is not None and record.get("model") == sha))
        pub.publish(pub.topics.update, dumps({**record, **({"id": rid} if tagged else {})}))
        pub.state_changed()  # the state message names the model: send the new one soon

    manager.publish = publish


def update_cmd(pub: FleetPublisher, args: dict[str, Any]) -> dict[str, Any]:
    """Write the package into the store, run the gate, reply with its verdict."""
    manager = _manager(pub, "update")
    if not manager.trusted:
        raise DataError("cmd/update needs --trust KEY.pub: packages are accepted only when signed by a trusted key")
    data: bytes = args["data"]
    rid = args.get("id")
    name = f"mqtt-{rid or 'update'}.edgecls"
    # the package's own name, for messages only (never a path: the file is named by the id)
    shown = str(args.get("name") or name)
    shown = shown if _NAME.match(shown) else name
    try:
        fd, tmp = tempfile.mkstemp(prefix="mqtt-", suffix=".edgecls", dir=manager.store.root / "tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        path = Path(tmp).with_name(name)
        os.replace(tmp, path)
    except OSError as err:
        raise OutputError(f"cannot write the package into --store {manager.store.root}: {err.strerror}; "
                          "free space on the device") from None
    pub.update_tag = (rid, True, None)  # type: ignore[attr-defined]  # the records it causes carry its id
    before = manager.slot.current.ref
    verdict = None
    try:
        verdict = manager.submit(path)
    finally:
        path.unlink(missing_ok=True)
        pub.update_tag = (rid, False, verdict.sha256 if verdict is not None and verdict.accepted else None)  # type: ignore[attr-defined]
    return {"accepted": verdict.accepted, "reason": verdict.reason.replace(str(path), shown), "version": verdict.version,
            "sha256": verdict.sha256, "before": before.sha256 if before else None,
            "before_version": before.version if before else None,
            "probation_s": manager.update.probation_s if verdict.accepted else None,
            "verify_s": round(verdict.verify_s, 3), "check_s": round(verdict.check_s, 3)}


def rollback_cmd(pub: FleetPublisher, args: dict[str, Any]) -> dict[str, Any]:
    """The previous model back, between two frames (``edgecls rollback`` over MQTT)."""
    manager = _manager(pub, "rollback")
    pub.update_tag = (args.get("id"), True, None)  # type: ignore[attr-defined]
    try:
        stored = manager.rollback()
    finally:
        pub.update_tag = (None, False, None)  # type: ignore[attr-defined]
    return {"sha256": stored.sha256, "version": stored.version}
