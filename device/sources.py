"""Frame sources behind one small protocol, and the registry that names them.

A source opens in its constructor (raising :class:`SourceError` with a remedy), then
``read()`` returns one HxWxC uint8 image or None (end of a file, or a failed read on a
live source). Each source declares its colour order once: "bgr" for everything OpenCV
decodes, "rgb" for picamera2; nothing downstream converts colour except
:func:`edgecls.preprocess.to_model_input`.

    SOURCES = {"camera", "file", "folder", "url", "gstreamer", "picamera2"}

Live sources (cameras, streams) are wrapped by :class:`.reader.LatestFrameReader`; files
and folders are read in full, every frame, in order.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edgecls.errors import DataError, SourceError
from edgecls.images import extensions_text, iter_image_files, read_image_checked
from edgecls.preprocess import ColourOrder
from edgecls.redact import mask_secrets

from .options import DEFAULT_CAPTURE_SIZE

log = logging.getLogger("edgecls.device")

URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://", "srt://")


class FrameSource(Protocol):
    description: str
    colour: ColourOrder
    live: bool

    def read(self) -> np.ndarray | None:
        """The next image, or None at the end (file) or on a failed read (live)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SourceSpec:
    """kind: a key of SOURCES. target: what to open (index, path, URL, pipeline)."""

    kind: str
    target: str

    def __str__(self) -> str:
        """The target with any credentials masked: this is what messages and logs show."""
        return mask_secrets(self.target) if self.kind != "picamera2" else "picamera2"


@dataclass(frozen=True)
class SourceOptions:
    """width/height: requested capture size for cameras (the camera may pick the nearest).
    open_timeout_s / read_timeout_s: give up on a stream that does not answer."""

    width: int = DEFAULT_CAPTURE_SIZE[0]
    height: int = DEFAULT_CAPTURE_SIZE[1]
    open_timeout_s: float = 3.0
    read_timeout_s: float = 1.5
    #: FFmpeg threads decoding a video file or stream (``--decode-threads``; 0: FFmpeg picks,
    #: one per core). One by default: FFmpeg's own default (one thread per core, frame
    #: threading) suits a video player, not this loop. The frame is already decoded on the
    #: reader's own thread while the interpreter works on the previous one, so more decode
    #: threads compete with the interpreter, the MQTT publisher and the preview server for
    #: the same cores, each frame crosses two more threads, and on a live stream frame
    #: threading holds back a frame per extra thread. For the small frames a classifier reads
    #: one thread is also the faster decoder (BENCHMARKS.md, session 13: 320x240 MJPEG alone
    #: 1.32x FFmpeg's choice on two idle cores).
    decode_threads: int = 1


#: The most FFmpeg decode threads --decode-threads accepts (0: FFmpeg picks).
MAX_DECODE_THREADS = 16


def check_decode_threads(value: int) -> None:
    """--decode-threads is 0 (FFmpeg picks) to MAX_DECODE_THREADS."""
    if not 0 <= value <= MAX_DECODE_THREADS:
        raise DataError(f"--decode-threads must be from 0 (FFmpeg picks, one per core) to {MAX_DECODE_THREADS}, "
                        f"got {value}")


#: The smallest and largest capture side --capture-size accepts.
CAPTURE_SIDE_RANGE = (16, 8192)


def parse_capture_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> (320, 240): the frame size asked of a camera or picamera2."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    lo, hi = CAPTURE_SIDE_RANGE
    if not m or not all(lo <= int(v) <= hi for v in m.groups()):
        raise DataError(f"--capture-size must be WIDTHxHEIGHT with sides from {lo} to {hi}, e.g. 320x240; got {text!r}")
    return int(m.group(1)), int(m.group(2))


