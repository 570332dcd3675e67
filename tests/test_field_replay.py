"""Live frame capture and field replay end to end: a camera-like MJPG video through
``edgecls run --headless --save-frames``, then ``edgecls field replay`` on the host."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from device_helpers import MjpegServer, camera_like_frames, needs_ffmpeg, write_video

from edgecls.images import read_image
from edgecls.preprocess import to_model_input

PER_CLASS = 20  # frames of each shape in the video; every 2nd is saved
SAVED = PER_CLASS


def record(model: Path, video: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("run", "--model", str(model), "--source", str(video), "--headless", "--quiet",
                   "--save-frames", str(out), "--save-every", "2", *extra)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("field_video")
    frames = camera_like_frames(["circle", "cross"], PER_CLASS, seed=7)
    return {"camera": write_video(tmp / "cam.avi", frames),
            # the same scenes at 0.45x exposure: a darker camera, same shapes
            "dark": write_video(tmp / "dark.avi", [(f * 0.45).astype(np.uint8) for f in frames])}


@pytest.fixture(scope="module")
def saved(int8_model: Path, videos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("saved") / "frames"
    proc = record(int8_model, videos["camera"], out)
    assert proc.returncode == 0, proc.stderr
    assert f"saved {SAVED} frames to" in proc.stderr, proc.stderr
    return out


def replay(run: Path, frames: Path, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "replay.json"
    proc = run_cli("field", "replay", str(run), "--frames", str(frames), "--json", str(out), *extra)
    assert "Traceback" not in proc.stderr, proc.stderr
    print(proc.stdout, proc.stderr)
    return proc, json.loads(out.read_text()) if out.exists() else {}


def test_saved_frames_are_complete_and_lossless(saved: Path) -> None:
    session = json.loads((saved / "session.json").read_text())
    assert session["labels"] == ["circle", "cross"] and len(session["model_sha256"]) == 64
    records = [json.loads(p.read_text()) for p in sorted(saved.glob("*-*.json"))]
    assert [r["frame"] for r in records] == list(range(0, 2 * PER_CLASS, 2))
    for r in records:
        image = read_image(saved / r["image"])
        assert image is not None and image.shape == (480, 640, 3)
        tensor = np.load(saved / r["tensor"])
        assert np.array_equal(to_model_input(image, "bgr", 64), tensor), "the PNG reproduces the tensor the device classified"
        assert abs(sum(r["probabilities"]) - 1) < 1e-6 and r["score"] == max(r["probabilities"])


def test_replay_reports_agreement_and_no_drift(trained_run: Path, saved: Path, tmp_path: Path) -> None:
    proc, report = replay(trained_run, saved, tmp_path)
    assert report["count"] == SAVED and report["tensors_reproduced"] == SAVED
    assert proc.returncode == (0 if report["passed"] else 1)
    assert report["agreement"] >= 0.9, "float and int8 see the same frames"
    assert [c["label"] for c in report["per_class"]] == ["circle", "cross"]
    assert sum(c["frames"] for c in report["per_class"]) == SAVED
    assert report["domain_ok"], report["statistics"]
    assert report["scenes"] >= SAVED // 2, "independent renders are (mostly) distinct scenes"
    assert "quantization drift:" in proc.stdout and "domain drift: ok" in proc.stdout


def test_replay_flags_a_darker_camera_as_domain_drift(trained_run: Path, int8_model: Path, videos: dict[str, Path],
                                                      tmp_path: Path) -> None:
    frames = tmp_path / "dark"
    assert record(int8_model, videos["dark"], frames).returncode == 0
    proc, report = replay(trained_run, frames, tmp_path)
    assert proc.returncode == 1
    assert not report["domain_ok"]
    stats = {s["name"].split(" (")[0]: s for s in report["statistics"]}
    assert not stats["brightness shift"]["ok"] and stats["brightness shift"]["distance"] > 1.5
    assert report["tensors_reproduced"] == report["count"], "darker, but still the device's own frames"
    assert "DRIFT in brightness" in proc.stdout


def test_a_crash_leaves_only_complete_frames(trained_run: Path, saved: Path, tmp_path: Path) -> None:
    """What a kill leaves behind: a frame with its image and tensor but no .json yet, and a
    temp file mid-rename. Replay skips both and says so."""
    frames = Path(shutil.copytree(saved, tmp_path / "crashed"))
    last = sorted(frames.glob("*-*.json"))[-1]
    last.unlink()
    (frames / f".{last.stem}.png.abc123.tmp").write_bytes(b"partial")
    proc, report = replay(trained_run, frames, tmp_path)
    assert report["count"] == SAVED - 1 and report["incomplete"] == [last.stem]
    assert "1 incomplete frame(s) skipped" in proc.stdout


def test_frames_folder_of_another_model_is_refused(float32_model: Path, saved: Path, videos: dict[str, Path],
                                                   tmp_path: Path) -> None:
    folder = Path(shutil.copytree(saved, tmp_path / "mixed"))
    assert_one_line_error(record(float32_model, videos["camera"], folder), "holds frames of another model")


def test_replay_bad_input(trained_run: Path, saved: Path, tmp_path: Path) -> None:
    def bad(frames: Path, needle: str, run: Path = trained_run) -> None:
        assert_one_line_error(run_cli("field", "replay", str(run), "--frames", str(frames)), needle)

    empty = tmp_path / "empty"
    empty.mkdir()
    bad(empty, "is empty")
    bad(tmp_path / "none", "does not exist")
    only_session = tmp_path / "only_session"
    only_session.mkdir()
    shutil.copy(saved / "session.json", only_session)
    bad(only_session, "has no saved frames")

    foreign = Path(shutil.copytree(saved, tmp_path / "foreign"))
    (foreign / "notes.txt").write_text("hello")
    (foreign / "IMG_0001.jpg").write_bytes((saved / sorted(p.name for p in saved.glob("*.png"))[0]).read_bytes())
    bad(foreign, "holds files edgecls did not write: IMG_0001.jpg, notes.txt")

    mixed = Path(shutil.copytree(saved, tmp_path / "mixed"))
    first = sorted(mixed.glob("*-*.json"))[0]
    rec = json.loads(first.read_text())
    small = cv2.resize(read_image(mixed / rec["image"]), (320, 240), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(mixed / rec["image"]), small)
    rec["image_size"] = [320, 240]
    first.write_text(json.dumps(rec))
    bad(mixed, "mixes image sizes: 640x480 (19 frames), 320x240 (1 frame)")

    other = tmp_path / "other_run"
    other.mkdir()
    spec = json.loads((trained_run / "spec.json").read_text())
    spec["labels"] = ["cat", "dog"]
    (other / "spec.json").write_text(json.dumps(spec))
    bad(saved, "classified with labels circle, cross but run", run=other)


@needs_ffmpeg
def test_kill_9_mid_capture_loses_nothing_already_saved(trained_run: Path, int8_model: Path, videos: dict[str, Path],
                                                        tmp_path: Path) -> None:
    """A live MJPEG stream (ffmpeg on loopback, 30 fps), every frame saved, then SIGKILL:
    every frame with a .json is complete and replays; nothing else is needed to clean up."""
    frames = tmp_path / "killed"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with MjpegServer(videos["camera"]) as server:
        proc = subprocess.Popen([sys.executable, "-m", "edgecls", "run", "--model", str(int8_model), "--source", server.url,
                                 "--headless", "--quiet", "--save-frames", str(frames), "--save-every", "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            deadline = time.monotonic() + 30
            while len(list(frames.glob("*-*.json"))) < 15:
                assert proc.poll() is None and time.monotonic() < deadline, "frames are being saved"
                time.sleep(0.05)
        finally:
            proc.kill()
            proc.wait(10)
    _, report = replay(trained_run, frames, tmp_path)
    assert report["count"] >= 15 and report["tensors_reproduced"] == report["count"]
    assert len(report["incomplete"]) <= 1, "at most the frame being written when killed"
