"""The one preprocessing contract: shape, colour, quality, speed-independent facts, and parity."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecls import preprocess
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


def _exact_reference(image: np.ndarray, size: int) -> np.ndarray:
    """The definition, written independently of edgecls: unreduced integer overlaps, int64."""
    h, w = image.shape[:2]

    def overlaps(n: int) -> np.ndarray:
        i, k = np.arange(size)[:, None], np.arange(n)[None, :]
        return np.maximum(0, np.minimum((i + 1) * n, (k + 1) * size) - np.maximum(i * n, k * size))

    sums = np.einsum("ik,jl,klc->ijc", overlaps(h), overlaps(w), image[:, :, :3].astype(np.int64))
    return ((sums + h * w // 2) // (h * w)).astype(np.uint8)


@pytest.mark.parametrize(("h", "w"), [(480, 640), (240, 320), (375, 500), (33, 47), (7, 300), (64, 64), (1, 1)])
def test_resize_is_the_exact_area_average(h: int, w: int) -> None:
    img = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    assert np.array_equal(resize_area(img), _exact_reference(img, INPUT_SIZE))


@pytest.mark.parametrize(("h", "w"), [(480, 640), (720, 1280), (375, 500)])
def test_close_to_opencv_inter_area(h: int, w: int) -> None:
    """OpenCV's INTER_AREA is the same average in floats: only its rounding differs."""
    img = cv2.GaussianBlur(_natural(h, w, seed=h), (0, 0), 1.0)
    diff = np.abs(resize_area(img).astype(int) - cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA).astype(int))
    assert diff.max() <= 1 and diff.mean() <= 0.01


def test_the_c_kernel_is_built_and_loaded() -> None:
    """scripts/test installs with a compiler: a kernel that silently fell back would hide here."""
    if os.environ.get("EDGECLS_NATIVE") == "0":
        pytest.skip("EDGECLS_NATIVE=0 asks for the numpy twin")
    assert preprocess.KERNEL_STATUS.startswith("C kernel"), preprocess.KERNEL_STATUS


def _kernel_cases() -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(7)
    sizes = [(480, 640), (240, 320), (720, 1280), (1080, 1920), (479, 641), (31, 640), (1, 1), (64, 64), (96, 1500)]
    sizes += [(int(a), int(b)) for a, b in rng.integers(1, 700, (12, 2))]
    cases = []
    for (h, w), size in zip(sizes, [64, 64, 64, 64, 64, 32, 7, 64, 64] + [64, 32, 7, 100] * 3, strict=True):
        img = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        cases += [(img[:, :, :3].copy(), size), (img, size), (img[:, :, :3], size)]
    return cases


def test_c_kernel_and_numpy_twin_give_the_same_bytes() -> None:
    """Every path of the kernel (16-bit and 32-bit, 3- and 4-byte pixels, row-strided views,
    colour swap) against the twin that runs where no compiler was."""
    if preprocess._KERNEL is None:
        pytest.skip(preprocess.KERNEL_STATUS)
    extra = np.random.default_rng(3).integers(0, 256, (500, 700, 3), dtype=np.uint8)
    cases = [*_kernel_cases(), (extra[::2], 64), (extra[::-1], 64), (extra[:, ::-1], 64), (extra[10:490, 30:670], 64)]
    for img, size in cases:
        for swap in (False, True):
            twin = preprocess._area_exact_numpy(np.ascontiguousarray(img), size)
            expected = twin[:, :, ::-1] if swap else twin
            assert np.array_equal(resize_area(img, size, swap_rb=swap), expected), (img.shape, img.strides, size, swap)
    for value in (0, 255):  # the extremes of the 16-bit lanes and the reciprocal
        assert (resize_area(np.full((480, 640, 3), value, np.uint8)) == value).all()


def test_numpy_twin_without_the_kernel(tmp_path: Path) -> None:
    """EDGECLS_NATIVE=0 takes the twin in a fresh process, and it writes the same model input."""
    frame = _natural(480, 640, seed=5)
    np.save(tmp_path / "frame.npy", frame)
    code = (
        "import sys, numpy as np; from edgecls import preprocess as p; "
        "np.save(sys.argv[2], p.to_model_input(np.load(sys.argv[1]), 'bgr')); print(p.KERNEL_STATUS)"
    )
    env = {**os.environ, "EDGECLS_NATIVE": "0"}
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "frame.npy"), str(tmp_path / "out.npy")],
                         env=env, capture_output=True, text=True, timeout=120, check=True)
    assert run.stdout.startswith("numpy (EDGECLS_NATIVE=0)")
    assert np.array_equal(np.load(tmp_path / "out.npy"), to_model_input(frame, "bgr"))


def test_kernel_is_safe_from_threads() -> None:
    """The device loop resizes on one thread while a reader thread may too: plans are shared."""
    frames = [_natural(h, w, seed=h) for h, w in ((480, 640), (240, 320), (481, 639), (300, 400))]
    expected = [to_model_input(f, "bgr") for f in frames]
    errors: list[str] = []

    def work(k: int) -> None:
        for i in range(200):
            j = (i + k) % len(frames)
            if not np.array_equal(to_model_input(frames[j], "bgr"), expected[j]):
                errors.append(f"thread {k} frame {j}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


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


def test_a_model_made_with_another_resize_is_refused() -> None:
    """Models record the resize they were trained with; running one through another would
    feed the network inputs it never saw, so the spec refuses it in one line."""
    from edgecls.errors import SpecError
    from edgecls.spec import ModelSpec

    data = {"labels": ["a", "b"], "head": "sigmoid", "resize": "area-pyramid-v3"}
    with pytest.raises(SpecError, match=r"'area-pyramid-v3' is not this edgecls's 'area-exact-v4': train it again"):
        ModelSpec.from_dict(data, "old/spec.json")
    assert ModelSpec.from_dict({**data, "resize": preprocess.RESIZE_METHOD}).resize == "area-exact-v4"