def quiet_opencv() -> None:
    """Keep OpenCV's and FFmpeg's own warnings ("Connection refused", "[ WARN:...]") off
    stderr: every source failure becomes one SourceError or one reader log line instead.
    FFmpeg reads OPENCV_FFMPEG_LOGLEVEL when OpenCV first uses it; -8 is AV_LOG_QUIET."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    with contextlib.suppress(AttributeError, cv2.error):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


# At import, before anything in this process makes OpenCV start FFmpeg (which reads the
# log level once), and again before each open for processes that imported cv2 first.
quiet_opencv()


def parse_source(text: str) -> SourceSpec:
    """Tell the kind of source from what the user typed (camera index, path, URL, ...)."""
    text = str(text).strip()
    if not text:
        raise SourceError("empty --source: give a camera index, /dev/videoN, a video file, a folder, a URL or 'picamera2'")
    if text.lower() == "picamera2":
        return SourceSpec("picamera2", "picamera2")
    path = Path(text)
    # What exists on disk is what the user meant: a folder named "5" is a folder, and a
    # file name containing "!" is a file, not a camera index or a GStreamer pipeline.
    if path.is_dir() and not text.lower().startswith(URL_SCHEMES):
        return SourceSpec("folder", text)
    if path.is_file():
        return SourceSpec("file", text)
    if text.isdigit():
        return SourceSpec("camera", text)
    if text.lower().startswith(URL_SCHEMES):
        return SourceSpec("url", text)
    if "!" in text:
        return SourceSpec("gstreamer", text)
    if re.fullmatch(r"/dev/video\d+", text):
        return SourceSpec("camera", text)
    raise SourceError(f"source {mask_secrets(text)!r} does not exist; {cameras_sentence()}")


def opencv_has_gstreamer() -> bool:
    """Whether this OpenCV build can open GStreamer pipelines (its build information says so)."""
    return "GStreamer:                   YES" in cv2.getBuildInformation()


def list_cameras() -> list[str]:
    """V4L2 capture nodes present (Linux); the Pi CSI camera appears only through picamera2."""
    nodes = sorted(glob.glob("/dev/video[0-9]*"), key=lambda p: int(re.sub(r"\D", "", p) or 0))
    found = []
    for node in nodes:
        name = Path(f"/sys/class/video4linux/{Path(node).name}/name")
        try:
            label = name.read_text().strip()
        except OSError:
            label = ""
        found.append(f"{node} ({label})" if label else node)
    return found


def cameras_sentence() -> str:
    cams = list_cameras()
    found = f"cameras found: {', '.join(cams)}" if cams else "no cameras found (no /dev/video* devices)"
    return found + "; the Pi CSI camera is --source picamera2"


class OpenCVSource:
    """cv2.VideoCapture on a camera, video file, stream URL or GStreamer pipeline (BGR)."""

    colour: ColourOrder = "bgr"

    def __init__(self, spec: SourceSpec, options: SourceOptions) -> None:
        self.description = f"{spec.kind} {spec}"
        self.live = spec.kind != "file"
        self.spec = spec
        self._first: np.ndarray | None = None
        cap = self._open(spec, options)
        if not cap.isOpened():
            cap.release()
            raise SourceError(self._why_not(spec))
        if spec.kind == "camera":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, options.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, options.height)
            got = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            if got != (options.width, options.height):
                log.info("camera %s delivers %dx%d (asked for %dx%d): it has no such mode",
                         spec.target, *got, options.width, options.height)
        self.cap = cap
        if spec.kind == "file":
            ok, first = cap.read()
            if not ok or first is None:
                cap.release()
                raise SourceError(f"video {spec.target} opened but has no frames OpenCV can decode: check the file")
            self._first = first

    @staticmethod
    def _open(spec: SourceSpec, options: SourceOptions) -> Any:
        quiet_opencv()
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(options.open_timeout_s * 1000),
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(options.read_timeout_s * 1000)]
        if spec.kind == "camera":
            target: int | str = int(spec.target) if spec.target.isdigit() else spec.target
            api = cv2.CAP_V4L2 if os.name == "posix" and hasattr(cv2, "CAP_V4L2") else cv2.CAP_ANY
            return cv2.VideoCapture(target, api)
        if spec.kind == "gstreamer":
            if not opencv_has_gstreamer():
                raise SourceError(
                    "this OpenCV was built without GStreamer, so it cannot open a pipeline: use Debian's "
                    "python3-opencv (apt) in a venv made with --system-site-packages, or pass a URL or device instead"
                )
            return cv2.VideoCapture(spec.target, cv2.CAP_GSTREAMER)
        # 0 is FFmpeg's own choice, which is also what leaving the parameter out gives.
        threads = options.decode_threads
        thread_param = [cv2.CAP_PROP_N_THREADS, threads] if threads and hasattr(cv2, "CAP_PROP_N_THREADS") else []
        if spec.kind == "url":
            if spec.target.lower().startswith(("rtsp://", "rtsps://")):
                # RTSP over UDP smears frames on Wi-Fi when packets drop; TCP retransmits.
                os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
            return cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, timeouts + thread_param)
        if thread_param:
            # The thread count is an FFmpeg parameter, and OpenCV's other backends refuse a
            # parameter they do not know; a file FFmpeg cannot open gets them all, as before.
            cap = cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, thread_param)
            if cap.isOpened():
                return cap
            cap.release()
        return cv2.VideoCapture(spec.target, cv2.CAP_ANY)

    @staticmethod
    def _why_not(spec: SourceSpec) -> str:
        if spec.kind == "camera":
            return f"cannot open camera {spec.target}; {cameras_sentence()}"
        if spec.kind == "url":
            return f"cannot open stream {spec}: nothing answered or it is not a video stream; check the URL and that the camera is on"
        if spec.kind == "gstreamer":
            return f"cannot open GStreamer pipeline {str(spec)!r}: test it with gst-launch-1.0 first"
        return f"cannot open video {spec.target}: not a video file OpenCV can decode"

    def read(self) -> np.ndarray | None:
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        ok, frame = self.cap.read()
        return frame if ok and frame is not None else None

    @property
    def fps(self) -> float:
        """The recorded frame rate of a video file (0 when the container does not say)."""
        value = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return value if 0.0 < value < 1000.0 else 0.0

    def close(self) -> None:
        self.cap.release()


class FolderSource:
    """Every image in a folder, in name order, decoded by :func:`edgecls.images.read_image_checked`
    (the reader training uses, with its pixel limit). An unreadable or oversized file gets one
    warning and is counted in ``skipped``; ``index`` stays its position in the folder, so the
    files after it keep their indexes, and ``name`` says which file each frame came from."""

    colour: ColourOrder = "bgr"
    live = False

    def __init__(self, spec: SourceSpec, options: SourceOptions) -> None:
        folder = Path(spec.target)
        self.description = f"folder {folder}"
        self.files = list(iter_image_files(folder))
        if not self.files:
            raise SourceError(f"folder {folder} has no images ({extensions_text()}): point --source at a folder of images")
        self.skipped: list[Path] = []
        self._next = 0
        #: Position in ``files`` and file name of the image :meth:`read` returned last.
        self.index = -1
        self.name: str | None = None

    def read(self) -> np.ndarray | None:
        while self._next < len(self.files):
            path = self.files[self._next]
            self._next += 1
            image, why = read_image_checked(path)
            if image is not None:
                self.index, self.name = self._next - 1, path.name
                return image
            self.skipped.append(path)
            log.warning("skipped %s: %s (%d skipped so far)", path, why, len(self.skipped))
        return None

    def close(self) -> None:
        self._next = len(self.files)


class Picamera2Source:
    """The Pi CSI camera on the libcamera stack, which OpenCV's V4L2 backend cannot open.

    libcamera names formats by their 32-bit word: "BGR888" is stored R, G, B in memory,
    so this source declares "rgb" (and "RGB888" would be BGR bytes).
    """

    colour: ColourOrder = "rgb"
    live = True

    def __init__(self, spec: SourceSpec, options: SourceOptions) -> None:
        self.description = "picamera2"
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError as err:
            raise SourceError(
                "picamera2 is not importable: on Pi OS Bookworm run 'sudo apt install python3-picamera2' and make "
                "the venv with 'python3 -m venv --system-site-packages' (see device/deploy/INSTALL.md)"
            ) from err
        try:
            self.camera = Picamera2()
            config = self.camera.create_video_configuration(
                main={"size": (options.width, options.height), "format": "BGR888"}, buffer_count=2
            )
            self.camera.configure(config)
            self.camera.start()
        except Exception as err:  # libcamera raises RuntimeError, IndexError (no camera), ...
            raise SourceError(f"picamera2 found no usable camera ({type(err).__name__}: {err}): check the ribbon cable and 'rpicam-hello --list-cameras'") from err

    def read(self) -> np.ndarray | None:
        try:
            return self.camera.capture_array("main")
        except Exception:  # a libcamera failure is a failed read; the reader reopens
            return None

    def close(self) -> None:
        try:
            self.camera.stop()
            self.camera.close()
        except Exception:
            pass


SourceFactory = Callable[[SourceSpec, SourceOptions], FrameSource]

#: Sources by kind. A new kind adds one entry (and a rule in :func:`parse_source`).
SOURCES: dict[str, SourceFactory] = {
    "camera": OpenCVSource,
    "file": OpenCVSource,
    "url": OpenCVSource,
    "gstreamer": OpenCVSource,
    "folder": FolderSource,
    "picamera2": Picamera2Source,
}


def open_source(spec: SourceSpec, options: SourceOptions | None = None) -> FrameSource:
    return SOURCES[spec.kind](spec, options or SourceOptions())
