"""``edgecls run --serve [HOST:]PORT``: watch a headless device from a browser.

    PreviewSink (a sink: the loop hands it each result)
    ├── preview.Preview   latest frame -> annotated JPEG, encoded on its own thread, shared
    ├── metrics.Metrics   Prometheus counters and per-stage histograms (edgecls[serve])
    └── server            ThreadingHTTPServer on a daemon thread: /, /stream, /status, /metrics

Everything that can fail (the address, the port, the prometheus_client import) fails in
:func:`open_preview`, which the sink registry calls before capture starts. On the loop
thread the sink stores a reference and updates a few counters; nothing is encoded there.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from edgecls.device.model import ModelInfo
from edgecls.device.options import RunOptions
from edgecls.device.results import Frame, FrameStats, Prediction, result_record
from edgecls.litert import runtime
from edgecls.redact import mask_secrets

from .metrics import Metrics
from .preview import Preview
from .server import Address, PreviewHTTPServer, ServeError, bind, parse_address, start

__all__ = ["PreviewSink", "ServeError", "open_preview", "parse_address", "public_source"]

log = logging.getLogger("edgecls.device")

TOKEN_ENV = "EDGECLS_SERVE_TOKEN"
#: Label changes kept for the page's "recent labels".
HISTORY = 10


def public_source(source: str) -> str:
    """The source as viewers may see it: a URL's user and password (rtsp://user:pw@cam/...) hidden."""
    return mask_secrets(source)


def backend_name(options: RunOptions) -> str:
    """What the loop's backend will be, told from the options (the sink never sees the backend)."""
    rt = runtime()
    where = f"edgetpu ({options.device})" if options.edgetpu else "cpu"
    return f"{where}, {rt.name} {rt.version}"


class PreviewSink:
    """Keeps the newest result for the server; the server thread does the rest."""

    def __init__(self, address: Address, model: ModelInfo, backend: str, source: str, token: str | None = None) -> None:
        self.model, self.backend, self.source = model, backend, source
        self.token = token or None
        self.preview = Preview()
        self._metrics = Metrics(model.path.name, backend, source)
        self._history: tuple[dict[str, Any], ...] = ()
        self._last_label: str | None = None
        self._started = time.time()
        self._extras: dict[str, Any] = {}
        try:
            self.server: PreviewHTTPServer | None = bind(address, self)
        except BaseException:
            self.preview.close()
            raise
        host, port = self.server.server_address[:2]
        self.address = Address(str(host), int(port))
        self.url = f"http://{self.address}/"
        start(self.server)

    def attach(self, extras: dict[str, Any]) -> None:
        """Report these sinks' ``state()`` in /status and ``gauges()`` in /metrics (drift, capture)."""
        self._extras = extras
        self._metrics.add_gauges(lambda: [g for extra in list(extras.values()) for g in extra.gauges()])

    # -- loop thread

    def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None:
        self.preview.offer(frame, prediction, stats)
        self._metrics.observe(stats, prediction.score)
        if prediction.label != self._last_label:
            self._last_label = prediction.label
            entry = {"ts": round(stats.ts, 3), "frame": stats.frame, "label": prediction.label, "score": round(prediction.score, 4)}
            self._history = (*self._history[-(HISTORY - 1):], entry)

    def close(self) -> None:
        if self.server is not None:
            self.preview.close()
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # -- server threads

    def status(self) -> dict[str, Any]:
        latest = self.preview.latest
        spec = self.model.spec
        out: dict[str, Any] = {
            "model": {"name": self.model.path.name, "labels": list(self.model.labels), "head": self.model.head,
                      "labels_from": self.model.labels_from, "spec": spec.to_dict() if spec else None},
            "backend": self.backend,
            "source": self.source,
            "uptime_s": round(time.time() - self._started, 1),
            "viewers": self.preview.viewers,
            "prediction": None,
            "stats": None,
            "history": list(self._history),
        }
        if latest is not None:
            _frame, prediction, stats = latest
            if stats.model is not None:  # the model that classified this frame (it changes on an update)
                out["model"].update(sha256=stats.model.sha256, version=stats.model.version)
            record = result_record(prediction, stats)
            out["prediction"] = {k: record[k] for k in ("label", "index", "score", "top")}
            out["stats"] = {k: v for k, v in record.items() if k not in out["prediction"]}
            out["stats"].update(frames=stats.loop.frames, stalls=stats.loop.stalls)
        for name, extra in list(self._extras.items()):
            out[name] = extra.state()
        return out

    def metrics(self) -> tuple[bytes, str]:
        return self._metrics.render()


def open_preview(options: RunOptions, model: ModelInfo, source: str) -> PreviewSink | None:
    """The ``--serve`` sink, bound and serving, or None without ``--serve``."""
    if options.serve is None:
        return None
    address = parse_address(options.serve)
    token = options.serve_token if options.serve_token is not None else os.environ.get(TOKEN_ENV)
    sink = PreviewSink(address, model, backend_name(options), public_source(source), token)
    assert sink.server is not None
    if not sink.server.loopback:
        log.warning("the preview on %s is reachable from other machines%s", sink.address,
                    "; every route needs the token" if sink.token else
                    f": anyone who can reach this port can watch the camera; set --serve-token or {TOKEN_ENV}")
    log.info("preview on %s%s (JSON: /status, Prometheus: /metrics)", sink.url, "?token=..." if sink.token else "")
    return sink
