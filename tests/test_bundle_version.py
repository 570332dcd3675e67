"""Bundle format version 3 (no int8_dequant.npy) is written; version 2 is still read.

A bundle made with synthetic arrays (no model needed): the format, not the figures, is tested.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from edgecls.bundle import (
    ARRAY_FILES,
    BUNDLE_VERSION,
    DEFAULT_TOLERANCES,
    MANIFEST,
    BundleItem,
    Tolerance,
    open_bundle,
    write_bundle,
)
from edgecls.errors import DataError
from edgecls.fsutil import npy_bytes
from edgecls.spec import ModelSpec

N = 4


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    spec = ModelSpec(labels=("a", "b"), head="sigmoid", input_size=8)
    items = [BundleItem(f"images/{i:04d}.png", spec.labels[i % 2], i % 2, "src.png", "stratified", 0.5)
             for i in range(N)]
    arrays = {
        "tensors": np.zeros((N, 8, 8, 3), np.uint8),
        "float_probs": np.full((N, 2), 0.5),
        "int8_raw": np.zeros((N, 2), np.uint8),
        "int8_raw_builtin": np.zeros((N, 2), np.uint8),
    }
    tolerances = {**DEFAULT_TOLERANCES, "min_top1_agreement": Tolerance(0.9, "test")}
    return write_bundle(tmp_path / "bundle", model_name="m.tflite", model_sha256="0" * 64, edgetpu_sha256=None,
                        spec=spec, items=items, images=[b"png"] * N, arrays=arrays, host={}, tolerances=tolerances)


def test_version_3_has_no_dequantized_copy(bundle: Path) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    assert manifest["version"] == BUNDLE_VERSION == 3
    assert "int8_dequant.npy" not in manifest["files"] and "int8_dequant" not in ARRAY_FILES
    with open_bundle(bundle) as b:
        assert b.int8_raw.shape == (N, 2)


def test_version_2_is_still_read(bundle: Path) -> None:
    """A version 2 bundle lists int8_dequant.npy: it is hash-checked like any file, then ignored."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    data = npy_bytes(np.zeros((N, 2)))
    (bundle / "int8_dequant.npy").write_bytes(data)
    manifest["files"]["int8_dequant.npy"] = hashlib.sha256(data).hexdigest()
    manifest["version"] = 2
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with open_bundle(bundle) as b:
        assert b.int8_raw.shape == (N, 2)
    (bundle / "int8_dequant.npy").write_bytes(data + b"x")
    with pytest.raises(DataError, match=r"int8_dequant\.npy does not match its recorded sha256"), open_bundle(bundle):
        pass


def test_a_newer_version_is_refused_in_one_line(bundle: Path) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["version"] = BUNDLE_VERSION + 1
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"this edgecls reads up to 3: upgrade edgecls"), open_bundle(bundle):
        pass
