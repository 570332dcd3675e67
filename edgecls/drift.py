"""Input and output statistics for drift monitoring, shared by conversion and the device.

The artifact carries a baseline (``baseline.json``, an associated file beside
``labels.txt``): per-image statistics of the training data and the model's outputs on
the validation data, each as a histogram. The device computes the same statistics over
a sliding window and compares the two with the Population Stability Index

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

(a: window proportions, e: baseline proportions), the usual score-monitoring distance:
symmetric, additive over bins, 0 for identical histograms. Every statistic is computed
on the 64x64 model input, never the full frame, so one costs tens of microseconds.

Statistics (one value per image unless said otherwise):

- brightness: mean luma; contrast: standard deviation of luma;
- sharpness: mean absolute 4-neighbour Laplacian of luma (blur lowers it);
- colour_red/green/blue: pooled pixel histogram of each channel (16 bins);
- class_mix: share of each predicted label; score: histogram of the top-1 score.

Scalar statistics are binned at the training data's quintiles, so the baseline is five
equal bins and a shift in either direction moves mass between them. Only numpy here:
the device reads the baseline without TensorFlow.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecls.errors import ModelError

EMBEDDED_BASELINE = "baseline.json"
BASELINE_FORMAT = "edgecls-drift-baseline"
BASELINE_VERSION = 1
#: Bounded: a hostile artifact must not make the device parse megabytes of JSON.
MAX_BASELINE_BYTES = 256 * 1024
SCALARS = ("brightness", "contrast", "sharpness")
CHANNELS = ("colour_red", "colour_green", "colour_blue")
COLOUR_BINS = 16
SCORE_BINS = 10
#: Scalar statistics are binned at the training data's quintiles: a window holds a few dozen
#: distinct scenes, too few to fill ten bins by chance alone.
QUANTILE_BINS = 5
#: Proportions are floored here before the logarithm: an empty bin in a window of a few
#: hundred frames is chance, not infinite drift.
EPS = 1e-3
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def scalar_stats(tensor: np.ndarray) -> tuple[float, float, float]:
    """(brightness, contrast, sharpness) of one HxWx3 uint8 RGB model input."""
    y = tensor.astype(np.float32) @ LUMA
    mean = float(y.mean())
    std = float(np.sqrt(max(float(np.mean(y * y)) - mean * mean, 0.0)))  # one pass less than y.std()
    lap = np.abs(4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:])
    return mean, std, float(lap.mean())


def colour_counts(tensor: np.ndarray) -> np.ndarray:
    """3 x COLOUR_BINS pixel counts, one row per RGB channel, of every 4th pixel in each
    direction: a sixteenth of the work, and a window still pools 20,000 pixels a channel."""
    shift = 8 - int(np.log2(COLOUR_BINS))
    flat = (tensor[::4, ::4].reshape(-1, 3) >> shift).astype(np.intp) + np.arange(3) * COLOUR_BINS
    return np.bincount(flat.ravel(), minlength=3 * COLOUR_BINS).reshape(3, COLOUR_BINS)


def score_bin(score: float) -> int:
    return min(int(score * SCORE_BINS), SCORE_BINS - 1)


def psi(actual: np.ndarray | tuple[float, ...], expected: np.ndarray | tuple[float, ...]) -> float:
    """Population Stability Index of two histograms (counts or proportions)."""
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    a = np.maximum(a / max(a.sum(), 1e-12), EPS)
    e = np.maximum(e / max(e.sum(), 1e-12), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class Baseline:
    """edges[name]: inner bin edges of a scalar statistic (4 for quintiles); expected[name]:
    its baseline proportions (scalars, colour channels, score, class_mix); mean[name]: its
    baseline mean, so an alarm can say how far it moved; labels: the model's labels."""

    labels: tuple[str, ...]
    edges: dict[str, tuple[float, ...]]
    expected: dict[str, tuple[float, ...]]
    mean: dict[str, float]
    counts: dict[str, int]

    def to_json(self) -> str:
        return json.dumps({"format": BASELINE_FORMAT, "version": BASELINE_VERSION, "labels": list(self.labels),
                           "edges": {k: list(v) for k, v in self.edges.items()},
                           "expected": {k: list(v) for k, v in self.expected.items()},
                           "mean": self.mean, "counts": self.counts}, indent=1)

    @classmethod
    def from_json(cls, text: str, where: str) -> Baseline:
        try:
            raw = json.loads(text)
            if raw.get("format") != BASELINE_FORMAT or raw.get("version") != BASELINE_VERSION:
                raise ValueError(f"format {raw.get('format')!r} version {raw.get('version')!r}")
            labels = tuple(str(x) for x in raw["labels"])
            edges = {str(k): tuple(float(x) for x in v) for k, v in raw["edges"].items()}
            expected = {str(k): tuple(float(x) for x in v) for k, v in raw["expected"].items()}
            mean = {str(k): float(v) for k, v in raw["mean"].items()}
            counts = {str(k): int(v) for k, v in raw["counts"].items()}
            for name in SCALARS:
                if len(edges[name]) != QUANTILE_BINS - 1 or len(expected[name]) != QUANTILE_BINS:
                    raise ValueError(f"{name} has {len(edges[name])} edges")
            for name in CHANNELS:
                if len(expected[name]) != COLOUR_BINS:
                    raise ValueError(f"{name} has {len(expected[name])} bins")
            if len(expected["score"]) != SCORE_BINS or len(expected["class_mix"]) != len(labels):
                raise ValueError("score or class_mix has the wrong number of bins")
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ModelError(f"{where} is not a usable drift baseline ({err}): re-convert the model with 'edgecls convert'") from err
        return cls(labels, edges, expected, mean, counts)


