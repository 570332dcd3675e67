"""Bad input: one clear line naming the path or value, a non-zero exit, no traceback, nothing written."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_cli


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((20, 20, 3), 128, np.uint8))


def _expect_clean_failure(args: list[str], needle: str, out: Path | None = None) -> str:
    proc = run_cli(*args)
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0], lines[0]
    if out is not None:
        assert not out.exists() or not any(out.iterdir()), f"{out} must not be written"
    return lines[0]


@pytest.fixture()
def good(tmp_path: Path) -> Path:
    for cls in ("a", "b"):
        for i in range(3):
            _image(tmp_path / "good" / cls / f"{i}.png")
    return tmp_path / "good"


def test_data_dir_missing(tmp_path: Path) -> None:
    _expect_clean_failure(["train", str(tmp_path / "nope"), "--out", str(tmp_path / "run")], "does not exist", tmp_path / "run")


def test_data_dir_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    _expect_clean_failure(["train", str(tmp_path / "file.txt"), "--out", str(tmp_path / "run")], "is not a folder", tmp_path / "run")


def test_data_dir_empty(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _expect_clean_failure(["train", str(tmp_path / "empty"), "--out", str(tmp_path / "run")], "is empty", tmp_path / "run")


def test_one_class_folder(tmp_path: Path) -> None:
    _image(tmp_path / "one" / "a" / "x.png")
    _expect_clean_failure(["train", str(tmp_path / "one"), "--out", str(tmp_path / "run")], "at least 2", tmp_path / "run")


def test_class_folder_without_images(good: Path, tmp_path: Path) -> None:
    (good / "c").mkdir()
    (good / "c" / "notes.txt").write_text("x")
    _expect_clean_failure(["train", str(good), "--out", str(tmp_path / "run")], str(good / "c"), tmp_path / "run")


def test_class_folder_all_corrupt(good: Path, tmp_path: Path) -> None:
    for p in (good / "b").iterdir():
        p.write_bytes(b"garbage")
    _expect_clean_failure(["train", str(good), "--out", str(tmp_path / "run")], "no readable image", tmp_path / "run")


def test_every_image_corrupt(good: Path, tmp_path: Path) -> None:
    for p in good.rglob("*.png"):
        p.write_bytes(b"garbage")
    _expect_clean_failure(["train", str(good), "--out", str(tmp_path / "run")], "could be decoded", tmp_path / "run")


def test_run_dir_not_empty(good: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "precious.txt").write_text("keep me")
    _expect_clean_failure(["train", str(good), "--out", str(run)], "--force")
    assert (run / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("value", ["0", "1", "-0.5", "1.5"])
def test_val_split_out_of_range(good: Path, tmp_path: Path, value: str) -> None:
    _expect_clean_failure(["train", str(good), "--out", str(tmp_path / "run"), f"--val-split={value}"], value, tmp_path / "run")


def test_epochs_below_one(good: Path, tmp_path: Path) -> None:
    _expect_clean_failure(["train", str(good), "--out", str(tmp_path / "run"), "--epochs", "0"], "--epochs", tmp_path / "run")


def test_help_on_every_command_and_version() -> None:
    proc = run_cli("--version", check=True)
    assert proc.stdout.startswith("edgecls ")
    top = run_cli("--help", check=True).stdout
    for cmd in ("demo-data", "train", "evaluate"):
        assert cmd in top
        assert "Usage" in run_cli(cmd, "--help", check=True).stdout


_DISGUISED_INTERRUPT = """
import os, signal, sys, time
import typer
from edgecls.cli import handle_errors

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

def library_callback(interrupt):
    # What TensorFlow's converter did once: the KeyboardInterrupt raised in a Python callback
    # under C++ came out as another error.
    try:
        if interrupt:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        raise TypeError("'NoneType' object is not callable")
    except KeyboardInterrupt:
        raise TypeError("'NoneType' object is not callable") from None

@app.command()
@handle_errors
def work(interrupt: bool = typer.Option(False, "--interrupt")) -> None:
    library_callback(interrupt)

app()
"""


@pytest.mark.parametrize("interrupt", [True, False])
def test_ctrl_c_disguised_by_a_library_is_still_an_interrupt(tmp_path: Path, interrupt: bool) -> None:
    """Ctrl-C that a library turns into another error is reported as the interrupt (130, one
    line); the same error without a Ctrl-C is a bug and keeps its traceback."""
    import subprocess
    import sys

    script = tmp_path / "disguised.py"
    script.write_text(_DISGUISED_INTERRUPT)
    proc = subprocess.run([sys.executable, str(script), *(["--interrupt"] if interrupt else [])],
                          capture_output=True, text=True, timeout=60)
    if interrupt:
        assert proc.returncode == 130, proc.stderr
        assert proc.stderr.strip() == "error: interrupted: nothing partial was written"
    else:
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" in proc.stderr and "TypeError: 'NoneType' object is not callable" in proc.stderr
