"""Image files on disk: which files count, and decoding them the one way host and device share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edgecls.preprocess import INPUT_SIZE, to_model_input

#: Extensions read as images (case-insensitive). GIF gives its first frame.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def iter_image_files(folder: Path) -> Iterator[Path]:
    """The image files directly in ``folder``, in sorted order (deterministic everywhere)."""
    for path in sorted(folder.iterdir()):
        if is_image_file(path):
            yield path


def read_image(path: Path) -> np.ndarray | None:
    """Decode an image file to an HxWx3 uint8 BGR array, or None if it cannot be decoded.

    Grey, palette and RGBA files all come out as 3-channel BGR (alpha is dropped);
    GIF gives its first frame. ``imdecode`` on the bytes also handles non-ASCII paths.
    """
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or image.shape[2] != 3:
        return None
    return image


def load_model_input(path: Path, size: int = INPUT_SIZE) -> np.ndarray | None:
    """Read an image file and prepare it exactly as a device frame: size x size x 3 uint8 RGB."""
    image = read_image(path)
    if image is None:
        return None
    return to_model_input(image, "bgr", size)