def build_baseline(train: np.ndarray, labels: tuple[str, ...], predicted: np.ndarray, scores: np.ndarray) -> Baseline:
    """The baseline from training inputs (N x S x S x 3 uint8) and the deployed model's
    predicted class indices and top-1 scores on the validation data."""
    if len(train) == 0 or len(predicted) == 0:
        raise ValueError("a baseline needs training images and validation predictions")
    values = np.array([scalar_stats(t) for t in train], np.float64)
    edges: dict[str, tuple[float, ...]] = {}
    expected: dict[str, tuple[float, ...]] = {}
    mean: dict[str, float] = {}
    for i, name in enumerate(SCALARS):
        inner = np.quantile(values[:, i], np.arange(1, QUANTILE_BINS) / QUANTILE_BINS)
        edges[name] = tuple(float(x) for x in inner)
        counts = np.bincount(np.searchsorted(inner, values[:, i], side="right"), minlength=QUANTILE_BINS)
        expected[name] = tuple(float(x) for x in counts / counts.sum())
        mean[name] = float(values[:, i].mean())
    colour = sum((colour_counts(t) for t in train), np.zeros((3, COLOUR_BINS), np.int64))
    for c, name in enumerate(CHANNELS):
        expected[name] = tuple(float(x) for x in colour[c] / colour[c].sum())
        mean[name] = float(np.dot(colour[c] / colour[c].sum(), (np.arange(COLOUR_BINS) + 0.5) * (256 / COLOUR_BINS)))
    mix = np.bincount(predicted, minlength=len(labels)).astype(np.float64)
    expected["class_mix"] = tuple(float(x) for x in mix / mix.sum())
    hist = np.bincount([score_bin(float(s)) for s in scores], minlength=SCORE_BINS).astype(np.float64)
    expected["score"] = tuple(float(x) for x in hist / hist.sum())
    mean["score"] = float(np.mean(scores))
    return Baseline(tuple(labels), edges, expected, mean, {"train": len(train), "validation": len(predicted)})


def read_baseline(path: Path) -> Baseline | None:
    """The baseline embedded in a .tflite, or None when it carries none (or is no zip)."""
    try:
        with zipfile.ZipFile(path) as zf:
            if EMBEDDED_BASELINE not in zf.namelist():
                return None
            info = zf.getinfo(EMBEDDED_BASELINE)
            if info.file_size > MAX_BASELINE_BYTES:
                raise ModelError(f"{path}:{EMBEDDED_BASELINE} is {info.file_size} bytes (limit {MAX_BASELINE_BYTES}): re-convert the model")
            text = zf.read(EMBEDDED_BASELINE).decode("utf-8", errors="replace")
    except zipfile.BadZipFile:
        return None
    except OSError as err:
        raise ModelError(f"cannot read {path}: {err.strerror}") from err
    return Baseline.from_json(text, f"{path}:{EMBEDDED_BASELINE}")

