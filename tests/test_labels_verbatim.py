"""A class folder's name is its label, verbatim, everywhere; labels are never silently wrong.

Cases of issue 12: "0 cent"/"1 cent" classified as ("cent", "cent"); "10 cent"/"20 cent"
converted and then refused by ``run``; brackets eaten by Rich; a stale labels.txt beside an
artifact; corrupt or non-UTF-8 embedded labels.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest
from conftest import assert_one_line_error, run_cli
from device_helpers import cached_plain_models, camera_like_frames

from edgecls.convert.metadata import append_files
from edgecls.labels import parse_labels, read_labels, unambiguous_labels_text, write_labels
from edgecls.spec import ModelSpec

ODD = [("0 cent", "1 cent"), ("10 cent", "20 cent"), ("0 a", "1 b"), ("photos [old]", "ünïcode ✓"),
       ("[bold]x[/]", "1"), ("2: two", "3, three")]


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return cached_plain_models(tmp_path_factory)


@pytest.mark.parametrize("labels", ODD)
def test_labels_file_round_trips_verbatim(labels: tuple[str, str], tmp_path: Path) -> None:
    write_labels(tmp_path / "labels.txt", labels)
    assert read_labels(tmp_path / "labels.txt") == labels


def test_id_form_only_when_ids_are_exactly_0_to_n_minus_1() -> None:
    assert parse_labels("0 cat\n1 dog\n") == ("cat", "dog")
    assert parse_labels("1 dog\n0 cat\n") == ("cat", "dog")
    assert parse_labels("10 cent\n20 cent\n") == ("10 cent", "20 cent")
    assert parse_labels("0 cent\n1 cent\n") == ("0 cent", "1 cent"), "ids that would merge two classes are not ids"
    assert parse_labels("0 cat\n1 dog\n", id_form=False) == ("0 cat", "1 dog")
    assert unambiguous_labels_text(("0 a", "1 b")) == "0 0 a\n1 1 b\n"


def artifact(model: Path, out: Path, labels: tuple[str, ...], *, labels_txt: bytes | None = None) -> Path:
    """``model`` with the files 'edgecls convert' embeds (spec JSON and plain labels.txt)."""
    spec = ModelSpec(labels=labels, head="sigmoid" if len(labels) == 2 else "softmax")
    files = {"labels.txt": labels_txt if labels_txt is not None else "".join(f"{x}\n" for x in labels).encode(),
             "edgecls.json": spec.to_json().encode()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(append_files(model.read_bytes(), files))
    return out


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("label_frames")
    for i, img in enumerate(camera_like_frames(["circle", "cross"], 2, size=(96, 96))):
        cv2.imwrite(str(folder / f"{i}.png"), img)
    return folder


def _labels_seen(out: Path) -> tuple[list[str], set[str]]:
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    return recs[0]["labels"], {r["label"] for r in recs if "event" not in r}


@pytest.mark.parametrize("labels", [ODD[0], ODD[1], ODD[3]])
def test_run_uses_embedded_labels_verbatim(labels: tuple[str, str], models: dict[str, Path], frames: Path, tmp_path: Path) -> None:
    model = artifact(models["sigmoid_u8"], tmp_path / "m" / "model.tflite", labels)
    (model.parent / "labels.txt").write_text("stale\nlabels\n")  # never read: the artifact has its own
    out = tmp_path / "r.jsonl"
    proc = run_cli("run", "--model", str(model), "--source", str(frames), "--headless", "--jsonl", str(out), check=True)
    start, seen = _labels_seen(out)
    assert start == list(labels) and seen <= set(labels)
    assert any(f" {label} " in proc.stdout for label in labels), proc.stdout


def test_labels_option_always_overrides(models: dict[str, Path], frames: Path, tmp_path: Path) -> None:
    model = artifact(models["sigmoid_u8"], tmp_path / "model.tflite", ("a", "b"))
    given = tmp_path / "mine.txt"
    given.write_text("yes [1]\nno [2]\n")
    out = tmp_path / "r.jsonl"
    run_cli("run", "--model", str(model), "--labels", str(given), "--source", str(frames), "--headless", "--quiet",
            "--jsonl", str(out), check=True)
    assert _labels_seen(out)[0] == ["yes [1]", "no [2]"]


@pytest.mark.parametrize(("payload", "needle"), [
    (b"\xff\xfe\x00c\x00a\x00t\n", "is not UTF-8"),
    (b"other\nnames\n", "name different labels"),
])
def test_bad_embedded_labels_refused_in_one_line(payload: bytes, needle: str, models: dict[str, Path], frames: Path,
                                                 tmp_path: Path) -> None:
    model = artifact(models["sigmoid_u8"], tmp_path / "model.tflite", ("cat", "dog"), labels_txt=payload)
    (tmp_path / "labels.txt").write_text("cat\ndog\n")  # no silent fallback to this one
    assert_one_line_error(run_cli("run", "--model", str(model), "--source", str(frames), "--headless"), needle)


def test_broken_embedded_archive_refused_not_replaced_by_labels_beside(models: dict[str, Path], frames: Path,
                                                                      tmp_path: Path) -> None:
    model = artifact(models["sigmoid_u8"], tmp_path / "model.tflite", ("cat", "dog"))
    data = bytearray(model.read_bytes())
    at = data.rfind(b"PK\x01\x02")  # damage the zip's central directory
    data[at:at + 4] = b"XXXX"
    model.write_bytes(bytes(data))
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    assert_one_line_error(run_cli("run", "--model", str(model), "--source", str(frames), "--headless"), "corrupt")


@pytest.mark.slow
def test_odd_class_names_round_trip_train_convert_run_field(tmp_path: Path) -> None:
    """Folders "0 cent", "1 cent [old]": train, convert (parity), run, field export, field check."""
    from edgecls.demo_data import DemoDataOptions, generate

    base = tmp_path / "demo"
    generate(base, DemoDataOptions(train_per_class=60, test_per_class=12, seed=5))
    names = {"circle": "0 cent", "cross": "1 cent [old]"}
    data = tmp_path / "data"
    for split in ("train", "test"):
        for src, dst in names.items():
            shutil.copytree(base / split / src, data / split / dst)
    run = tmp_path / "run"
    proc = run_cli("train", str(data / "train"), "--val-dir", str(data / "test"), "--out", str(run), "--epochs", "1", check=True)
    assert "0 cent, 1 cent [old]" in proc.stderr, proc.stderr
    run_cli("convert", str(run), "--quantize", "int8", "--calibration", "20", "--no-parity", check=True)
    model = run / "model_int8.tflite"
    out = tmp_path / "r.jsonl"
    run_cli("run", "--model", str(model), "--source", str(data / "test" / "0 cent"), "--headless", "--quiet",
            "--jsonl", str(out), check=True)
    start, seen = _labels_seen(out)
    assert start == ["0 cent", "1 cent [old]"] and seen <= set(start)
    assert read_labels(run / "labels.txt") == ("0 cent", "1 cent [old]")
    bundle = tmp_path / "bundle"
    run_cli("field", "export", str(run), "--data", str(data / "test"), "--out", str(bundle), "--count", "8", check=True)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["labels"] == ["0 cent", "1 cent [old]"]
    check = run_cli("field", "check", "--model", str(model), "--bundle", str(bundle))
    assert check.returncode in (0, 1) and "Traceback" not in check.stderr
    assert "field check" in check.stdout + check.stderr
