"""``edgecls run --capture DIR``: keep the frames the model is unsure about, under a disk quota.

A capture folder is a ``--save-frames`` folder (:mod:`.frames`: ``<run>-<frame>`` .png,
.npy and .json, and ``session.json`` naming the model's sha256 and labels), so
``edgecls field replay`` reads it too; each record adds the rule that caught the frame
and the model's hash, and ``session.json`` adds a ``capture`` entry with the rules.

On the loop thread a frame costs the rule checks; only a frame a rule catches is
fingerprinted (:mod:`.dedupe`), checked against the rate caps and copied into a bounded
queue with ``put_nowait``: when the writer falls behind the frame is dropped and counted,
the loop never waits. The writer thread encodes, evicts the oldest captures while the
quota would be exceeded (counted), and writes each file atomically with the ``.json``
last, as ``--save-frames`` does, so a crash leaves at most an incomplete capture that
the next start removes. A disk that fills up anyway (another writer, a small card) first
costs the oldest captures; when nothing is left to evict, capture stops with a logged
line and classification goes on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import shutil
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecls.bundle import file_sha256
from edgecls.errors import DataError, OutputError
from edgecls.frameset import FRAME_NAME, FRAMES_FORMAT, FRAMES_VERSION, SESSION_FILE
from edgecls.fsutil import atomic_write_bytes, atomic_write_json

from .capture_rules import DEFAULT_RATE, DEFAULT_RULES, RateCaps, RuleSet, parse_rate, parse_rules
from .dedupe import Deduper, fingerprint
from .frames import FrameJob
from .model import ModelInfo
from .results import Frame, FrameStats, Prediction

log = logging.getLogger("edgecls.device")

#: Captures waiting for the writer; beyond this the loop drops (and counts) instead of waiting.
QUEUE_FRAMES = 16
DEFAULT_QUOTA_MB = 200.0
#: A quota must hold a few captures (a 640x480 PNG is about 0.5 MB), and the disk must have
#: this much free at start, or capture is refused before classification begins.
MIN_QUOTA_MB = 1.0
MIN_FREE_MB = 2.0


@dataclass(frozen=True)
class CaptureOptions:
    """folder: the capture folder. rules: rule specs (:mod:`.capture_rules`). rate: the caps.
    quota_mb: the folder's size limit; the oldest captures are evicted to stay under it.
    dedupe: suppress near-duplicates of recent captures."""

    folder: Path
    rules: tuple[str, ...] = DEFAULT_RULES
    rate: str = DEFAULT_RATE
    quota_mb: float = DEFAULT_QUOTA_MB
    dedupe: bool = True


def _frame_key(stem: str) -> tuple[str, int]:
    run, _, frame = stem.rpartition("-")
    return run, int(frame)


class CaptureSink:
    """The sink; ``state()`` is the accessor for /status and MQTT, ``summary()`` for the stats line."""

    def __init__(self, options: CaptureOptions, model: ModelInfo, *, source: str = "", smooth: int = 1) -> None:
        self.folder = Path(options.folder)
        self.rules = RuleSet(parse_rules(options.rules, model.labels))
        self.caps = RateCaps(parse_rate(options.rate))
        if options.quota_mb < MIN_QUOTA_MB:
            raise DataError(f"--capture-quota {options.quota_mb:g} MB is too small: give at least {MIN_QUOTA_MB:g} MB")
        self.quota = int(options.quota_mb * 1e6)
        self.dedupe = Deduper() if options.dedupe else None
        self.sha = file_sha256(model.path)
        self.run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self._ring: deque[tuple[str, int]] = deque()
        self.used = 0
        self._open(model, source, smooth, options)
        self.captured = 0
        self.by_rule: Counter[str] = Counter()
        self.rate_limited = 0
        self.dropped = 0
        self.evicted = 0
        self.stopped: str | None = None
        self._queue: queue.Queue[FrameJob | None] = queue.Queue(QUEUE_FRAMES)
        self._thread = threading.Thread(target=self._write_all, name="edgecls-capture", daemon=True)
        self._thread.start()

    # -- start: every refusal is one line, before classification begins

    def _open(self, model: ModelInfo, source: str, smooth: int, options: CaptureOptions) -> None:
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"--capture {folder} exists and is not a folder: choose a folder path")
        session_path = folder / SESSION_FILE
        runs: list[dict[str, Any]] = []
        if session_path.is_file():
            try:
                old = json.loads(session_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as err:
                raise OutputError(f"--capture {folder} has an unreadable {SESSION_FILE} ({err}): choose a new folder") from err
            if old.get("format") != FRAMES_FORMAT or old.get("model_sha256") != self.sha or old.get("labels") != list(model.labels):
                raise OutputError(f"--capture {folder} holds frames of another model (sha256 {str(old.get('model_sha256'))[:16]}, "
                                  f"this one {self.sha[:16]}): import them ('edgecls field import') and choose a new folder")
            runs = list(old.get("runs") or [])
            if any(r.get("run") == self.run_id for r in runs):
                self.run_id += f".{time.time_ns() % 10**6:06d}"
        elif folder.is_dir() and any(folder.iterdir()):
            raise OutputError(f"--capture {folder} exists and holds other files: choose a new or empty folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(folder).free
        except OSError as err:
            raise OutputError(f"cannot write --capture {folder}: {err.strerror}; choose a writable folder") from err
        if free < MIN_FREE_MB * 1e6:
            raise OutputError(f"--capture {folder} is on a full disk ({free / 1e6:.1f} MB free, need {MIN_FREE_MB:g}): "
                              "free some space or choose another disk")
        self._scan_existing()
        runs.append({"run": self.run_id, "started": time.time(), "source": source, "smooth": smooth})
        try:
            atomic_write_json(session_path, {
                "format": FRAMES_FORMAT, "version": FRAMES_VERSION, "model": model.path.name, "model_sha256": self.sha,
                "labels": list(model.labels), "head": model.head, "runs": runs,
                "capture": {"rules": [str(r) for r in self.rules.rules], "rate": options.rate, "quota_bytes": self.quota},
            })
        except (OSError, OutputError) as err:
            raise OutputError(f"cannot write --capture {folder}: {getattr(err, 'strerror', None) or err}; "
                              "choose a writable folder") from err

    def _scan_existing(self) -> None:
        """Resume the ring from an earlier run; remove what a crash left half-written."""
        stems: dict[str, int] = {}
        for path in self.folder.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                continue
            m = FRAME_NAME.match(path.name)
            if m:
                stem = path.name.rsplit(".", 1)[0]
                stems[stem] = stems.get(stem, 0) + path.stat().st_size
        for stem in sorted(stems, key=_frame_key):
            if not (self.folder / f"{stem}.json").is_file():
                for ext in ("png", "npy"):
                    (self.folder / f"{stem}.{ext}").unlink(missing_ok=True)
                continue
            self._ring.append((stem, stems[stem]))
            self.used += stems[stem]

    # -- loop thread

    def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None:
        if self.stopped is not None:
            return
        rule = self.rules.match(stats.frame, prediction)
        if rule is None:
            return
        if self.caps.full():  # before the fingerprint: an unsure scene can last minutes
            self.rate_limited += 1
            return
        fp = fingerprint(tensor) if self.dedupe is not None else None
        if self.dedupe is not None and fp is not None and self.dedupe.seen(fp):
            return
        if not self.caps.allow():
            self.rate_limited += 1
            return
        if self.dedupe is not None and fp is not None:
            self.dedupe.remember(fp)
        try:
            self._queue.put_nowait(FrameJob.make(self.run_id, frame, tensor, prediction, stats,
                                                 rule=str(rule),
                                                 model_sha256=stats.model.sha256 if stats.model else self.sha))
        except queue.Full:
            self.dropped += 1

    # -- writer thread

    def _write_all(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self.stopped is not None:
                continue
            try:
                self._write(job)
            except Exception as err:  # never let the writer die silently: stop capture, say why
                self._stop(f"{type(err).__name__}: {err}")

    def _evict_oldest(self) -> bool:
        if not self._ring:
            return False
        stem, size = self._ring.popleft()
        for ext in ("json", "npy", "png"):  # .json first: a half-evicted capture is incomplete, not wrong
            (self.folder / f"{stem}.{ext}").unlink(missing_ok=True)
        self.used -= size
        self.evicted += 1
        return True

    def _write(self, job: FrameJob) -> None:
        files = job.files()
        size = sum(len(data) for _, data in files)
        if size > self.quota:
            self._stop(f"one capture ({size / 1e6:.1f} MB) is larger than --capture-quota ({self.quota / 1e6:.1f} MB)")
            return
        while self.used + size > self.quota and self._evict_oldest():
            pass
        for attempt in range(2):
            try:
                for name, data in files:
                    atomic_write_bytes(self.folder / name, data)
                break
            except (OSError, OutputError) as err:
                for name, _ in reversed(files):
                    (self.folder / name).unlink(missing_ok=True)
                reason = getattr(err, "strerror", None) or str(err)
                if attempt == 1 or not (self._evict_oldest() and self._evict_oldest()):
                    self._stop(f"cannot write {self.folder}: {reason}")
                    return
                log.warning("capture: %s; evicted the oldest captures to make room", reason)
        self._ring.append((job.name, size))
        self.used += size
        self.captured += 1
        self.by_rule[str(job.record["rule"])] += 1

    def _stop(self, reason: str) -> None:
        self.stopped = reason
        log.error("capture stopped (classification goes on): %s", reason)

    # -- accessors and close

    def state(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "captured": self.captured, "by_rule": dict(self.by_rule),
                "suppressed_duplicates": self.dedupe.suppressed if self.dedupe else 0,
                "rate_limited": self.rate_limited, "dropped": self.dropped, "evicted": self.evicted,
                "bytes": self.used, "quota_bytes": self.quota, "stopped": self.stopped}

    def gauges(self) -> list[tuple[str, str, dict[str, str], float]]:
        return [("edgecls_capture_frames", "Frames kept by --capture (this run).", {}, float(self.captured)),
                ("edgecls_capture_evicted", "Captures evicted to stay under the quota.", {}, float(self.evicted)),
                ("edgecls_capture_dropped", "Captures dropped because the writer was behind.", {}, float(self.dropped)),
                ("edgecls_capture_bytes", "Bytes the capture folder holds.", {}, float(self.used))]

    def summary(self) -> str:
        text = f"captured {self.captured} ({self.used / 1e6:.1f}/{self.quota / 1e6:.0f} MB, {self.evicted} evicted"
        text += f", {self.dropped} dropped)" if self.dropped else ")"
        return text + (" CAPTURE STOPPED" if self.stopped else "")

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._queue.put(None)
        self._thread.join()
        dup = self.dedupe.suppressed if self.dedupe else 0
        log.info("captured %d frames to %s (%s); %d near-duplicates suppressed, %d over the rate caps, "
                 "%d dropped (writer behind), %d evicted for the quota; %.1f of %.0f MB used",
                 self.captured, self.folder, ", ".join(f"{k} {v}" for k, v in self.by_rule.items()) or "none",
                 dup, self.rate_limited, self.dropped, self.evicted, self.used / 1e6, self.quota / 1e6)
        if self.stopped:
            log.error("capture had stopped: %s", self.stopped)
