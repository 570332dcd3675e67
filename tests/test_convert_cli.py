"""`edgecls convert` / `edgecls parity` as a user runs them, and every bad input the issue lists.

Bad input: one clear line naming the path or value and the fix, a non-zero exit, no
traceback, nothing partial written.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_cli

from edgecls.artifact import read_embedded

pytestmark = pytest.mark.slow


def _fails_cleanly(args: list[str], needle: str, *, code: int = 2) -> str:
    proc = run_cli(*args)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and needle in lines[0], lines[0]
    return lines[0]


def _no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_convert_cli_int8_prints_summary_and_parity(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "m.tflite"
    proc = run_cli("convert", str(trained_run), "--out", str(out), "--target", "edgetpu", check=True)
    assert "Saved artifact" not in proc.stdout  # the converter's own chatter stays out of stdout
    assert f"wrote {out}" in proc.stdout
    assert "input uint8 (scale 1, zero point 0)" in proc.stdout
    assert "ops: QUANTIZE CONV_2D MAX_POOL_2D CONV_2D MAX_POOL_2D RESHAPE FULLY_CONNECTED" in proc.stdout
    # readiness table and verdict; the compiler is not installable here, so the note says how to get it
    assert "ready: all 13 ops meet the Edge TPU's requirements" in proc.stdout  # with [1 - p, p]: SUB, CONCATENATION, QUANTIZE
    if shutil.which("edgetpu_compiler") is None:
        assert "edgetpu_compiler is not on PATH" in proc.stderr and "x86-64 Linux" in proc.stderr
    # parity on the run's validation data is the last step
    assert "parity on" in proc.stdout and " pass " in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith("└")
    spec, labels = read_embedded(out)
    assert spec is not None and labels == ("circle", "cross")
    assert (out.parent / "labels.txt").read_text() == "circle\ncross\n"


def test_convert_dynamic_warns_about_tflite_runtime(trained_run: Path, tmp_path: Path) -> None:
    proc = run_cli("convert", str(trained_run), "--quantize", "dynamic", "--out", str(tmp_path / "d.tflite"), check=True)
    assert "tflite-runtime 2.14" in proc.stderr and "FULLY_CONNECTED op version 12" in proc.stderr


def test_parity_json_on_stdout_is_clean(trained_run: Path, demo_data: Path, tflite_models: Callable[[str], Path]) -> None:
    for mode in ("int8", "float16", "dynamic", "float32"):
        tflite_models(mode)
    proc = run_cli("parity", str(trained_run), "--data", str(demo_data / "test"), "--json", "-", check=True)
    report = json.loads(proc.stdout)
    assert set(report["variants"]) == {"int8", "float16", "dynamic", "float32"}
    for v in report["variants"].values():
        for key in ("accuracy", "float_accuracy", "top1_agreement", "max_abs_prob_diff", "size_bytes", "passed"):
            assert key in v
    assert "top-1 agree" in proc.stderr  # the table went to stderr


def test_parity_fails_with_exit_1_naming_the_figure(trained_run: Path, demo_data: Path, tmp_path: Path) -> None:
    """Calibrating on flat dark images (nothing like the data) gives an int8 model that must fail."""
    from edgecls.convert.export import convert_run

    for cls in ("circle", "cross"):
        (tmp_path / "flat" / cls).mkdir(parents=True)
        for i in range(5):
            cv2.imwrite(str(tmp_path / "flat" / cls / f"{i}.png"), np.full((64, 64, 3), 10 + i, np.uint8))
    bad = convert_run(trained_run, "int8", tmp_path / "bad_int8.tflite", data_dir=tmp_path / "flat").path
    proc = run_cli("parity", str(trained_run), "--data", str(demo_data / "test"), "--variants", str(bad),
                   "--json", str(tmp_path / "p.json"))
    assert proc.returncode == 1, proc.stderr
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["passed"] is False and report["variants"]["bad_int8"]["passed"] is False
    assert "parity failed: bad_int8:" in proc.stderr
    assert "top-1 agreement" in proc.stderr or "accuracy drop" in proc.stderr


def test_parity_diagnose_lists_layers(trained_run: Path, demo_data: Path, int8_model: Path) -> None:
    proc = run_cli("parity", str(trained_run), "--data", str(demo_data / "test"), "--variants", "int8", "--diagnose")
    assert proc.returncode in (0, 1), proc.stderr
    assert "largest quantization error per layer" in proc.stdout
    for layer in ("conv1", "conv2", "dense", "head"):
        assert layer in proc.stdout


# ----- bad input -----

def test_run_dir_without_model(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    _fails_cleanly(["convert", str(tmp_path / "run")], "has no model.keras")


def test_corrupt_keras_model(trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("*.tflite"))
    (run / "model.keras").write_bytes(b"not a keras archive")
    _fails_cleanly(["convert", str(run)], "is not a readable Keras model")
    assert not (run / "model_int8.tflite").exists()


def test_foreign_tflite_file(trained_run: Path, demo_data: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.tflite"
    shutil.copy(trained_run / "curves.png", foreign)
    _fails_cleanly(["parity", str(trained_run), "--data", str(demo_data / "test"), "--variants", str(foreign)],
                   "is not a TFLite model")


def test_calibration_folder_missing_or_empty(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.tflite"
    _fails_cleanly(["convert", str(trained_run), "--data", str(tmp_path / "nope"), "--out", str(out)], "does not exist")
    (tmp_path / "empty").mkdir()
    _fails_cleanly(["convert", str(trained_run), "--data", str(tmp_path / "empty"), "--out", str(out)], "is empty")
    assert not out.exists()


@pytest.mark.parametrize(("flag", "value"), [("--quantize", "int4"), ("--io-dtype", "float32")])
def test_unknown_option_values(trained_run: Path, flag: str, value: str) -> None:
    _fails_cleanly(["convert", str(trained_run), flag, value], f"unknown {flag} '{value}'")


def test_unwritable_output(trained_run: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _fails_cleanly(["convert", str(trained_run), "--out", str(blocker / "m.tflite")], "is not a folder")
    _fails_cleanly(["convert", str(trained_run), "--out", str(tmp_path)], "is a folder")


def test_parity_data_with_foreign_classes(trained_run: Path, int8_model: Path, tmp_path: Path) -> None:
    for cls in ("dog", "cat"):
        (tmp_path / "d" / cls).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "d" / cls / "0.png"), np.zeros((64, 64, 3), np.uint8))
    _fails_cleanly(["parity", str(trained_run), "--data", str(tmp_path / "d"), "--variants", "int8"],
                   "has class folders the model does not know: cat, dog")


def test_tflite_output_size_does_not_match_labels(trained_run: Path, demo_data: Path, tmp_path: Path) -> None:
    import tensorflow as tf

    from edgecls.model import build_model

    wrong = tmp_path / "three.tflite"
    wrong.write_bytes(tf.lite.TFLiteConverter.from_keras_model(build_model(3, batch_size=1)).convert())
    _fails_cleanly(["parity", str(trained_run), "--data", str(demo_data / "test"), "--variants", str(wrong)],
                   "has 3 output value(s) but the labels need 1")


def test_ctrl_c_during_conversion_leaves_nothing(trained_run: Path, tmp_path: Path) -> None:
    """SIGINT while the converter calibrates -> exit 130, nothing at the target, no temp file.

    The converter first saves the Keras model to a temp folder; once one appears under the
    child's TMPDIR, calibration on 6000 samples has several seconds to go.
    """
    out = tmp_path / "out" / "m.tflite"
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen([sys.executable, "-m", "edgecls", "convert", str(trained_run), "--out", str(out),
                             "--calibration", "6000", "--no-parity"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not any(tmpdir.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    assert proc.poll() is None, "conversion finished before the interrupt"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "interrupted: nothing partial was written" in stderr and "Traceback" not in stderr
    assert not out.exists()
    if out.parent.exists():
        _no_temp_files(out.parent)
