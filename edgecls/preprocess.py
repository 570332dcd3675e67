"""The one preprocessing path: any image or camera frame -> the model's uint8 RGB input.

Training, evaluation, calibration, host parity and every device frame call
:func:`to_model_input`, so host and device cannot drift apart. Normalisation (1/255)
lives inside the model, not here: the model takes raw 0..255 RGB.

The resize is an exact area average in integers ("area-exact-v4"): each of the 64x64
output pixels is the area-weighted mean of the source pixels it covers, rounded half up.
It is a pure function of the pixels, so x86 and aarch64, the C kernel and the numpy twin
all give the same bytes, and it differs from OpenCV's float INTER_AREA only where
INTER_AREA rounds (mean absolute difference about 0.002).

- The C kernel (``edgecls/_area.c``, built at install when a C compiler is present and
  loaded with ctypes) does it in one pass over the frame in 16-bit vector lanes and swaps
  the colour channels as it writes: about 35 us for 640x480 on this machine, where
  OpenCV's INTER_AREA takes 0.5 ms at a 7.5x factor (and the previous pyramid of OpenCV
  calls, "area-pyramid-v3", 0.14 ms).
- Without the kernel (no compiler at install, or ``EDGECLS_NATIVE=0``) the numpy twin
  gives the same bytes, about a hundred times slower. ``edgecls doctor`` says which runs.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import math
import os
import threading
from typing import Literal

import cv2
import numpy as np

from edgecls.errors import DataError

ColourOrder = Literal["rgb", "bgr"]
COLOUR_ORDERS: tuple[str, ...] = ("rgb", "bgr")

#: The model input side in pixels (the article's 64x64x3).
INPUT_SIZE = 64
#: Recorded in every model spec; a device refuses a spec that names another method.
RESIZE_METHOD = "area-exact-v4"


class _Kernel:
    """The C kernel through ctypes, with one weight plan per frame geometry."""

    MAX_PLANS = 64  # geometries kept; beyond that a plan is made and freed per call

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        self._plan = lib.edgecls_area_plan
        self._plan.argtypes = [ctypes.c_int64] * 4
        self._plan.restype = ctypes.c_void_p
        self._free = lib.edgecls_area_plan_free
        self._free.argtypes = [ctypes.c_void_p]
        self._free.restype = None
        self._run = lib.edgecls_area_run
        self._run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int]
        self._run.restype = ctypes.c_int
        self._plans: dict[tuple[int, int, int, int], int] = {}
        self._lock = threading.Lock()

    def resize(self, image: np.ndarray, size: int, swap_rb: bool) -> np.ndarray | None:
        """``image`` has contiguous 3- or 4-byte pixels; None if the kernel refuses it."""
        h, w, pixel = image.shape
        key = (h, w, pixel, size)
        plan = self._plans.get(key)
        owned = False
        if plan is None:
            plan = self._plan(h, w, pixel, size)
            if not plan:
                return None
            with self._lock:
                if len(self._plans) < self.MAX_PLANS and key not in self._plans:
                    self._plans[key] = plan
                else:
                    owned = True
        out = np.empty((size, size, 3), np.uint8)
        try:
            rc = self._run(plan, _address(image), image.strides[0], _address(out), swap_rb)
        finally:
            if owned:
                self._free(plan)
        return out if rc == 0 else None


def _address(array: np.ndarray) -> int:
    """The address of an array's first byte: 0.2 us through the buffer protocol, where
    ``array.ctypes.data`` costs 0.8 (a frame's budget is tens of microseconds)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(array))  # type: ignore[arg-type]  # ndarray is a buffer
    except (TypeError, ValueError, BufferError):  # read-only or row-strided: the slow way
        return int(array.ctypes.data)


def _load_kernel() -> tuple[_Kernel | None, str]:
    if os.environ.get("EDGECLS_NATIVE", "1") == "0":
        return None, "numpy (EDGECLS_NATIVE=0)"
    spec = importlib.util.find_spec("edgecls._area")
    if spec is None or not spec.origin:
        return None, "numpy (the C kernel was not built: install edgecls where a C compiler is present)"
    try:
        return _Kernel(spec.origin), f"C kernel ({spec.origin})"
    except (OSError, AttributeError) as err:
        return None, f"numpy (cannot load the C kernel {spec.origin}: {err})"


_KERNEL, KERNEL_STATUS = _load_kernel()


@functools.lru_cache(maxsize=32)
def _axis_weights(n: int, size: int) -> np.ndarray:
    """size x n integer overlap weights (as float64), each row summing to n / gcd(n, size)."""
    i = np.arange(size)[:, None]
    k = np.arange(n)[None, :]
    overlap = np.minimum((i + 1) * n, (k + 1) * size) - np.maximum(i * n, k * size)
    return (np.maximum(overlap, 0) // math.gcd(n, size)).astype(np.float64)


def _area_exact_numpy(image: np.ndarray, size: int) -> np.ndarray:
    """The C kernel's twin: the same integers, by two matrix products.

    Every product and sum is an integer below 2**53, so float64 holds it exactly. Rows go
    in blocks of 256, so a 12-megapixel photo needs tens of megabytes, not hundreds.
    """
    h, w = image.shape[:2]
    wy, wx = _axis_weights(h, size), _axis_weights(w, size)
    rows = np.zeros((size, w * 3))
    for y in range(0, h, 256):
        rows += wy[:, y:y + 256] @ image[y:y + 256, :, :3].reshape(-1, w * 3).astype(np.float64)
    sums = np.matmul(wx, rows.reshape(size, w, 3)).astype(np.int64)
    div = (h // math.gcd(h, size)) * (w // math.gcd(w, size))
    return ((sums + div // 2) // div).astype(np.uint8)


def resize_area(image: np.ndarray, size: int = INPUT_SIZE, *, swap_rb: bool = False) -> np.ndarray:
    """Resize an HxWx3 or HxWx4 uint8 image to ``size`` x ``size`` x 3 by exact area averages.

    The aspect ratio is not kept (the article's ``target_size=(64, 64)`` squashes too);
    a fourth channel is ignored; ``swap_rb`` swaps the first and third channel (BGR <-> RGB).
    """
    if image.strides[2] != 1 or image.strides[1] != image.shape[2] or image.strides[0] < 1:
        image = np.ascontiguousarray(image)
    if _KERNEL is not None:
        out = _KERNEL.resize(image, size, swap_rb)
        if out is not None:
            return out
    out = _area_exact_numpy(image, size)
    return np.ascontiguousarray(out[:, :, ::-1]) if swap_rb else out


def to_model_input(
    image: np.ndarray, colour: ColourOrder, size: int = INPUT_SIZE
) -> np.ndarray:
    """Turn an image or camera frame into the model input: ``size`` x ``size`` x 3 uint8 RGB.

    ``image`` is uint8, HxW (grey), HxWx1, HxWx3 or HxWx4 (alpha is dropped); ``colour``
    is the channel order of a 3- or 4-channel image: "bgr" for OpenCV frames and
    decoded files, "rgb" for picamera2 and PIL. The colour swap happens as the resize
    writes its output, where it costs nothing.
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
    return resize_area(image, size, swap_rb=colour == "bgr")
