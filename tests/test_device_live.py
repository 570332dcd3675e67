"""Live sources: a real MJPEG stream served by ffmpeg on loopback that drops out and comes
back, a frozen stream, the latest-frame reader under slow inference, and clean stops."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from device_helpers import (
    MjpegServer,
    cached_plain_models,
    camera_like_frames,
    needs_ffmpeg,
    write_video,
)

from edgecls.device.backends import Backend
from edgecls.device.classify import Classifier, PostOptions
from edgecls.device.loop import open_classifier, run_loop
from edgecls.device.options import RunOptions
from edgecls.device.reader import LatestFrameReader, ReaderOptions
from edgecls.device.results import Frame, FrameStats, Prediction
from edgecls.device.sources import SourceOptions, SourceSpec, open_source

#: The issue's bound: a source that stops delivering is detected within this many seconds.
DETECT_S = 2.0


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return cached_plain_models(tmp_path_factory)


@pytest.fixture(scope="module")
def stream_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seconds of camera-like MJPG at 30 fps; ffmpeg loops it."""
    return write_video(tmp_path_factory.mktemp("stream") / "cam.avi", camera_like_frames(["circle", "cross"], 30, seed=2))


class Proc:
    """``edgecls run`` in a subprocess, its stderr lines timestamped as they arrive."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "COLUMNS": "200", "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.p = subprocess.Popen([sys.executable, "-m", "edgecls", "run", *args], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[tuple[float, str]] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def first(self, needle: str) -> float | None:
        return next((t for t, line in list(self.lines) if needle in line), None)

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def finish(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        rc = self.p.wait(timeout)
        self._t.join(5)
        return rc


def rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    text = path.read_text()
    return [r for r in (json.loads(line) for line in text.splitlines() if line.endswith("}")) if "event" not in r]


def wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@needs_ffmpeg
def test_stream_drops_out_is_detected_and_reopened(models: dict[str, Path], stream_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    server = MjpegServer(stream_video).start()
    proc = Proc("--model", str(models["sigmoid_u8"]), "--source", server.url, "--headless", "--quiet",
                "--jsonl", str(out), "--stats-every", "1")
    try:
        wait_for(lambda: len(rows(out)) >= 20, 20, "20 frames from the stream")
        killed = time.monotonic()
        server.stop()  # the camera goes away
        wait_for(lambda: proc.first("stall detected") is not None, 5, "the stall to be logged")
        detected = proc.first("stall detected")
        assert detected is not None and detected - killed <= DETECT_S, proc.text()
        print(f"stall detected {detected - killed:.2f} s after the stream server died")
        time.sleep(2.5)  # a few reopen attempts fail meanwhile
        assert proc.p.poll() is None, "the run keeps going while the camera is away"
        assert proc.first("reopen attempt 1 failed") is not None, proc.text()
        before = len(rows(out))
        server.start()  # and comes back on the same address
        wait_for(lambda: len(rows(out)) >= before + 20, 20, "frames after the reconnect")
        assert rows(out)[-1]["reconnects"] >= 1
        assert proc.first("reconnected after") is not None
    finally:
        rc = proc.finish(signal.SIGTERM)
        server.stop()
    assert rc == 0, proc.text()
    got = rows(out)
    assert [r["frame"] for r in got] == list(range(len(got)))
    assert f"done: {len(got)} frames" in proc.text()
    print(proc.text())


@needs_ffmpeg
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_with_every_line_flushed(sig: int, models: dict[str, Path], stream_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    with MjpegServer(stream_video) as server:
        proc = Proc("--model", str(models["sigmoid_u8"]), "--source", server.url, "--headless", "--quiet", "--jsonl", str(out))
        wait_for(lambda: len(rows(out)) >= 15, 20, "15 frames")
        rc = proc.finish(sig)
    assert rc == 0, proc.text()
    assert "Traceback" not in proc.text()
    text = out.read_text()
    assert text.endswith("\n")
    got = [r for r in (json.loads(line) for line in text.splitlines()) if "event" not in r]
    assert [r["frame"] for r in got] == list(range(len(got)))
    assert f"done: {len(got)} frames" in proc.text() and "stopped by signal" in proc.text()


@needs_ffmpeg
def test_frozen_stream_is_detected(tmp_path: Path) -> None:
    still = tmp_path / "still.jpg"
    cv2.imwrite(str(still), camera_like_frames(["star"], 1)[0])
    with MjpegServer(still, still=True) as server:
        spec = SourceSpec("url", server.url)
        reader = LatestFrameReader(lambda: open_source(spec, SourceOptions()))
        try:
            first = None
            deadline = time.monotonic() + 10
            while first is None and time.monotonic() < deadline:
                first = reader.next(0.5)
            assert first is not None, "the still stream delivers frames"
            wait_for(lambda: reader.stalls >= 1, 5, "the frozen stream to be detected")
            when, message = next((t, m) for t, m in reader.events if "stall detected" in m)
            assert "frozen" in message
            assert when - first.mono <= DETECT_S, f"detected {when - first.mono:.2f} s after the first frame"
        finally:
            reader.close()


class PacedSource:
    """A 30 fps live source (frames of a list, in a loop), paced like a camera."""

    colour = "bgr"
    live = True
    description = "paced test source"

    def __init__(self, frames: list[np.ndarray], fps: float = 30.0) -> None:
        self.frames = frames
        self.interval = 1.0 / fps
        self.n = 0
        self.t0 = time.monotonic()

    def read(self) -> np.ndarray | None:
        due = self.t0 + self.n * self.interval
        time.sleep(max(0.0, due - time.monotonic()))
        frame = self.frames[self.n % len(self.frames)]
        self.n += 1
        return frame

    def close(self) -> None:
        pass


class SlowBackend:
    """The real backend, made slower than the camera."""

    def __init__(self, inner: Backend, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.name = f"slow {inner.name}"
        self.input = inner.input
        self.output = inner.output

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s)
        return self.inner.invoke(tensor)

    def delegated_partitions(self) -> int:
        return self.inner.delegated_partitions()

    def close(self) -> None:
        self.inner.close()


class Collect:
    def __init__(self) -> None:
        self.stats: list[FrameStats] = []
        self.emitted: list[float] = []
        self.frames: list[Frame] = []

    def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None:
        self.emitted.append(time.monotonic() - frame.mono)
        self.stats.append(stats)
        self.frames.append(frame)

    def close(self) -> None:
        pass


def test_latest_frame_reader_drops_stale_frames(models: dict[str, Path]) -> None:
    delay = 0.1  # three camera frames per inference
    info, backend, _ = open_classifier(RunOptions(model=models["sigmoid_u8"]))
    classifier = Classifier(info, SlowBackend(backend, delay), PostOptions())
    frames = camera_like_frames(["circle"], 4)
    reader = LatestFrameReader(lambda: PacedSource(frames))  # type: ignore[arg-type, return-value]
    sink = Collect()
    try:
        summary = run_loop(reader, classifier, [sink], threading.Event(), max_frames=20)
    finally:
        reader.close()
    assert summary.frames == 20
    assert summary.dropped >= 20, f"about 2 of every 3 frames are stale; dropped {summary.dropped}"
    indices = [f.index for f in sink.frames]
    assert np.all(np.diff(indices) > 0)
    assert np.median(np.diff(indices)) >= 2
    bound = 2 / 30 + delay + 0.05  # two frame intervals + inference + scheduling slack
    ages = np.array(sink.emitted[2:])
    assert ages.max() <= bound, f"result ages {ages.round(3)} exceed {bound:.3f} s: frames are queuing"
    assert ages[-5:].mean() <= ages[:5].mean() + 0.03, "no backlog builds up"


def test_a_still_scene_is_reopened_at_growing_intervals() -> None:
    """Identical frames that stay identical after a reopen (a dark, static scene) are not
    reopened every stall_s forever: the frozen threshold doubles each time."""
    still = camera_like_frames(["ring"], 1)[0]
    opened: list[float] = []

    class Still:
        colour = "bgr"
        live = True
        description = "still scene"

        def read(self) -> np.ndarray:
            time.sleep(0.01)
            return still

        def close(self) -> None:
            pass

    def open_still() -> Still:
        opened.append(time.monotonic())
        return Still()

    reader = LatestFrameReader(open_still, ReaderOptions(stall_s=0.3, backoff_s=0.01))  # type: ignore[arg-type]
    try:
        time.sleep(3.0)
        assert reader.next(0.5) is not None, "frames keep flowing meanwhile"
    finally:
        reader.close()
    # "frozen: identical frames for X s": X is the threshold in force, which doubles.
    # (A stall of another kind, e.g. the grab thread starved on a loaded machine, keeps it.)
    frozen = [float(m.split("identical frames for ")[1].split(" s")[0]) for _, m in reader.events if "frozen" in m]
    assert len(frozen) >= 3, reader.events
    assert all(b >= a for a, b in itertools.pairwise(frozen)), frozen
    assert frozen[-1] >= 1.9 * frozen[0], frozen
    assert len(opened) <= 6, "not reopened every stall_s"


@needs_ffmpeg
def test_a_hung_stream_is_detected(stream_video: Path) -> None:
    """A server that stops sending without closing the connection (SIGSTOP): no read error
    ever comes, so the watchdog must notice the silence."""
    with MjpegServer(stream_video) as server:
        reader = LatestFrameReader(lambda: open_source(SourceSpec("url", server.url), SourceOptions()))
        try:
            wait_for(lambda: reader.next(0.2) is not None, 10, "frames")
            assert server.proc is not None
            server.proc.send_signal(signal.SIGSTOP)
            hung = time.monotonic()
            wait_for(lambda: reader.stalls >= 1, 5, "the silence to be detected")
            when, message = next((t, m) for t, m in reader.events if "stall detected" in m)
            assert when - hung <= DETECT_S, f"{when - hung:.2f} s: {message}"
        finally:
            if server.proc is not None:
                server.proc.send_signal(signal.SIGCONT)
            reader.close()
