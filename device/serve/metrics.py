"""``/metrics``: the loop's counters and per-stage latencies in the Prometheus text format.

prometheus_client is imported here only (``edgecls[serve]``), into a registry of this run's
own, so nothing else in the process (or a second run in tests) mixes in. Updating costs a
few microseconds per frame on the loop thread; rendering happens in the request's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgecls.device.results import FrameStats
from edgecls.errors import MissingDependencyError

#: Seconds. The stages run from tens of microseconds (invoke on int8) to a second (a stall).
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STAGES = ("capture", "preprocess", "invoke", "postprocess", "latency")


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError as err:
        raise MissingDependencyError("prometheus_client", "serve", "--serve") from err
    return prometheus_client


class Metrics:
    """One run's metrics. ``model``/``backend``/``source`` become the labels of ``edgecls_info``."""

    def __init__(self, model: str, backend: str, source: str) -> None:
        pc = _client()
        self._pc = pc
        self.registry = pc.CollectorRegistry(auto_describe=True)
        r = self.registry
        self.frames = pc.Counter("edgecls_frames", "Frames classified.", registry=r)
        self.dropped = pc.Counter("edgecls_dropped_frames", "Stale frames the latest-frame reader discarded.", registry=r)
        self.reconnects = pc.Counter("edgecls_reconnects", "Times a live source was reopened.", registry=r)
        self.stalls = pc.Counter("edgecls_stalls", "Source failures detected (read errors, frozen frames, timeouts).", registry=r)
        self.fps = pc.Gauge("edgecls_fps", "Classified frames per second over the recent window.", registry=r)
        self.score = pc.Gauge("edgecls_top_score", "Score of the current top label.", registry=r)
        stage = pc.Histogram("edgecls_stage_seconds", "Seconds per frame in each stage; latency: capture to prediction.",
                             ["stage"], buckets=BUCKETS, registry=r)
        self._stages = [stage.labels(name) for name in STAGES]
        pc.Info("edgecls", "The model, backend and source of this run.", registry=r).info(
            {"model": model, "backend": backend, "source": source})
        self._totals = (0, 0, 0)
        self.model = pc.Gauge("edgecls_model", "1 for the model classifying now (sha256, version); 0 for one it replaced.",
                              ["sha256", "version"], registry=r)
        self._model: tuple[str, str] | None = None

    def observe(self, stats: FrameStats, score: float) -> None:
        """Loop thread: one frame's numbers."""
        t, s = stats.timings, stats.loop
        self.frames.inc()
        for child, ms in zip(self._stages, (t.capture_ms, t.preprocess_ms, t.invoke_ms, t.postprocess_ms, stats.latency_ms),
                             strict=True):
            child.observe(ms / 1000.0)
        self.fps.set(s.fps)
        self.score.set(score)
        if stats.model is not None and (stats.model.sha256, stats.model.version or "") != self._model:
            if self._model is not None:
                self.model.labels(*self._model).set(0)
            self._model = (stats.model.sha256, stats.model.version or "")
            self.model.labels(*self._model).set(1)
        totals = (s.dropped, s.reconnects, s.stalls)
        if totals != self._totals:
            for counter, now, before in zip((self.dropped, self.reconnects, self.stalls), totals, self._totals, strict=True):
                if now > before:
                    counter.inc(now - before)
            self._totals = totals

    def add_gauges(self, read: Callable[[], list[tuple[str, str, dict[str, str], float]]]) -> None:
        """Gauges read at scrape time: ``read()`` gives (name, help, labels, value) rows."""
        from prometheus_client.core import GaugeMetricFamily

        class Collector:
            def collect(self) -> Any:
                families: dict[str, Any] = {}
                for name, text, labels, value in read():
                    family = families.get(name)
                    if family is None:
                        family = families[name] = GaugeMetricFamily(name, text, labels=list(labels))
                    family.add_metric(list(labels.values()), value)
                return list(families.values())

        self.registry.register(Collector())

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return self._pc.generate_latest(self.registry), self._pc.CONTENT_TYPE_LATEST
