"""Classification metrics in plain numpy, shared by evaluate, parity and field replay."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassReport:
    """accuracy, per-class precision and recall, and the confusion matrix (rows = truth)."""

    labels: tuple[str, ...]
    accuracy: float
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    confusion: tuple[tuple[int, ...], ...]
    count: int

    def to_dict(self) -> dict[str, object]:
        return {
            "count": self.count,
            "accuracy": self.accuracy,
            "per_class": {
                label: {"precision": p, "recall": r, "support": int(sum(row))}
                for label, p, r, row in zip(self.labels, self.precision, self.recall, self.confusion, strict=True)
            },
            "labels": list(self.labels),
            "confusion": [list(row) for row in self.confusion],
        }


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def class_report(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...]) -> ClassReport:
    k = len(labels)
    cm = confusion_matrix(y_true, y_pred, k)
    diag = np.diag(cm).astype(np.float64)
    col = cm.sum(axis=0).astype(np.float64)
    row = cm.sum(axis=1).astype(np.float64)
    precision = np.divide(diag, col, out=np.zeros(k), where=col > 0)
    recall = np.divide(diag, row, out=np.zeros(k), where=row > 0)
    n = int(cm.sum())
    return ClassReport(
        labels=tuple(labels),
        accuracy=float(diag.sum() / n) if n else 0.0,
        precision=tuple(float(v) for v in precision),
        recall=tuple(float(v) for v in recall),
        confusion=tuple(tuple(int(v) for v in r) for r in cm),
        count=n,
    )


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Recall per class (the accuracy on that class's images); NaN where a class has none."""
    out = np.full(k, np.nan)
    for c in range(k):
        mask = y_true == c
        if mask.any():
            out[c] = float(np.mean(y_pred[mask] == c))
    return out
