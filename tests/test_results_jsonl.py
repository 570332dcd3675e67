"""``--jsonl`` keeps every result: appended across restarts and kill -9, whole lines only,
run_start/run_end records, a full disk survived, size-bounded rotation, folder records named."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from conftest import run_cli
from conftest import tmpfs as tiny_tmpfs
from device_helpers import cached_plain_models, camera_like_frames, write_video

from edgecls.device.jsonl import JsonlWriter


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return cached_plain_models(tmp_path_factory)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("jsonl_video") / "v.avi",
                       camera_like_frames(["circle", "cross"], 30, size=(320, 240)))


def records(path: Path) -> list[dict]:
    """Every line parsed: a torn line would raise here."""
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "the file ends in a whole line"
    return [json.loads(line) for line in text.splitlines()]


def frames_of(recs: list[dict]) -> list[dict]:
    return [r for r in recs if "event" not in r]


def test_kill9_and_restart_loses_nothing(models: dict[str, Path], video: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "edgecls", "run", "--model", str(models["sigmoid_u8"]), "--source", str(video),
           "--headless", "--quiet", "--realtime", "--jsonl", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while (not out.exists() or out.read_text().count("\n") < 21) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    first = records(out)
    assert first[0]["event"] == "run_start" and len(frames_of(first)) >= 20
    assert not any(r.get("event") == "run_end" for r in first), "a kill -9 writes no summary"
    before = out.read_bytes()
    proc2 = run_cli("run", "--model", str(models["sigmoid_u8"]), "--source", str(video), "--headless", "--quiet",
                    "--jsonl", str(out), check=True)
    assert "Traceback" not in proc2.stderr
    assert out.read_bytes().startswith(before), "the restart appended; nothing earlier was touched"
    both = records(out)
    second = both[len(first):]
    assert second[0]["event"] == "run_start" and second[-1]["event"] == "run_end"
    assert len(frames_of(second)) == 60 == second[-1]["frames"] == second[-1]["records_written"] - 1
    print(f"kill -9 after {len(first)} lines ({len(frames_of(first))} frames); restart added {len(second)} "
          f"({len(frames_of(second))} frames + run_start + run_end); total {len(both)} lines, all whole JSON")


def test_run_start_and_end_records(models: dict[str, Path], video: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    run_cli("run", "--model", str(models["sigmoid_u8"]), "--source", str(video), "--headless", "--quiet",
            "--max-frames", "5", "--jsonl", str(out), check=True)
    recs = records(out)
    start, end = recs[0], recs[-1]
    import hashlib

    assert start["event"] == "run_start" and start["labels"] == ["cat", "dog"] and start["source"] == str(video)
    assert start["model_sha256"] == hashlib.sha256(models["sigmoid_u8"].read_bytes()).hexdigest()
    assert start["edgecls"] and start["time"].endswith("+00:00")
    assert end == {**end, "event": "run_end", "frames": 5, "stopped_by": "max frames", "records_dropped": 0}


def test_refused_run_leaves_the_file_untouched(models: dict[str, Path], video: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text('{"frame":0}\n')
    proc = run_cli("run", "--model", str(models["sigmoid_u8"]), "--source", str(video), "--headless",
                   "--top-k", "0", "--jsonl", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert out.read_text() == '{"frame":0}\n'


def test_torn_last_line_is_cut_at_open(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_bytes(b'{"frame":0}\n{"frame":1,"lab')
    w = JsonlWriter(out)
    w.open()
    w.write({"frame": 2})
    w.close()
    assert [r["frame"] for r in records(out)] == [0, 2]


def test_rotation_bounds_the_disk_and_keeps_whole_lines(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    w = JsonlWriter(out, max_bytes=2000, keep=3)
    w.open()
    for i in range(400):
        assert w.write({"frame": i, "label": "cat", "pad": "x" * 40})
    w.close()
    rotated = sorted(tmp_path.glob("r.jsonl.*.gz"))
    assert len(rotated) == 3 and not list(tmp_path.glob("r.jsonl.*[0-9]")), "old ones pruned, all compressed"
    assert out.stat().st_size <= 2000
    got = [json.loads(line) for p in rotated for line in gzip.decompress(p.read_bytes()).decode().splitlines()]
    got += records(out)
    frames = [r["frame"] for r in got]
    assert frames == list(range(frames[0], 400)), "the newest records, in order, none torn"
    assert w.rotations > 3



def test_full_disk_keeps_classifying_without_torn_lines(models: dict[str, Path], video: Path, tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "disk", "8k") as disk:
        out = disk / "r.jsonl"
        proc = run_cli("run", "--model", str(models["sigmoid_u8"]), "--source", str(video), "--headless", "--quiet",
                       "--jsonl", str(out))
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        warned = [line for line in proc.stderr.splitlines() if "cannot write" in line]
        assert len(warned) == 1 and "No space left" in warned[0] and "classifying continues" in warned[0]
        assert "done: 60 frames" in proc.stderr, "every frame was still classified"
        recs = records(out)  # whole lines only, though the disk filled mid-line
        assert recs[0]["event"] == "run_start" and 0 < len(frames_of(recs)) < 60
        print(f"8 KiB disk: {len(recs)} whole lines kept, {60 - len(frames_of(recs))} frame records dropped; "
              f"stderr: {warned[0]}")


def test_folder_records_name_their_files_and_skips_do_not_shift(models: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(camera_like_frames(["circle"], 5, size=(96, 96))):
        cv2.imwrite(str(folder / f"{i:02d}.png"), img)
    (folder / "02.png").write_bytes(b"not a png")
    out = tmp_path / "r.jsonl"
    proc = run_cli("run", "--model", str(models["sigmoid_u8"]), "--source", str(folder), "--headless", "--quiet",
                   "--jsonl", str(out), check=True)
    recs = records(out)
    got = [(r["source_index"], r["file"]) for r in frames_of(recs)]
    assert got == [(0, "00.png"), (1, "01.png"), (3, "03.png"), (4, "04.png")]
    assert recs[-1]["skipped_files"] == 1
    warned = [line for line in proc.stderr.splitlines() if "skipped" in line and "02.png" in line]
    assert len(warned) == 1 and "Traceback" not in proc.stderr
