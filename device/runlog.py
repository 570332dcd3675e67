"""The records that frame a run in ``--jsonl``: what ran, on what, and how it ended.

A results file outlives many runs (the systemd unit appends across restarts), so each run
opens with a ``run_start`` record saying which edgecls, which model (by sha256, so a model
swapped under the same name shows), which labels and which source produced the frame
records that follow, and closes with a ``run_end`` summary. Frame records have a
``frame`` key; these have an ``event`` key instead.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from edgecls import __version__
from edgecls.bundle import file_sha256
from edgecls.redact import mask_secrets

from .model import ModelInfo


def run_start_record(model: ModelInfo, source: str) -> dict[str, Any]:
    return {
        "event": "run_start",
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "edgecls": __version__,
        "model": str(model.path),
        "model_sha256": file_sha256(model.path),
        "labels": list(model.labels),
        "labels_from": model.labels_from,
        "source": mask_secrets(source),
    }


def is_frame_record(record: dict[str, Any]) -> bool:
    """True for a per-frame result; False for ``run_start`` / ``run_end``."""
    return "event" not in record
