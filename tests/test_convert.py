"""Conversion: every mode gives a static, self-describing artifact that loads and agrees with its spec."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgecls.artifact import read_embedded
from edgecls.convert.export import DYNAMIC_SHAPE_OPS, MODES
from edgecls.convert.graph import read_graph
from edgecls.convert.runner import TFLiteModel
from edgecls.labels import read_labels
from edgecls.model import LABELS_FILE
from edgecls.tflite_metadata import find_metadata, read_metadata

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", MODES)
def test_artifact_describes_itself(mode: str, tflite_models: Callable[[str], Path], trained_run: Path) -> None:
    path = tflite_models(mode)
    assert path == trained_run / f"model_{mode}.tflite"
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["baseline.json", "edgecls.json", "labels.txt"]
    spec, labels = read_embedded(path)
    assert spec is not None and labels == read_labels(trained_run / LABELS_FILE) == spec.labels
    assert spec.quantization["mode"] == mode
    model = TFLiteModel(path, spec.head, len(spec.labels))
    # the embedded quantization is what the interpreter reports
    assert spec.quantization["input"] == model.input.as_dict()
    assert spec.quantization["output"] == model.output.as_dict()
    assert model.input.shape == (1, spec.input_size, spec.input_size, 3)
    # tools that read TFLite metadata see labels.txt as the output's axis labels
    meta = read_metadata(find_metadata(path.read_bytes()) or b"")
    assert meta.output_label_files == (("labels.txt", 2),)
    assert meta.input_image_size == spec.input_size
    assert (path.parent / "labels.txt").read_text() == "".join(f"{x}\n" for x in spec.labels)


@pytest.mark.parametrize("mode", MODES)
def test_graph_is_static(mode: str, tflite_models: Callable[[str], Path]) -> None:
    ops = read_graph(tflite_models(mode).read_bytes())
    assert not DYNAMIC_SHAPE_OPS.intersection(op.name for op in ops)
    for op in ops:
        for t in op.inputs + op.outputs:
            assert -1 not in t.shape_signature, (op.name, t.name, t.shape_signature)


def test_int8_is_full_integer(int8_model: Path) -> None:
    ops = read_graph(int8_model.read_bytes())
    # the sigmoid head is exported as [1 - p, p] (SUB, CONCATENATION) for standard clients
    assert [op.name for op in ops] == ["QUANTIZE", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE",
                                       "FULLY_CONNECTED", "FULLY_CONNECTED", "LOGISTIC", "QUANTIZE", "SUB",
                                       "CONCATENATION", "QUANTIZE"]
    for op in ops:
        for t in op.inputs + op.outputs:
            assert t.dtype in ("int8", "uint8", "int32"), (op.name, t.name, t.dtype)
    spec, _ = read_embedded(int8_model)
    assert spec is not None
    # raw camera pixels go straight in: the calibration spanned 0..255
    assert spec.quantization["input"] == {"dtype": "uint8", "scale": 1.0, "zero_point": 0}


def test_int8_raw_pixels_equal_the_formula(int8_model: Path, demo_data: Path) -> None:
    """Feeding raw uint8 pixels is what quantizing with the model's own parameters gives."""
    from edgecls.folders import load_scan, scan_folder

    model = TFLiteModel(int8_model, "sigmoid", 2)
    x = load_scan(scan_folder(demo_data / "test")).x[:20]
    for img in x:
        q = np.clip(np.round(img.astype(np.float32) / model.input.scale + model.input.zero_point), 0, 255)
        np.testing.assert_array_equal(model.quantize_input(img), q.astype(np.uint8)[None])


def test_softmax_run_converts_with_three_labels(demo_data_3: Path, tmp_path: Path) -> None:
    """A 3-class run (softmax head, untrained weights are enough here) gives 3 outputs and 3 labels."""
    from edgecls.convert.export import convert_run
    from edgecls.labels import write_labels
    from edgecls.model import build_model
    from edgecls.spec import ModelSpec, save_spec

    run = tmp_path / "run3"
    run.mkdir()
    labels = tuple(sorted(p.name for p in (demo_data_3 / "train").iterdir()))
    assert len(labels) == 3
    build_model(3).save(run / "model.keras")
    save_spec(run / "spec.json", ModelSpec(labels=labels, head="softmax", train_dir=str(demo_data_3 / "train")))
    write_labels(run / "labels.txt", labels)
    result = convert_run(run, "int8", calibration=60)
    assert result.calibration_count >= 60 and "SOFTMAX" in result.ops
    spec, embedded = read_embedded(result.path)
    assert spec is not None and embedded == labels
    model = TFLiteModel(result.path, "softmax", 3)
    probs = model.predict(np.zeros((2, 64, 64, 3), np.uint8))
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.02)
