"""The one label overlay: what the window and the browser preview draw on a frame."""

from __future__ import annotations

import cv2
import numpy as np

from .results import FrameStats, Prediction


def draw_label(image: np.ndarray, prediction: Prediction, stats: FrameStats) -> np.ndarray:
    """Draw label, score and fps on a BGR ``image`` in place (white on a black outline); return it."""
    text = f"{prediction.label} {prediction.score:.2f}  {stats.loop.fps:.1f} fps"
    cv2.putText(image, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(image, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return image
