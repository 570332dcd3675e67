"""The drift monitor: the live window's statistics against the artifact's baseline.

Every ``SAMPLE_EVERY``-th frame's 64x64 model input gives brightness, contrast,
sharpness and a colour histogram (:mod:`edgecls.drift`); every frame gives its predicted
label and top-1 score. Over the last ``WINDOW_FRAMES`` frames each statistic's histogram
is compared with the baseline by PSI every ``CHECK_EVERY`` frames. A statistic whose
PSI exceeds its limit raises an alarm naming it, its PSI and how far its mean moved;
the alarm clears when the PSI falls under half the limit (hysteresis, so a statistic
near its limit does not flap).

Limits (PSI). The rule of thumb of credit scoring reads PSI < 0.1 as no change and
> 0.25 as a major shift, for samples of independent items. A camera's window is not
that: 900 frames (30 s) are a few dozen scenes, each frame close to the previous one,
so even a camera watching the training distribution scores higher by chance, and a
camera's upscaled frames are a little softer than the training images. The limits
below are 1.4 to 2 times the largest PSI each statistic reached over 10,000 unshifted
camera-like frames of the demo shapes (``scripts/bench_field.py``, BENCHMARKS.md: the
peaks were brightness 1.14, contrast 0.54, sharpness 1.42, colour 0.21 to 0.24, score
0.44, class mix 0.23), and never under the rule of thumb's 0.25 for a histogram of
pooled pixels. The class mix gets the widest limit: a camera that looks at one class
for half a minute is not drift. The benchmark reports how many frames each controlled
shift takes to raise an alarm with these limits.

Cost: the statistics of one 64x64 input cost about three times the preprocessing of a
640x480 frame, so they run on every ``SAMPLE_EVERY``-th frame only: 90 samples a window,
three per scene of a camera that sees a new scene a second, which is all the window's
information (frames of one scene are near copies); labels and scores are counted on
every frame. BENCHMARKS.md measures frames/s with the monitor and capture on and off.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgecls.drift import (
    CHANNELS,
    COLOUR_BINS,
    QUANTILE_BINS,
    SCALARS,
    SCORE_BINS,
    Baseline,
    colour_counts,
    psi,
    read_baseline,
    scalar_stats,
    score_bin,
)
from edgecls.errors import ModelError

from .model import ModelInfo
from .results import Frame, FrameStats, Prediction

log = logging.getLogger("edgecls.device")

WINDOW_FRAMES = 900
SAMPLE_EVERY = 10
CHECK_EVERY = 30
#: PSI limits per statistic (see the module docstring for where they come from).
LIMITS: dict[str, float] = {
    "brightness": 1.6, "contrast": 0.9, "sharpness": 2.2,
    "colour_red": 0.5, "colour_green": 0.5, "colour_blue": 0.5,
    "score": 0.65, "class_mix": 1.5,
}
#: An alarm clears when its PSI falls under this share of the limit.
CLEAR_SHARE = 0.5


class DriftMonitor:
    """A sink. ``state()`` is the accessor for /status and MQTT, ``gauges()`` for /metrics,
    ``summary()`` for the stats line."""

    def __init__(self, model: ModelInfo, baseline: Baseline | None, *, window: int = WINDOW_FRAMES,
                 sample_every: int = SAMPLE_EVERY, check_every: int = CHECK_EVERY,
                 limits: dict[str, float] | None = None) -> None:
        self.baseline = baseline
        self.labels = model.labels
        self.limits = dict(LIMITS if limits is None else limits)
        self.sample_every, self.check_every = sample_every, check_every
        self.off_reason = ""
        if baseline is None:
            self.off_reason = f"{model.path.name} carries no drift baseline (convert it with this edgecls to get one)"
        elif tuple(baseline.labels) != tuple(model.labels):
            self.off_reason = f"the baseline's labels ({', '.join(baseline.labels)}) are not the model's"
            self.baseline = None
        samples = max(1, window // sample_every)
        self._scalars = np.zeros((samples, len(SCALARS)), np.float64)
        self._colour = np.zeros((samples, 3, COLOUR_BINS), np.int64)
        self._colour_sum = np.zeros((3, COLOUR_BINS), np.int64)
        self._labels = np.full(window, -1, np.int64)
        self._scores = np.full(window, -1, np.int64)
        self._frames = 0
        self._samples = 0
        self.psi: dict[str, float] = {}
        self.moved: dict[str, tuple[float, float]] = {}
        self.alarms: dict[str, float] = {}
        self.alarm_frames: dict[str, int] = {}
        self.checks = 0
        if self.baseline is not None:
            self._edges = {name: np.asarray(self.baseline.edges[name]) for name in SCALARS}

    @property
    def enabled(self) -> bool:
        return self.baseline is not None

    def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None:
        if self.baseline is None:
            return
        n = self._frames
        slot = n % len(self._labels)
        self._labels[slot] = prediction.index
        self._scores[slot] = score_bin(prediction.score)
        if n % self.sample_every == 0:
            s = self._samples % len(self._scalars)
            self._scalars[s] = scalar_stats(tensor)
            counts = colour_counts(tensor)
            self._colour_sum += counts - self._colour[s]
            self._colour[s] = counts
            self._samples += 1
        self._frames += 1
        if self._frames % self.check_every == 0 and self._frames >= len(self._labels):
            self.check(stats.frame)

    def check(self, frame: int = -1) -> dict[str, float]:
        """Compare the current window with the baseline; update and log the alarms."""
        assert self.baseline is not None
        b = self.baseline
        filled = min(self._samples, len(self._scalars))
        values = self._scalars[:filled]
        out: dict[str, float] = {}
        for i, name in enumerate(SCALARS):
            counts = np.bincount(np.searchsorted(self._edges[name], values[:, i], side="right"), minlength=QUANTILE_BINS)
            out[name] = psi(counts, b.expected[name])
            self.moved[name] = (b.mean[name], float(values[:, i].mean()) if filled else float("nan"))
        mids = (np.arange(COLOUR_BINS) + 0.5) * (256 / COLOUR_BINS)
        for c, name in enumerate(CHANNELS):
            out[name] = psi(self._colour_sum[c], b.expected[name])
            total = max(int(self._colour_sum[c].sum()), 1)
            self.moved[name] = (b.mean[name], float(np.dot(self._colour_sum[c], mids) / total))
        known = self._labels[self._labels >= 0]
        out["class_mix"] = psi(np.bincount(known, minlength=len(self.labels)), b.expected["class_mix"])
        out["score"] = psi(np.bincount(self._scores[self._scores >= 0], minlength=SCORE_BINS), b.expected["score"])
        self.moved["score"] = (b.mean.get("score", float("nan")), float("nan"))
        self.psi = out
        self.checks += 1
        for name, value in out.items():
            limit = self.limits.get(name, float("inf"))
            if name not in self.alarms and value > limit:
                self.alarms[name] = value
                self.alarm_frames[name] = frame
                log.warning("drift alarm: %s", self.describe(name))
            elif name in self.alarms and value < CLEAR_SHARE * limit:
                del self.alarms[name]
                log.info("drift cleared: %s back to PSI %.2f (limit %.2f)", name, value, limit)
            elif name in self.alarms:
                self.alarms[name] = value
        return out

    def describe(self, name: str) -> str:
        """One line: which statistic, its PSI against the limit, and how far its mean moved."""
        value, limit = self.psi.get(name, float("nan")), self.limits.get(name, float("inf"))
        text = f"{name} PSI {value:.2f} > {limit:.2f}"
        was, now = self.moved.get(name, (float("nan"), float("nan")))
        if np.isfinite(was) and np.isfinite(now):
            text += f" (mean {was:.1f} -> {now:.1f})"
        return text

    def state(self) -> dict[str, Any]:
        """The monitor's state as plain JSON values (the accessor for /status and MQTT)."""
        if self.baseline is None:
            return {"enabled": False, "reason": self.off_reason}
        return {
            "enabled": True, "window_frames": len(self._labels), "frames": self._frames, "checks": self.checks,
            "psi": {k: round(v, 4) for k, v in self.psi.items()}, "limits": self.limits,
            "alarms": [{"statistic": k, "psi": round(v, 4), "detail": self.describe(k)} for k, v in self.alarms.items()],
        }

    def gauges(self) -> list[tuple[str, str, dict[str, str], float]]:
        if self.baseline is None:
            return [("edgecls_drift_enabled", "1 when the model carries a drift baseline.", {}, 0.0)]
        out: list[tuple[str, str, dict[str, str], float]] = [
            ("edgecls_drift_enabled", "1 when the model carries a drift baseline.", {}, 1.0)]
        for name, value in self.psi.items():
            out.append(("edgecls_drift_psi", "PSI of each statistic's window against the baseline.", {"statistic": name}, value))
            out.append(("edgecls_drift_alarm", "1 while the statistic is in alarm.", {"statistic": name},
                        1.0 if name in self.alarms else 0.0))
        return out

    def summary(self) -> str:
        if self.baseline is None:
            return "drift off (no baseline)"
        if not self.psi:
            return "drift warming up"
        if not self.alarms:
            return "drift ok"
        return "DRIFT " + "; ".join(self.describe(k) for k in self.alarms)

    def close(self) -> None:
        if self.alarms:
            log.info("drift alarms at the end: %s", "; ".join(self.describe(k) for k in self.alarms))


def open_drift(model: ModelInfo) -> DriftMonitor:
    """The monitor for this model: on when its artifact carries a baseline, else off (said once)."""
    try:
        baseline = read_baseline(model.path)
    except ModelError as err:  # a broken baseline must not stop a device that classifies fine
        log.warning("drift monitor off: %s", err)
        return DriftMonitor(model, None)
    monitor = DriftMonitor(model, baseline)
    if not monitor.enabled:
        log.info("drift monitor off: %s", monitor.off_reason)
    return monitor
