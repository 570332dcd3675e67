"""The one preprocessing path: any image or camera frame -> the model's uint8 RGB input.

Training, evaluation, calibration, host parity and every device frame call
:func:`to_model_input`, so host and device cannot drift apart. Normalisation (1/255)
lives inside the model, not here: the model takes raw 0..255 RGB.

Why this resize and not ``cv2.INTER_AREA``:

- INTER_AREA at a non-integer factor (480/64 = 7.5) takes OpenCV's slow generic path
  (about 0.5-0.8 ms for 640x480 -> 64x64, ten times an int8 invoke) and its float
  arithmetic differs between x86 and aarch64 by +-1 in a few values, so a device could
  never reproduce the host's tensors bit for bit.
- Plain INTER_LINEAR at 10x skips most pixels and aliases.

So we halve both axes with exact 2x2 area averages (OpenCV's SIMD integer path) while the
smaller side stays at least twice the target, then INTER_LINEAR_EXACT to twice the target
(a step of at most 2.5x, after which content is smooth), then one more exact 2x2
average. Every source pixel contributes, so there is no aliasing, and every step is
bit-exact by design. Plain INTER_LINEAR is not: ``scripts/check-aarch64`` found it
differing by +-1 between x86 and aarch64 on most frames, although it is fixed point
too. An axis that stays over eight times the target after that (extreme aspect ratios
only) is halved on its own first: OpenCV's slow path, but exact.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from edgecls.errors import DataError

ColourOrder = Literal["rgb", "bgr"]
COLOUR_ORDERS: tuple[str, ...] = ("rgb", "bgr")

#: The model input side in pixels (the article's 64x64x3).
INPUT_SIZE = 64
#: Recorded in every model spec; a device refuses a spec that names another method.
RESIZE_METHOD = "area-pyramid-v3"


def resize_area(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Resize an HxWxC uint8 image to ``size`` x ``size`` with area quality, bit-exactly.

    The aspect ratio is not kept (the article's ``target_size=(64, 64)`` squashes too).
    """
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    # Both axes at once: exact 2x2 averages, the fast path. An odd row or column is
    # dropped first (a view, no copy): a 0.5 px shift at most.
    while min(h, w) >= 4 * size:
        image = image[: h - h % 2, : w - w % 2]
        image = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
    # Extreme aspect ratios only: halve the long axis alone until linear can finish it.
    while max(h, w) >= 8 * size:
        fx, fy = (2, 1) if w >= 8 * size else (1, 2)
        image = image[: h - h % fy, : w - w % fx]
        image = cv2.resize(image, (w // fx, h // fy), interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
    if (h, w) != (2 * size, 2 * size):
        image = cv2.resize(image, (2 * size, 2 * size), interpolation=cv2.INTER_LINEAR_EXACT)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def to_model_input(
    image: np.ndarray, colour: ColourOrder, size: int = INPUT_SIZE
) -> np.ndarray:
    """Turn an image or camera frame into the model input: ``size`` x ``size`` x 3 uint8 RGB.

    ``image`` is uint8, HxW (grey), HxWx1, HxWx3 or HxWx4 (alpha is dropped); ``colour``
    is the channel order of a 3- or 4-channel image: "bgr" for OpenCV frames and
    decoded files, "rgb" for picamera2 and PIL. Colour is converted after resizing,
    where it costs 12,288 values instead of a whole frame.
    """
    if image.dtype != np.uint8:
        raise DataError(f"expected a uint8 image, got dtype {image.dtype}: decode to 8-bit first")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        colour = "bgr"
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise DataError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {image.shape}")
    if colour not in COLOUR_ORDERS:
        raise DataError(f"unknown colour order {colour!r}: use one of {', '.join(COLOUR_ORDERS)}")
    if image.shape[2] == 4:
        image = image[:, :, :3]
    small = resize_area(np.ascontiguousarray(image), size)
    if colour == "bgr":
        small = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(small)
