"""PNG figures (training curves, confusion matrix). Host only: needs matplotlib."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from edgecls.errors import MissingDependencyError
from edgecls.fsutil import atomic_write_bytes


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise MissingDependencyError("matplotlib", "host", "plotting") from err
    return plt


def _save(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def training_curves(history: dict[str, list[float]], path: Path) -> None:
    """Training vs validation accuracy and loss per epoch, side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    epochs = range(1, len(history.get("loss", [])) + 1)
    for ax, key in zip(axes, ("accuracy", "loss"), strict=True):
        ax.plot(epochs, history.get(key, []), "o-", label=f"training {key}")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "s--", label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def confusion(matrix: list[list[int]], labels: list[str], path: Path, title: str = "confusion matrix") -> None:
    plt = _pyplot()
    k = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.2, 1.1 * k + 1.6))
    ax.imshow(matrix, cmap="Blues")
    peak = max(max(row) for row in matrix) or 1
    for i in range(k):
        for j in range(k):
            colour = "white" if matrix[i][j] > peak / 2 else "black"
            ax.text(j, i, str(matrix[i][j]), ha="center", va="center", color=colour)
    ax.set_xticks(range(k), labels, rotation=30, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    _save(fig, path)
