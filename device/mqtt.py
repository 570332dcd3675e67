"""``edgecls run --mqtt URL``: results, health and commands over MQTT (topics: edgecls/fleet_protocol.py).

    MqttSink (loop thread: compares the label, keeps references; never touches the network)
    └── PublisherProcess (device/mqtt_process.py: a feeder thread writes batches to a pipe)
        └── publisher process (device/mqtt_child.py)
            └── FleetPublisher (device/mqtt_publisher.py: paho client, spool, acks, commands parsed)

The frame loop only appends the event to a deque (no lock, no wake-up, no JSON): a dead network
never slows a frame. The paho client, the spool and their threads run in a process of their
own, so their CPU (80 to 210 us an event in batches on the bench machines, most of it paho's
own Python) never holds the GIL the loop needs; the loop's process spends about 20 us an event
(5 on the loop thread, the rest in the feeder). Measured by scripts/bench_fleet.py
(BENCHMARKS.md, session 11): with a core to spare for the publisher process (as on a Pi 4 or
5, where the loop uses two), frames/s with --mqtt read 1.000x on a camera-like file and 0.980x
when the label changes on every other frame. When the loop fills every core (the bench
machine's two) they read 0.936x and 0.846x: the cost then comes with the publisher process at
work (a do-nothing child behind the same pipe costs nothing), although it uses about 2 % of
the CPUs in the loop's time.
Command handlers (device/commands.py) run in this process: they need the latest frame and the
model slot.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from edgecls import __version__
from edgecls.fleet_protocol import (
    Broker,
    Topics,
    check_id,
    check_prefix,
    default_device_id,
    parse_broker,
)

from .mqtt_process import PublisherProcess
from .mqtt_publisher import START_WAIT_S, CpuMeter, FleetPublisher
from .options import RunOptions
from .results import Frame, FrameStats, Prediction
from .sinks import SinkContext
from .spool import default_spool_path

__all__ = ["FleetPublisher", "MqttSink", "check_options", "open_mqtt"]  # FleetPublisher: simulated devices use it in-process

log = logging.getLogger("edgecls.device")
def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class MqttSink:
    """The loop's side: an event per label change, the latest result kept for state, stats
    and cmd/snapshot. Costs a comparison and a few assignments per frame."""

    def __init__(self, options: RunOptions, ctx: SinkContext, broker: Broker, topics: Topics, spool: Path) -> None:
        from .commands import COMMANDS

        self.options, self.ctx = options, ctx
        self.latest: tuple[Frame, Prediction, FrameStats] | None = None
        self.last_event: dict[str, Any] | None = None
        self.verdict: dict[str, Any] | None = None
        self._label: str | None = None
        self._latencies: deque[float] = deque(maxlen=300)
        self._cpu = CpuMeter()
        self._sha: dict[str, str] = {}
        # Everything slow to compute or import is done here, before capture starts (the
        # publisher process too), so startup costs the frame loop nothing.
        from .serve import backend_name

        self._backend = backend_name(options)
        self.model()
        self.publisher = PublisherProcess(broker, topics, spool, state=self.state, stats=self.stats,
                                        discovery_prefix=options.ha_discovery_prefix or None,
                                        state_every_s=options.mqtt_state_every_s, commands=COMMANDS)
        self.publisher.sink = self  # type: ignore[attr-defined]  # commands reach the run through it
        if ctx.updates is not None:  # --store: every update history record goes out on PREFIX/DEVICE/update
            from .mqtt_update import publish_updates

            publish_updates(self, ctx.updates)
        self.publisher.start()
        # Before capture (not in the frame loop): give the broker a moment, so the connect,
        # discovery and first state are done before the first frame. Down or slow: go on.
        self.publisher.wait_ready(START_WAIT_S)

    def model(self) -> dict[str, Any]:
        """The model in use now (cmd/reload may have swapped it)."""
        from edgecls.bundle import file_sha256

        info = self.ctx.slot.current[0] if self.ctx.slot is not None else self.ctx.model
        key = f"{info.path}:{getattr(self.ctx.slot, 'generation', 0)}"
        if key not in self._sha:
            try:
                self._sha = {key: file_sha256(info.path)}
            except OSError:
                self._sha = {key: ""}
        ref = self.ctx.slot.current.ref if self.ctx.slot is not None else None
        return {"name": info.path.name, "sha256": self._sha[key], "labels": list(info.labels),
                "version": ref.version if ref is not None else None}

    def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None:
        self.latest = (frame, prediction, stats)
        self._latencies.append(stats.latency_ms)
        if prediction.label != self._label:
            event = {"ts": round(stats.ts, 6), "emitted": round(time.time(), 6), "frame": stats.frame,
                     "label": prediction.label, "score": round(prediction.score, 4), "previous": self._label}
            self._label = prediction.label
            self.last_event = event
            self.publisher.emit(event)
            self.publisher.state_changed()

    def state(self) -> dict[str, Any]:
        latest, event = self.latest, self.last_event
        out: dict[str, Any] = {"label": None, "score": None, "ts": None, "event_ts": None,
                               "seq": self.publisher.last_seq, "model": self.model()}
        if latest is not None:
            out.update(label=latest[1].label, score=round(latest[1].score, 4), ts=round(latest[2].ts, 3))
        if event is not None:
            out["event_ts"] = event["emitted"]
        return out

    def stats(self) -> dict[str, Any]:
        lat = list(self._latencies)
        latest = self.latest
        loop = latest[2].loop if latest is not None else None

        return {"fps": round(loop.fps, 2) if loop else 0.0, "frames": loop.frames if loop else 0,
                "dropped": loop.dropped if loop else 0, "reconnects": loop.reconnects if loop else 0,
                "stalls": loop.stalls if loop else 0,
                "latency_p50_ms": _percentile(lat, 50), "latency_p99_ms": _percentile(lat, 99),
                "cpu_percent": self._cpu.percent(),
                "rss_bytes": _rss_bytes(), "model": self.model(), "backend": self._backend,
                "uptime_s": round(time.time() - self.publisher.started, 1), "field_check": self.verdict,
                "version": __version__}

    def close(self) -> None:
        self.publisher.close()


def check_options(options: RunOptions) -> tuple[Broker, str, str]:
    """The broker, device id and prefix, or a one-line error for a bad URL, TLS file, id or
    --bundle. No network and no files written: ``run`` calls it before it loads the model,
    so a typo is the only line printed."""
    assert options.mqtt is not None
    broker = parse_broker(options.mqtt, credentials=options.mqtt_credentials, ca=options.mqtt_ca,
                          cert=options.mqtt_cert, key=options.mqtt_key)
    device = check_id(options.device_id) if options.device_id else default_device_id()
    prefix = check_prefix(options.mqtt_prefix)
    if options.ha_discovery_prefix:
        check_prefix(options.ha_discovery_prefix, "--ha-discovery-prefix")
    if options.bundle is not None and not options.bundle.exists():
        from edgecls.errors import DataError

        raise DataError(f"--bundle {options.bundle} does not exist; give the bundle from 'edgecls field export'")
    return broker, device, prefix


def open_mqtt(options: RunOptions, ctx: SinkContext) -> MqttSink:
    """Everything that can be wrong (URL, TLS files, ids, spool) fails here, before capture."""
    broker, device, prefix = check_options(options)
    spool = Path(options.mqtt_spool or default_spool_path(device))
    sink = MqttSink(options, ctx, broker, Topics(prefix, device), spool)  # the spool opens in the publisher process
    log.info("MQTT: publishing as %s/%s to %s%s (spool %s)", prefix, device, broker.where,
             f" as user {broker.username!r}" if broker.username else "", spool)
    return sink
