"""Image files on disk: which files count, and decoding them the one way host and device share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edgecls.imageheader import HEAD_BYTES, image_size
from edgecls.preprocess import INPUT_SIZE, to_model_input

#: Extensions read as images (case-insensitive), by training, evaluation, field export and
#: the device's folder source alike. GIF gives its first frame.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
#: Images declaring more pixels than this are refused from their header, before decoding
#: (a 30000x30000 PNG of 151 KB costs 6 GB to decode). 64 MP holds any phone or camera photo
#: (48 MP is 8000x6000); the environment variable EDGECLS_MAX_IMAGE_PIXELS changes it.
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
MAX_IMAGE_PIXELS_ENV = "EDGECLS_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int:
    """The pixel limit in force: EDGECLS_MAX_IMAGE_PIXELS if set to a positive integer."""
    text = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    return DEFAULT_MAX_IMAGE_PIXELS


def extensions_text() -> str:
    return " ".join(sorted(IMAGE_EXTENSIONS))


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def iter_image_files(folder: Path, *, recursive: bool = False) -> Iterator[Path]:
    """The image files in ``folder``, in sorted order (deterministic everywhere).

    ``recursive`` also takes the images in its subfolders (not hidden ones), as Keras's
    ``image_dataset_from_directory`` does: a class folder sorted into ``cat/indoor`` and
    ``cat/outdoor`` is still all cats. Symlinked folders are not followed (no loops).
    """
    if not recursive:
        for path in sorted(folder.iterdir()):
            if is_image_file(path):
                yield path
        return
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(root) / name for name in files)
    for path in sorted(found, key=lambda p: p.relative_to(folder).parts):
        if is_image_file(path):
            yield path


def read_image(path: Path) -> np.ndarray | None:
    """Decode an image file to an HxWx3 uint8 BGR array, or None if it cannot be decoded.

    Grey, palette and RGBA files all come out as 3-channel BGR (alpha is dropped);
    GIF gives its first frame. ``imdecode`` on the bytes also handles non-ASCII paths.
    """
    return read_image_checked(path)[0]


def read_image_checked(path: Path) -> tuple[np.ndarray | None, str]:
    """:func:`read_image` plus why it failed ("" on success), for a one-line warning.

    The header is checked against :func:`max_image_pixels` before a byte is decoded.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
            size = image_size(head)
            limit = max_image_pixels()
            if size is not None and size[0] * size[1] > limit:
                return None, (f"{size[0]}x{size[1]} pixels is over the limit of {limit:,} "
                              f"(raise it with {MAX_IMAGE_PIXELS_ENV})")
            fh.seek(0)
            data = np.frombuffer(fh.read(), dtype=np.uint8)
    except OSError as err:
        return None, f"cannot read it ({err.strerror})"
    if data.size == 0:
        return None, "empty file"
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.ndim != 3 or image.shape[2] != 3:
        return None, "not an image OpenCV can decode"
    return image, ""


def load_model_input(path: Path, size: int = INPUT_SIZE) -> np.ndarray | None:
    """Read an image file and prepare it exactly as a device frame: size x size x 3 uint8 RGB."""
    image = read_image(path)
    if image is None:
        return None
    return to_model_input(image, "bgr", size)
