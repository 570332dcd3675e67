from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edgecls.demo_data import SHAPES, DemoDataOptions, generate
from edgecls.errors import DataError, OutputError
from edgecls.folders import load_scan, scan_folder


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_and_determinism(tmp_path: Path) -> None:
    opts = DemoDataOptions(classes=3, train_per_class=14, test_per_class=5, seed=7)
    counts = generate(tmp_path / "a", opts)
    assert counts == {"train": 42, "test": 15}
    generate(tmp_path / "b", opts)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    generate(tmp_path / "c", DemoDataOptions(classes=3, train_per_class=14, test_per_class=5, seed=8))
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    scan = scan_folder(tmp_path / "a" / "train")
    assert scan.classes == tuple(sorted(SHAPES[:3]))
    suffixes = {p.suffix for files in scan.files for p in files}
    assert {".png", ".jpg", ".webp", ".bmp"} <= suffixes
    loaded = load_scan(scan)
    assert loaded.x.shape == (42, 64, 64, 3) and not loaded.skipped


def test_refuses_bad_options(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--classes"):
        generate(tmp_path / "x", DemoDataOptions(classes=1))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="--force"):
        generate(tmp_path / "full", DemoDataOptions(train_per_class=1, test_per_class=1))
    assert (tmp_path / "full" / "keep.txt").exists()


def test_demo_video_is_camera_like_with_truth(tmp_path: Path) -> None:
    import json

    import cv2

    from edgecls.demo_data import DemoVideoOptions, generate_video

    out = tmp_path / "clip.avi"
    truths = generate_video(out, DemoVideoOptions(classes=3, seconds=2.0, fps=10, segment_s=0.5))
    assert len(truths) == 20 and truths[:5] == ["circle"] * 5 and truths[5] == "cross" and truths[10] == "triangle"
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 20 and frames[0].shape == (480, 640, 3)
    assert not (frames[0] == frames[1]).all(), "consecutive frames differ (motion and sensor noise)"
    truth = json.loads((tmp_path / "clip.avi.truth.json").read_text())
    assert truth["truth"] == truths and truth["fps"] == 10
    assert (out.stat().st_mode & 0o777) == (0o666 & ~_umask())
    with pytest.raises(DataError, match=r"\.avi"):
        generate_video(tmp_path / "clip.mp4", DemoVideoOptions())


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
