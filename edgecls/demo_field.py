"""Built-in "field" data: the demo shapes under a shift the training data never had.

The field-learning proof (tests/test_field_learning.py) and ``scripts/bench_field.py``
need frames with known truth that the trained model has not seen the like of:

- ``fence``: the scene seen through a fence of thick dark bars, a new background that
  covers part of every shape (a camera mounted behind a grille);
- ``gamma``, ``blur``, ``cast``: lighting, focus and white-balance shifts of the drift
  benchmark, applied to ordinary demo scenes.

Everything is deterministic for a seed, like :mod:`edgecls.demo_data`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgecls.demo_data import SHAPES, render
from edgecls.errors import DataError
from edgecls.fsutil import atomic_write_json

SHIFTS = ("none", "fence", "gamma", "blur", "cast")


def fence(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dark vertical bars, 1/9 of the width apart, each about a fifth of the gap wide."""
    _h, w = img.shape[:2]
    out = img.copy()
    gap = max(4, w // 9)
    bar = max(2, gap // 5)
    offset = int(rng.integers(0, gap))
    shade = int(rng.integers(10, 50))
    for x in range(offset, w, gap):
        out[:, x : x + bar] = (out[:, x : x + bar] * 0.2 + shade).astype(np.uint8)
    return out


def apply_shift(img: np.ndarray, shift: str, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """One BGR image under ``shift`` (``strength`` 1 is the benchmark's nominal size)."""
    if shift == "none":
        return img
    if shift == "fence":
        return fence(img, rng)
    if shift == "gamma":  # under-exposure: gamma 1 + 0.8 * strength (darker mid-tones)
        lut = (255.0 * (np.arange(256) / 255.0) ** (1.0 + 0.8 * strength)).round().astype(np.uint8)
        return cv2.LUT(img, lut)  # type: ignore[no-any-return]
    if shift == "blur":  # out of focus: sigma 3 * strength on a 640x480 frame
        return cv2.GaussianBlur(img, (0, 0), 3.0 * strength)  # type: ignore[no-any-return]
    if shift == "cast":  # white balance: blue up and red down by 40 * strength levels
        delta = np.array([40.0, 0.0, -40.0]) * strength
        return np.clip(img.astype(np.float32) + delta, 0, 255).astype(np.uint8)
    raise DataError(f"unknown shift {shift!r}: use one of {', '.join(SHIFTS)}")


def field_frames(count: int, classes: int, shift: str, seed: int,
                 size: tuple[int, int] = (240, 320)) -> tuple[list[np.ndarray], list[str]]:
    """``count`` BGR frames (h, w = ``size``), classes in rotation, each a fresh scene."""
    rng = np.random.default_rng([seed, 7])
    frames, truth = [], []
    for i in range(count):
        kind = SHAPES[i % classes]
        frames.append(apply_shift(render(kind, rng, size), shift, rng))
        truth.append(kind)
    return frames, truth


def write_field_folder(out: Path, count: int, classes: int, shift: str, seed: int,
                       *, by_class: bool = False, size: tuple[int, int] = (240, 320)) -> list[str]:
    """Write the frames as PNGs: in one folder in playback order (a recording ``edgecls run``
    reads, truth in ``truth.json`` beside them) or, with ``by_class``, one folder per class
    (a test set ``edgecls evaluate`` reads). Returns the truths in frame order."""
    out = Path(out)
    frames, truth = field_frames(count, classes, shift, seed, size)
    for i, (img, kind) in enumerate(zip(frames, truth, strict=True)):
        folder = out / kind if by_class else out
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:06d}.png"), img)
    if not by_class:
        atomic_write_json(out.with_name(out.name + ".truth.json"), {"shift": shift, "truth": truth})
    return truth
