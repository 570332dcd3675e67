"""edgecls.tensorio against the formulas it stands for, on a duck-typed interpreter (no model)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edgecls.heads import probabilities, top1
from edgecls.litert import LiteRTModel, Runtime
from edgecls.tensorio import (
    RAW_PIXELS,
    Normalization,
    TensorInfo,
    dequantize,
    identity_input,
    input_info,
    make_input_encoder,
    make_output_decoder,
    output_info,
    top_k,
)

PIXELS = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)


def info(dtype: Any, scale: float, zero: int, shape: tuple[int, ...] = (1, 8, 8, 3)) -> TensorInfo:
    return TensorInfo(shape, np.dtype(dtype), scale, zero)


def test_identity_uint8_input_is_the_pixels_themselves() -> None:
    tensor = make_input_encoder(info(np.uint8, 1.0, 0))(PIXELS)
    assert tensor.dtype == np.uint8 and tensor.shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(tensor[0], PIXELS)


@pytest.mark.parametrize(("dtype", "scale", "zero"), [(np.int8, 1.0, -128), (np.uint8, 0.9, 3), (np.int8, 0.5, 0)])
def test_quantized_input_follows_the_affine_formula(dtype: Any, scale: float, zero: int) -> None:
    lim = np.iinfo(dtype)
    want = np.clip(np.rint(PIXELS.astype(np.float64) / scale) + zero, lim.min, lim.max).astype(dtype)
    np.testing.assert_array_equal(make_input_encoder(info(dtype, scale, zero))(PIXELS)[0], want)


def test_normalisation_reaches_float_and_quantized_inputs() -> None:
    norm = Normalization(127.5, 127.5, "test")
    real = (PIXELS.astype(np.float64) - 127.5) / 127.5
    got = make_input_encoder(info(np.float32, 0.0, 0), norm)(PIXELS)[0]
    np.testing.assert_allclose(got, real, atol=1e-6)
    scale, zero = 2 / 255, 128
    want = np.clip(np.rint(real / scale) + zero, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(make_input_encoder(info(np.uint8, scale, zero), norm)(PIXELS)[0], want)


def test_pycoral_fast_path_only_when_the_transform_is_the_identity() -> None:
    assert identity_input(info(np.uint8, 1.0, 0), RAW_PIXELS)
    assert identity_input(info(np.uint8, 1 / 128, 128), Normalization(128.0, 128.0))
    assert not identity_input(info(np.uint8, 2 / 255, 128), RAW_PIXELS)
    assert not identity_input(info(np.float32, 0.0, 0), RAW_PIXELS)


@pytest.mark.parametrize(("shape", "head"), [((1, 1), "sigmoid"), ((1, 2), "sigmoid"), ((1, 2), "softmax"),
                                           ((1, 3), "softmax"), ((1, 100), "softmax")])
def test_decoder_equals_dequantize_then_heads(shape: tuple[int, ...], head: str) -> None:
    out = info(np.uint8, 1 / 256, 0, shape)
    raw = np.random.default_rng(1).integers(0, 256, shape).astype(np.uint8)
    want = probabilities(dequantize(raw, out)[0], head)
    np.testing.assert_allclose(make_output_decoder(out, head)(raw), want, rtol=0, atol=1e-12)
    assert len(want) == (2 if head == "sigmoid" else shape[1])


def test_top_k_orders_best_first_and_breaks_ties_low() -> None:
    values = [0.2, 0.5, 0.5, 0.1]
    assert top_k(values, 1) == [1] == [int(top1(np.array(values)))]
    assert top_k(values, 3) == [1, 2, 0]
    assert top_k(values, 10) == [1, 2, 0, 3]


class FakeInterpreter:
    """The five methods tensorio and LiteRTModel use, doubling its input."""

    def __init__(self) -> None:
        self.tensor: np.ndarray | None = None

    def get_input_details(self) -> list[dict[str, Any]]:
        return [{"index": 0, "shape": np.array([1, 2]), "dtype": np.uint8, "quantization": (1.0, 0)}]

    def get_output_details(self) -> list[dict[str, Any]]:
        return [{"index": 1, "shape": np.array([1, 2]), "dtype": np.int8, "quantization": (0.5, -1)}]

    def set_tensor(self, index: int, tensor: np.ndarray) -> None:
        self.tensor = tensor

    def allocate_tensors(self) -> None:
        pass

    def invoke(self) -> None:
        pass

    def get_tensor(self, index: int) -> np.ndarray:
        assert self.tensor is not None
        return (self.tensor * 2).astype(np.int8)


def test_functions_work_on_any_interpreter_shape() -> None:
    interp = FakeInterpreter()
    assert input_info(interp) == TensorInfo((1, 2), np.dtype(np.uint8), 1.0, 0)
    assert output_info(interp).as_dict() == {"dtype": "int8", "scale": 0.5, "zero_point": -1}
    fake = Runtime("fake", "0", lambda **_: interp, lambda *_: None, None)
    raw = LiteRTModel(b"model", rt=fake).invoke(np.array([[3, 4]], dtype=np.uint8))
    np.testing.assert_array_equal(raw, [[6, 8]])
    np.testing.assert_allclose(dequantize(raw, output_info(interp)), [[3.5, 4.5]])
