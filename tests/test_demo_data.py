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
    assert counts == {"train": 42, "val": 15, "test": 15}
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


def test_three_splits_each_their_own_images(tmp_path: Path) -> None:
    """val/ is drawn apart from train/ and test/, so choosing an epoch on it leaves test/ unseen;
    adding it leaves train/ and test/ as they were."""
    counts = generate(tmp_path / "a", DemoDataOptions(train_per_class=6, test_per_class=4, seed=2))
    assert counts == {"train": 12, "val": 8, "test": 8}
    generate(tmp_path / "b", DemoDataOptions(train_per_class=6, test_per_class=4, seed=2, val_per_class=0))
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["test", "train"]
    for split in ("train", "test"):
        assert _digest(tmp_path / "a" / split) == _digest(tmp_path / "b" / split)
    files = {split: {p.read_bytes() for p in (tmp_path / "a" / split).rglob("*.*")} for split in ("train", "val", "test")}
    assert not files["val"] & files["test"] and not files["val"] & files["train"]
    with pytest.raises(DataError, match="--val-per-class"):
        generate(tmp_path / "c", DemoDataOptions(val_per_class=-1))


def test_hard_cases_are_hard_but_visible() -> None:
    """Every shape is at least MIN_SHAPE_PX across on the 64x64 model input, a faint one
    differs from its background by at least FAINT_LUMA[0] grey levels, and no picture is
    wider than 16:9; about one image in ten is still a hard case, half of them faint."""
    import numpy as np

    from edgecls.demo_data import FAINT_LUMA, MAX_ASPECT, MIN_SHAPE_PX, describe, render

    drawn = list(describe(DemoDataOptions(seed=5), "train", 600).values())
    hard = [d for d in drawn if d.hard]
    faint = [d for d in drawn if d.faint]
    assert 0.06 < len(hard) / len(drawn) < 0.14 and 0.3 < len(faint) / len(hard) < 0.7
    assert min(d.size_px for d in drawn) >= MIN_SHAPE_PX - 1e-9
    assert max(d.size_px for d in hard) < min(MIN_SHAPE_PX * 2, 2 * 0.18 * 64 + 1e-9), "hard shapes stay small"
    assert min(d.contrast for d in faint) >= FAINT_LUMA[0] - 1, "rounding to whole grey levels costs under one"
    assert max(d.contrast for d in faint) <= FAINT_LUMA[1] + 1
    rng = np.random.default_rng(1)
    shapes = [render("circle", rng).shape[:2] for _ in range(300)]
    assert max(max(h, w) / min(h, w) for h, w in shapes) <= MAX_ASPECT + 1e-9
    assert max(max(h, w) / min(h, w) for h, w in shapes) > 1.6, "pictures still come in many shapes"
