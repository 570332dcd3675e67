"""The one preprocessing contract: shape, colour, quality, speed-independent facts, and parity."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecls.errors import DataError
from edgecls.folders import load_scan, scan_folder
from edgecls.images import read_image
from edgecls.preprocess import INPUT_SIZE, resize_area, to_model_input

SIZES = [(480, 640), (720, 1280), (1080, 1920), (375, 500), (64, 64), (100, 80), (33, 47), (1, 1), (31, 640)]


def _natural(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 32), max(2, w // 32), 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    cv2.circle(img, (w // 2, h // 2), max(1, min(h, w) // 4), (20, 200, 40), -1)
    return img


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_any_size_gives_model_input(h: int, w: int) -> None:
    out = to_model_input(_natural(h, w), "bgr")
    assert out.shape == (INPUT_SIZE, INPUT_SIZE, 3)
    assert out.dtype == np.uint8
    assert out.flags["C_CONTIGUOUS"]


def test_colour_order_is_settled_once() -> None:
    bgr = _natural(480, 640)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    assert np.array_equal(to_model_input(bgr, "bgr"), to_model_input(rgb, "rgb"))
    # a pure blue BGR frame is blue (channel 2) in the RGB model input
    blue = np.zeros((480, 640, 3), np.uint8)
    blue[:, :, 0] = 255
    out = to_model_input(blue, "bgr")
    assert out[:, :, 2].min() == 255 and out[:, :, :2].max() == 0


def test_grey_and_alpha_inputs() -> None:
    grey = _natural(120, 90)[:, :, 0]
    out = to_model_input(grey, "bgr")
    assert np.array_equal(out[:, :, 0], out[:, :, 1])
    bgra = np.dstack([_natural(120, 90), np.full((120, 90), 7, np.uint8)])
    assert np.array_equal(to_model_input(bgra, "bgr"), to_model_input(bgra[:, :, :3], "bgr"))


def test_bad_inputs_are_refused_clearly() -> None:
    with pytest.raises(DataError, match="uint8"):
        to_model_input(np.zeros((10, 10, 3), np.float32), "bgr")
    with pytest.raises(DataError, match="shape"):
        to_model_input(np.zeros((10, 10, 2), np.uint8), "bgr")
    with pytest.raises(DataError, match="colour order"):
        to_model_input(np.zeros((10, 10, 3), np.uint8), "yuv")  # type: ignore[arg-type]


def test_no_aliasing_at_ten_times() -> None:
    """One-pixel stripes and a checkerboard must average to flat grey, not beat patterns."""
    stripes = np.zeros((480, 640, 3), np.uint8)
    stripes[:, ::2] = 255
    checker = np.indices((480, 640)).sum(axis=0) % 2 * 255
    checker = np.repeat(checker[:, :, None], 3, axis=2).astype(np.uint8)
    for img in (stripes, checker):
        out = to_model_input(img, "bgr").astype(int)
        assert abs(out.mean() - 127.5) < 1.5
        assert out.max() - out.min() <= 2, "a 10x downscale of a fine pattern must not alias"
    naive = cv2.resize(checker, (64, 64), interpolation=cv2.INTER_NEAREST)
    assert naive.max() - naive.min() > 200  # the pattern really does alias without averaging


@pytest.mark.parametrize(("h", "w"), [(480, 640), (720, 1280), (375, 500)])
def test_close_to_exact_area_average(h: int, w: int) -> None:
    """Mean absolute difference from OpenCV's exact INTER_AREA stays within 1.5 grey levels."""
    img = cv2.GaussianBlur(_natural(h, w, seed=h), (0, 0), 1.0)
    ref = cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(resize_area(img).astype(int) - ref).mean() <= 1.5


def test_deterministic() -> None:
    img = _natural(480, 640)
    assert np.array_equal(to_model_input(img, "bgr"), to_model_input(img.copy(), "bgr"))


def test_training_pipeline_and_device_path_agree_bit_for_bit(tmp_path: Path) -> None:
    """One file -> the same tensor through the training loader and through the device path."""
    for ci, cls in enumerate(("a", "b")):
        (tmp_path / cls).mkdir()
        for ext in (".png", ".jpg", ".webp", ".bmp", ".gif"):
            img = _natural(300 + 37 * ci, 410, seed=ci)
            ok, buf = cv2.imencode(ext, img)
            assert ok
            (tmp_path / cls / f"x{ext}").write_bytes(buf.tobytes())
    loaded = load_scan(scan_folder(tmp_path))
    assert len(loaded.skipped) == 0 and len(loaded.paths) == 10
    for path, tensor in zip(loaded.paths, loaded.x, strict=True):
        frame = read_image(path)  # what a device folder source hands to the loop (BGR)
        assert frame is not None
        assert np.array_equal(to_model_input(frame, "bgr"), tensor), path.name


def test_tf_data_pipeline_carries_the_same_values(tmp_path: Path) -> None:
    """The eval tf.data pipeline feeds the model exactly the prepared uint8 values."""
    pytest.importorskip("tensorflow")
    from edgecls.dataset import eval_dataset

    x = np.stack([to_model_input(_natural(480, 640, seed=s), "bgr") for s in range(3)])
    batch, _ = next(iter(eval_dataset(x, np.zeros(3))))
    assert np.array_equal(batch.numpy(), x.astype(np.float32))
