"""What a device does when the host writes to ``PREFIX/DEVICE/cmd/NAME``.

:data:`COMMANDS` is the registry: name -> handler(publisher, args) -> result dict. In
``edgecls run`` the payload is parsed and checked in the publisher process and the handler
runs in the run's own process (it needs the latest frame and the model slot), on a thread of
its own (classification goes on), one of a kind at a time (``CommandRunner`` in
device/mqtt_publisher.py); ``{"id", "command", "ok", "result" | "error"}`` goes out on ``cmd/result``. An
unknown name, a bad payload or a handler that raises becomes an error reply, never a crash.
To add a command (cmd/update, cmd/rollback): one function and one line in :data:`COMMANDS`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from edgecls.errors import DataError

from .mqtt_update import rollback_cmd, update_cmd

if TYPE_CHECKING:
    from .mqtt import FleetPublisher, MqttSink


def _sink(pub: FleetPublisher) -> MqttSink:
    sink = getattr(pub, "sink", None)
    if sink is None:
        raise DataError("this device runs no classifier (a simulated device)")
    return sink  # type: ignore[no-any-return]


def field_check_cmd(pub: FleetPublisher, args: dict[str, Any]) -> dict[str, Any]:
    """The field check of the model in use against ``--bundle``; the verdict table as JSON."""
    from .field import field_check

    sink = _sink(pub)
    options = sink.options
    if options.bundle is None:
        raise DataError("no --bundle was given to 'edgecls run': start it with --bundle BUNDLE to allow field checks")
    model = sink.ctx.slot.current[0].path if sink.ctx.slot is not None else options.model
    started = time.time()
    report = field_check(model, options.bundle, edgetpu=options.edgetpu, device=options.device,
                         num_threads=options.num_threads).to_dict()
    sink.verdict = {"passed": report["passed"], "failures": report["failures"], "ts": round(time.time(), 3),
                    "model_sha256": report["figures"].get("model_sha256")}
    return {**report, "seconds": round(time.time() - started, 2)}


def snapshot_cmd(pub: FleetPublisher, args: dict[str, Any]) -> dict[str, Any]:
    """The latest frame, annotated as the preview shows it, as JPEG on ``PREFIX/DEVICE/snapshot``."""
    from .serve.preview import annotate, encode_jpeg

    latest = _sink(pub).latest
    if latest is None:
        raise DataError("no frame has been classified yet")
    jpeg = encode_jpeg(annotate(*latest))
    pub.publish(pub.topics.snapshot, jpeg)
    _frame, prediction, stats = latest
    return {"topic": pub.topics.snapshot, "bytes": len(jpeg), "frame": stats.frame, "label": prediction.label}


def reload_cmd(pub: FleetPublisher, args: dict[str, Any]) -> dict[str, Any]:
    """Re-read the model from disk and swap it in between two frames (SLOT.md)."""
    from .loop import open_classifier

    sink = _sink(pub)
    slot = sink.ctx.slot
    if slot is None:
        raise DataError("this run cannot swap its model")
    info, backend, classifier = open_classifier(sink.options)  # raises (old model stays) if unusable
    old = slot.swap(info, backend, classifier)
    old[1].close()
    model = sink.model()
    return {"model": model["name"], "sha256": model["sha256"], "labels": model["labels"]}


def ping_cmd(pub: FleetPublisher, args: dict[str, Any]) -> dict[str, Any]:
    """Is it there, and who is it (instance, seq)."""
    return {"instance": pub.instance, "last_seq": pub.last_seq, "uptime_s": round(time.time() - pub.started, 1)}


#: name -> handler. Others add to it (cmd/update, cmd/rollback).
COMMANDS = {
    "field-check": field_check_cmd,
    "snapshot": snapshot_cmd,
    "reload": reload_cmd,
    "ping": ping_cmd,
    "update": update_cmd,  # device/mqtt_update.py: the update gate over MQTT
    "rollback": rollback_cmd,
}
