"""Model outputs -> class probabilities, the same way for Keras, TFLite and the device."""

from __future__ import annotations

import numpy as np


def probabilities(output: np.ndarray, head: str) -> np.ndarray:
    """Turn raw (dequantized) model outputs into per-class probabilities.

    ``output`` is (N, K) or (K,). A sigmoid head with K = 1 (the probability of class 1)
    becomes [1 - p, p]; a converted sigmoid head already gives [1 - p, p] (K = 2, so that
    standard clients find one score per label) and, like a softmax head, is returned as is.
    """
    out = np.asarray(output, dtype=np.float64)
    single = out.ndim == 1
    if single:
        out = out[None, :]
    if head == "sigmoid" and out.shape[1] == 1:
        p = np.clip(out[:, :1], 0.0, 1.0)
        out = np.concatenate([1.0 - p, p], axis=1)
    return out[0] if single else out


def top1(probs: np.ndarray) -> np.ndarray:
    """Index of the most probable class per row (ties go to the lower index)."""
    return np.argmax(np.asarray(probs), axis=-1)
