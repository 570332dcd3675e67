"""``edgecls doctor``: what this device has, what it lacks, and the command that fixes it.

Each check is independent and never raises: a missing interpreter, Edge TPU library,
camera or picamera2 is a line in the report. Required checks (an interpreter, the given
model) decide the exit code; the rest are optional hardware.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgecls.errors import EdgeclsError

from .options import EDGETPU_DEVICE

if TYPE_CHECKING:
    from edgecls.tensorio import TensorInfo

    from .model import ModelInfo

PICAMERA2_FIX = ("sudo apt install python3-picamera2, and make the venv with "
                 "'python3 -m venv --system-site-packages' so it is importable")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = False


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.required)


def _board() -> str:
    try:
        return Path("/proc/device-tree/model").read_text().strip("\x00\n ")
    except OSError:
        return f"{platform.system()} {platform.machine()} (not a Raspberry Pi)"


def check_runtime() -> Check:
    from edgecls.litert import runtime

    try:
        rt = runtime()
    except EdgeclsError as err:
        return Check("interpreter", False, str(err), 'pip install "edgecls[device]" (or "edgecls[legacy]" for tflite-runtime)', True)
    return Check("interpreter", True, f"{rt.name} {rt.version}", required=True)


def check_edgetpu(device: str) -> Check:
    from .backends import EDGETPU_REMEDY, load_edgetpu_delegate

    try:
        load_edgetpu_delegate(device)
    except EdgeclsError as err:
        reason = str(err).split(" is not available ")[-1].split(":")[0] if " is not available " in str(err) else str(err)
        return Check("Edge TPU", False, f"no delegate for {device} {reason} (optional: the CPU runs the model)", EDGETPU_REMEDY)
    return Check("Edge TPU", True, f"libedgetpu delegate loaded for {device}")


def check_cameras() -> Check:
    from .sources import list_cameras

    cams = list_cameras()
    if cams:
        return Check("cameras", True, ", ".join(cams))
    return Check("cameras", False, "no /dev/video* devices (optional: streams, files and picamera2 still work)",
                 "plug in a USB camera, or use --source picamera2 for the CSI camera")


#: What an extension built against numpy 1.x says when numpy 2 is loaded (ImportError or
#: AttributeError, depending on how it imports numpy's C API).
NUMPY_ABI_SIGNS = ("numpy.core.multiarray failed to import", "_ARRAY_API not found",
                   "compiled using NumPy 1.x", "numpy.dtype size changed")


def numpy_abi_clash(err: BaseException) -> Check | None:
    """picamera2 and simplejpeg from apt are built against Pi OS's numpy; a numpy 2 in the
    venv that shadows it breaks them. Name that, not just 'not importable'."""
    if not any(sign in str(err) for sign in NUMPY_ABI_SIGNS):
        return None
    import numpy

    return Check("picamera2", False,
                 f"cannot import: apt's picamera2 is built against Pi OS's numpy, but this venv loads numpy "
                 f"{numpy.__version__} from {Path(numpy.__file__).parent} (a numpy ABI clash: {err})",
                 'pip install "numpy<2" into this venv (the device extra pins it on Pi OS Bookworm), '
                 "or pip uninstall numpy so apt's numpy loads")


def check_picamera2() -> Check:
    try:
        import picamera2  # type: ignore[import-not-found]
    except (ImportError, AttributeError, ValueError) as err:
        clash = numpy_abi_clash(err)
        if clash is not None:
            return clash
        if not isinstance(err, ImportError):
            return Check("picamera2", False, f"cannot import: {type(err).__name__}: {err}", PICAMERA2_FIX)
        return Check("picamera2", False, "not importable (optional: needed only for the CSI camera)", PICAMERA2_FIX)
    return Check("picamera2", True, f"importable from {Path(picamera2.__file__).parent}")


def check_opencv() -> Check:
    import cv2

    from .sources import opencv_has_gstreamer

    gst = opencv_has_gstreamer()
    return Check("OpenCV", True, f"{cv2.__version__}, GStreamer {'yes' if gst else 'no (pipelines need python3-opencv from apt)'}")


RESIZE_FIX = ("install edgecls from its wheel for this platform (x86-64/aarch64 Linux, macOS), or "
              "sudo apt install gcc, then reinstall edgecls from its checkout: pip install --force-reinstall --no-deps .")


def check_resize() -> Check:
    from edgecls.preprocess import KERNEL_STATUS

    if KERNEL_STATUS.startswith("C kernel"):
        return Check("resize", True, KERNEL_STATUS)
    return Check("resize", False, f"{KERNEL_STATUS}: the same bytes, about 100x slower a frame (optional)", RESIZE_FIX)


def resize_warning() -> str | None:
    """The one line ``run`` and ``bench`` print first when frames go through the numpy twin:
    nobody runs ``doctor`` before noticing that the device is slow."""
    from edgecls.preprocess import KERNEL_STATUS

    if KERNEL_STATUS.startswith("C kernel"):
        return None
    return (f"warning: resizing with the numpy twin, about 100x slower a frame than the C kernel "
            f"({KERNEL_STATUS.removeprefix('numpy ').strip('()')}); fix: {RESIZE_FIX}")


def check_normalization(info: ModelInfo, input: TensorInfo) -> Check:
    """The normalisation in force: a foreign model fed raw pixels without a word is the
    quiet failure (right shapes, wrong answers) this line exists for."""
    from .model import normalization_warning

    norm = info.normalization
    detail = f"input = (pixel - {norm.mean:g}) / {norm.std:g}, from {norm.source}"
    warning = normalization_warning(info, input)
    if warning:
        return Check("normalisation", False, detail, "pass --input-mean and --input-std to run/bench if it was trained on "
                     "another range (for [-1, 1]: --input-mean 127.5 --input-std 127.5)")
    return Check("normalisation", True, detail)


def check_model(model: Path, edgetpu: bool = False, checks: list[Check] | None = None) -> Check:
    """The model check; with ``checks``, the normalisation line is added there too."""
    from .loop import open_classifier
    from .options import RunOptions

    try:
        info, backend, _ = open_classifier(RunOptions(model=model, edgetpu=edgetpu))
    except EdgeclsError as err:
        return Check("model", False, str(err), required=True)
    if checks is not None:
        checks.append(check_normalization(info, backend.input))
    parts = backend.delegated_partitions() if hasattr(backend, "delegated_partitions") else -1
    delegate = f"{parts} delegated partition{'s' if parts != 1 else ''}" if parts >= 0 else "delegation unknown"
    backend.close()
    return Check("model", True, f"{model.name}: {len(info.labels)} labels ({info.head} head), "
                 f"input {'x'.join(map(str, backend.input.shape))} {backend.input.dtype}, {delegate}",
                 "" if parts else "the CPU runs reference kernels: convert with static batch and full int8",
                 required=True)


def diagnose(model: Path | None = None, device: str = EDGETPU_DEVICE) -> DoctorReport:
    checks = [
        Check("board", True, f"{_board()}, Python {sys.version.split()[0]}"),
        check_runtime(),
        check_opencv(),
        check_resize(),
        check_edgetpu(device),
        check_cameras(),
        check_picamera2(),
    ]
    if model is not None and checks[1].ok:
        extra: list[Check] = []
        checks.append(check_model(model, checks=extra))
        checks.extend(extra)
    return DoctorReport(tuple(checks))
