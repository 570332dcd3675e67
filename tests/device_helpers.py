"""Real parts for the device tests: videos written by OpenCV, small models converted by
TensorFlow (host side, fixtures only), and an MJPEG stream served by ffmpeg on loopback."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

import cv2
import numpy as np
import pytest

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(
    FFMPEG is None, reason="ffmpeg is not installed (scripts/test installs it as root with apt-get: apt-get install -y ffmpeg)"
)


def camera_like_frames(kinds: list[str], per_kind: int, seed: int = 0, size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """640x480 BGR frames of built-in shapes (upscaled as a camera would see them), kind by kind."""
    from edgecls.demo_data import render

    rng = np.random.default_rng(seed)
    return [cv2.resize(render(kind, rng), size, interpolation=cv2.INTER_LINEAR) for kind in kinds for _ in range(per_kind)]


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    """An MJPG .avi written by cv2.VideoWriter, like a camera recording."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def convert_keras(model: object, path: Path, *, quant: str = "float32", seed: int = 0) -> Path:
    """Convert a Keras model to a plain .tflite (no metadata): float32, or int8 with uint8/int8 I/O,
    with edgecls's own conversion recipe calibrated on random pixels."""
    from edgecls.convert.export import tflite_bytes

    samples = None
    if quant != "float32":
        shape = tuple(int(x) for x in model.inputs[0].shape[1:])  # type: ignore[attr-defined]
        samples = np.random.default_rng(seed).integers(0, 256, (16, *shape)).astype(np.uint8)
    mode = "float32" if quant == "float32" else "int8"
    path.write_bytes(tflite_bytes(model, mode, "uint8" if quant == "int8-uint8io" else "int8", samples))
    return path


def plain_models(out: Path) -> dict[str, Path]:
    """Small plain .tflite models (labels.txt beside where named) for the paths the trained
    artifact does not take: a softmax head, int8 I/O (quantized input), no embedded labels,
    a grey (HxWx1) input."""
    import tensorflow as tf  # before keras: TFLiteConverter needs TF's Keras hooks registered

    keras = tf.keras
    from edgecls.model import build_model

    keras.utils.set_random_seed(0)
    made: dict[str, Path] = {}
    for name, classes, quant, labels in (
        ("sigmoid_u8", 2, "int8-uint8io", "cat\ndog\n"),
        ("softmax3_f32", 3, "float32", "0 red\n1 green\n2 blue\n"),
        ("softmax3_i8", 3, "int8-int8io", "red\ngreen\nblue\n"),
    ):
        folder = out / name
        folder.mkdir(parents=True)
        made[name] = convert_keras(build_model(classes, batch_size=1), folder / "model.tflite", quant=quant)
        (folder / "labels.txt").write_text(labels)
    grey = keras.Sequential([keras.Input((64, 64, 1), batch_size=1), keras.layers.Flatten(),
                             keras.layers.Dense(2, activation="softmax")])
    (out / "grey").mkdir()
    made["grey"] = convert_keras(grey, out / "grey" / "model.tflite")
    (out / "grey" / "labels.txt").write_text("a\nb\n")
    return made


_MODELS: dict[str, Path] = {}


def cached_plain_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """:func:`plain_models`, converted once per session whichever test file asks first."""
    if not _MODELS:
        _MODELS.update(plain_models(tmp_path_factory.mktemp("device_models")))
    return dict(_MODELS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int, pid: int) -> bool:
    """Does process ``pid`` listen on 127.0.0.1:port? Read from /proc, because connecting would
    use up ffmpeg's single client; the socket's inode must be one of the process's open files
    (someone else may listen there)."""
    want = f"0100007F:{port:04X}"
    with contextlib.suppress(OSError):
        with open("/proc/net/tcp") as fh:
            inodes = {f"socket:[{f[9]}]" for f in (line.split() for line in fh.readlines()[1:])
                      if f[1].upper() == want and f[3] == "0A"}
        if inodes:
            fds = Path(f"/proc/{pid}/fd")
            return any(os.readlink(fd) in inodes for fd in fds.iterdir())
    return False


class MjpegServer:
    """ffmpeg serving an MJPG video (looped, paced at its frame rate) or a still .jpg as an MJPEG
    stream over HTTP on loopback: one client, like a cheap IP camera. stop() kills it."""

    def __init__(self, media: Path, port: int | None = None, still: bool = False) -> None:
        self.media = media
        self.pinned = port is not None
        self.port = port or free_port()
        self.still = still
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cam.mjpg"

    def start(self) -> MjpegServer:
        """Start ffmpeg and wait until it listens. A port picked by free_port() can be taken by
        someone else's connection before ffmpeg binds it; the first start then tries a fresh port
        (a restart keeps its address, as a camera coming back would)."""
        errors = []
        for _ in range(3):
            error = self._start_once()
            if error is None:
                self.started = True
                return self
            errors.append(error)
            if not (self.pinned or self.started):
                self.port = free_port()
        raise RuntimeError("ffmpeg did not start serving the stream: " + "; ".join(errors))

    def _start_once(self) -> str | None:
        assert FFMPEG is not None
        source = (["-loop", "1", "-framerate", "30", "-i", str(self.media)] if self.still
                  else ["-stream_loop", "-1", "-i", str(self.media)])
        with tempfile.TemporaryFile() as log:  # a file, not a pipe: nobody drains it while ffmpeg serves
            self.proc = subprocess.Popen(
                [FFMPEG, "-nostdin", "-loglevel", "error", "-re", *source, "-c:v", "copy",
                 "-f", "mpjpeg", "-listen", "1", self.url],
                stdout=subprocess.DEVNULL, stderr=log,
            )
            return self._wait_listening(log)

    def _wait_listening(self, log: IO[bytes]) -> str | None:
        assert self.proc is not None
        deadline = time.monotonic() + 20
        while not _listening(self.port, self.proc.pid):
            if self.proc.poll() is not None:
                log.seek(0)
                err = log.read(2000).decode(errors="replace").strip()
                self.proc = None
                return f"ffmpeg exited: {err or 'no message'} ({self.url})"
            if time.monotonic() > deadline:
                self.stop()
                return f"not listening after 20 s ({self.url})"
            time.sleep(0.05)
        return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
