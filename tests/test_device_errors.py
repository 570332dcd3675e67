"""Every bad input to ``edgecls run``: one clear line before capture starts, a non-zero
exit, no traceback, and no --jsonl file written."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli
from device_helpers import cached_plain_models, camera_like_frames, free_port, write_video


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return cached_plain_models(tmp_path_factory)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("bad_video") / "v.avi", camera_like_frames(["circle"], 2))


def expect_one_line(args: list[str], needle: str, tmp_path: Path) -> str:
    out = tmp_path / "never.jsonl"
    if "--jsonl" not in args:
        args = [*args, "--jsonl", str(out)]
    proc = run_cli("run", "--headless", *args, timeout=60)
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0], lines[0]
    assert proc.stdout == "", "nothing classified"
    assert not out.exists(), "the check must come before any output"
    print(lines[0])
    return lines[0]


def test_model_missing(tmp_path: Path, video: Path) -> None:
    expect_one_line(["--model", str(tmp_path / "nope.tflite"), "--source", str(video)], "does not exist", tmp_path)


def test_model_not_tflite(tmp_path: Path, video: Path) -> None:
    fake = tmp_path / "model.tflite"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    expect_one_line(["--model", str(fake), "--source", str(video)], "is not a TFLite model", tmp_path)


def test_model_truncated(tmp_path: Path, video: Path, models: dict[str, Path]) -> None:
    data = models["sigmoid_u8"].read_bytes()
    cut = tmp_path / "cut" / "model.tflite"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 3])
    (cut.parent / "labels.txt").write_text("cat\ndog\n")
    expect_one_line(["--model", str(cut), "--source", str(video)], "truncated or corrupt", tmp_path)


def test_artifact_truncated(tmp_path: Path, video: Path, int8_model: Path) -> None:
    data = int8_model.read_bytes()
    cut = tmp_path / "model_int8.tflite"
    cut.write_bytes(data[: len(data) // 2])
    expect_one_line(["--model", str(cut), "--source", str(video)], "truncated or corrupt", tmp_path)


def test_model_input_not_hxwx3(tmp_path: Path, video: Path, models: dict[str, Path]) -> None:
    expect_one_line(["--model", str(models["grey"]), "--source", str(video)], "takes input of shape 1x64x64x1", tmp_path)


@pytest.mark.parametrize(("name", "labels"), [("sigmoid_u8", "a\nb\nc\n"), ("softmax3_f32", "0 a\n1 b\n")])
def test_labels_do_not_match_outputs(name: str, labels: str, tmp_path: Path, video: Path, models: dict[str, Path]) -> None:
    wrong = tmp_path / "labels.txt"
    wrong.write_text(labels)
    expect_one_line(["--model", str(models[name]), "--labels", str(wrong), "--source", str(video)], "do not match", tmp_path)


def test_plain_model_without_labels(tmp_path: Path, video: Path, models: dict[str, Path]) -> None:
    alone = tmp_path / "alone.tflite"
    alone.write_bytes(models["sigmoid_u8"].read_bytes())
    expect_one_line(["--model", str(alone), "--source", str(video)], "carries no labels", tmp_path)


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("7", "cannot open camera 7; "),
        ("/dev/video9", "cannot open camera /dev/video9; "),
        ("{tmp}/missing.avi", "does not exist; "),
        ("{tmp}/text.avi", "cannot open video"),
        ("{tmp}/empty", "has no images"),
        ("http://127.0.0.1:{port}/cam.mjpg", "cannot open stream"),
        ("videotestsrc ! appsink", "without GStreamer"),
        ("picamera2", "picamera2 is not importable"),
    ],
)
def test_source_cannot_be_opened(source: str, needle: str, tmp_path: Path, models: dict[str, Path]) -> None:
    (tmp_path / "text.avi").write_text("not a video")
    (tmp_path / "empty").mkdir()
    source = source.format(tmp=tmp_path, port=free_port())
    line = expect_one_line(["--model", str(models["sigmoid_u8"]), "--source", source], needle, tmp_path)
    if needle.startswith(("cannot open camera", "does not exist")):
        assert "cameras found" in line or "no cameras found" in line


def test_edgetpu_without_delegate(tmp_path: Path, video: Path, models: dict[str, Path]) -> None:
    expect_one_line(["--model", str(models["sigmoid_u8"]), "--source", str(video), "--edgetpu"], "install libedgetpu1-std", tmp_path)


@pytest.mark.parametrize("where", ["dir", "under_file"])
def test_jsonl_unwritable(where: str, tmp_path: Path, video: Path, models: dict[str, Path]) -> None:
    (tmp_path / "file.txt").write_text("x")
    target = tmp_path if where == "dir" else tmp_path / "file.txt" / "out.jsonl"
    expect_one_line(["--model", str(models["sigmoid_u8"]), "--source", str(video), "--jsonl", str(target)],
                    "cannot write --jsonl", tmp_path)


@pytest.mark.parametrize(("flag", "value", "needle"), [("--top-k", "0", "--top-k"), ("--threshold", "1.5", "--threshold"),
                                                       ("--smooth", "0", "--smooth"), ("--num-threads", "0", "--num-threads"),
                                                       ("--max-frames", "0", "--max-frames"),
                                                       ("--capture-size", "320", "--capture-size"),
                                                       ("--capture-size", "8x8", "--capture-size")])
def test_bad_numbers(flag: str, value: str, needle: str, tmp_path: Path, video: Path, models: dict[str, Path]) -> None:
    expect_one_line(["--model", str(models["sigmoid_u8"]), "--source", str(video), flag, value], needle, tmp_path)
