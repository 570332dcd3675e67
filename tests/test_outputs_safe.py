"""One line, never a traceback, never a lost result of work done (issue 12, item 8):
one image per class, --out under a file, --out a mount point, a full disk during train,
convert and field export, nested class folders, a failed parity check, a kill -9's leftovers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli, tmpfs
from device_helpers import camera_like_frames

from edgecls.folders import scan_folder
from edgecls.fsutil import STAGING_PREFIX


def small_data(root: Path, per_class: int = 12) -> Path:
    from edgecls.demo_data import DemoDataOptions, generate

    generate(root, DemoDataOptions(train_per_class=per_class, test_per_class=6, seed=9))
    return root



def assert_fails_after_progress(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    """Work that ran, then met the full disk: progress lines, then exactly one error line."""
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0] and proc.stderr.rstrip().endswith(errors[0]), proc.stderr
    print(errors[0])


def no_staging_left(folder: Path) -> bool:
    return not any(p.name.startswith(STAGING_PREFIX) for p in folder.rglob("*")) if folder.exists() else True


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_data(tmp_path_factory.mktemp("safe") / "data")


@pytest.fixture(scope="module")
def run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("safe_run") / "run"
    run_cli("train", str(data / "train"), "--val-dir", str(data / "test"), "--out", str(out), "--epochs", "1", check=True)
    run_cli("convert", str(out), "--quantize", "int8", "--calibration", "16", "--no-parity", check=True)
    return out


def test_one_image_per_class(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / "d" / cls).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "d" / cls / "x.png"), camera_like_frames(["circle"], 1, size=(64, 64))[0])
    proc = run_cli("train", str(tmp_path / "d"), "--out", str(tmp_path / "run"))
    assert_one_line_error(proc, "has 1 readable image")
    assert not (tmp_path / "run").exists()


def test_out_under_a_regular_file(data: Path, run: Path, tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    assert_one_line_error(run_cli("train", str(data / "train"), "--out", str(tmp_path / "file.txt" / "run")),
                          "is a file, not a folder")
    assert_one_line_error(run_cli("field", "export", str(run), "--data", str(data / "test"),
                                  "--out", str(tmp_path / "file.txt" / "bundle")), "file.txt")


def test_nested_class_folders_are_recursed(tmp_path: Path) -> None:
    for cls in ("cat", "dog"):
        for sub in ("indoor", "outdoor/night"):
            (tmp_path / cls / sub).mkdir(parents=True)
            cv2.imwrite(str(tmp_path / cls / sub / "x.png"), camera_like_frames(["circle"], 1, size=(64, 64))[0])
    (tmp_path / "cat" / ".hidden").mkdir()
    cv2.imwrite(str(tmp_path / "cat" / ".hidden" / "y.png"), camera_like_frames(["circle"], 1, size=(64, 64))[0])
    scan = scan_folder(tmp_path)
    assert scan.classes == ("cat", "dog") and scan.num_files == 4


@pytest.mark.slow
def test_train_into_a_mount_point_with_force(data: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "64m") as mnt:
        (mnt / "old.txt").write_text("an earlier run")
        proc = run_cli("train", str(data / "train"), "--val-dir", str(data / "test"), "--out", str(mnt), "--epochs", "1",
                       "--force")
        assert proc.returncode == 0, proc.stderr
        assert (mnt / "model.keras").is_file() and (mnt / "spec.json").is_file() and not (mnt / "old.txt").exists()
        assert no_staging_left(mnt)


@pytest.mark.slow
def test_train_on_a_full_disk(data: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        proc = run_cli("train", str(data / "train"), "--val-dir", str(data / "test"), "--out", str(mnt / "run"), "--epochs", "1")
        assert_fails_after_progress(proc, "No space left on device")
        assert not (mnt / "run").exists() and no_staging_left(mnt), "nothing partial kept"


@pytest.mark.slow
def test_convert_on_a_full_disk(run: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "256k") as mnt:
        proc = run_cli("convert", str(run), "--quantize", "int8", "--calibration", "16", "--no-parity",
                       "--out", str(mnt / "model.tflite"))
        assert_fails_after_progress(proc, "No space left on device")
        assert list(mnt.iterdir()) == [], "no half-written artifact"


@pytest.mark.slow
def test_field_export_into_a_mount_point_and_on_a_full_disk(run: Path, data: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "64m") as mnt:
        (mnt / "old.txt").write_text("x")
        proc = run_cli("field", "export", str(run), "--data", str(data / "test"), "--out", str(mnt), "--count", "8", "--force")
        assert proc.returncode == 0, proc.stderr
        assert (mnt / "manifest.json").is_file() and not (mnt / "old.txt").exists() and no_staging_left(mnt)
    with tmpfs(tmp_path / "small", "48k") as small:
        proc = run_cli("field", "export", str(run), "--data", str(data / "test"), "--out", str(small / "b"), "--count", "8")
        assert_fails_after_progress(proc, "No space left on device")
        assert not (small / "b").exists() and no_staging_left(small)


@pytest.mark.slow
def test_failed_parity_keeps_the_previous_artifact(run: Path, data: Path, tmp_path: Path) -> None:
    model = run / "model_int8.tflite"
    before = model.read_bytes()
    dark = tmp_path / "dark"
    for cls in ("circle", "cross"):
        (dark / cls).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(dark / cls / f"{i}.png"), np.full((64, 64, 3), 3, np.uint8))
    proc = run_cli("convert", str(run), "--quantize", "int8", "--data", str(dark), "--val-data", str(data / "test"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "parity failed" in proc.stderr
    assert f"the previous {model} is left in place" in proc.stderr
    assert model.read_bytes() == before and no_staging_left(run)
    # With no previous artifact: the verdict, not an error about the file the check discarded.
    out = tmp_path / "new" / "m.tflite"
    proc = run_cli("convert", str(run), "--quantize", "int8", "--data", str(dark), "--val-data", str(data / "test"),
                   "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "parity failed" in proc.stderr and f"{out} was not written" in proc.stderr, proc.stderr
    assert "cannot read" not in proc.stderr and not out.exists()


def test_kill9_leftovers_are_cleaned_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "data"
    cmd = [sys.executable, "-m", "edgecls", "demo-data", str(out), "--train-per-class", "3000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.exists() and any(p.name.startswith(STAGING_PREFIX) for p in out.iterdir())):
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    left = [p.name for p in out.iterdir()]
    assert left and all(name.startswith(STAGING_PREFIX) for name in left), left
    run_cli("demo-data", str(out), "--train-per-class", "2", "--test-per-class", "1", check=True)
    assert sorted(p.name for p in out.iterdir()) == ["test", "train", "val"], "the killed run's staging folder is gone"
    shutil.rmtree(out)
