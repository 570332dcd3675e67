"""Parity as a library: every variant against float on the built-in test split, with named thresholds."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgecls.convert.diagnose import ROUNDING_RMSE_STEPS, diagnose
from edgecls.convert.export import MODES
from edgecls.convert.parity import ParityReport, Thresholds, parity, parse_variants, validation_data
from edgecls.errors import DataError
from edgecls.spec import load_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(trained_run: Path, demo_data: Path, tflite_models: Callable[[str], Path]) -> ParityReport:
    for mode in MODES:
        tflite_models(mode)
    return parity(trained_run, demo_data / "test", list(MODES), convert_missing=False, latency_repeats=50)


def test_every_variant_passes_the_default_thresholds(report: ParityReport) -> None:
    assert [v.name for v in report.variants] == list(MODES)
    assert report.passed, report.failures()
    assert report.count == 800
    for v in report.variants:
        assert v.float_accuracy == report.float_accuracy
        assert v.top1_agreement >= Thresholds().min_top1_agreement
        assert report.float_accuracy - v.accuracy <= Thresholds().max_accuracy_drop
        assert v.latency_ms > 0
        assert set(v.per_class_accuracy_change) == {"circle", "cross"}


def test_float_variants_track_float_closely(report: ParityReport) -> None:
    by = {v.name: v for v in report.variants}
    assert by["float32"].top1_agreement == 1.0 and by["float32"].max_abs_prob_diff < 1e-4
    assert by["float16"].max_abs_prob_diff < 0.01
    assert by["int8"].max_abs_prob_diff > by["float32"].max_abs_prob_diff  # quantization costs something


def test_sizes(report: ParityReport) -> None:
    by = {v.name: v.size_bytes for v in report.variants}
    assert by["int8"] / by["float32"] <= 0.26  # the size goal
    assert by["float16"] / by["float32"] < 0.55


def test_json_has_the_contract_fields(report: ParityReport) -> None:
    data = json.loads(report.to_json())
    assert data["passed"] is True and data["thresholds"] == {"min_top1_agreement": 0.99, "max_accuracy_drop": 0.01}
    for v in data["variants"].values():
        for key in ("accuracy", "float_accuracy", "top1_agreement", "max_abs_prob_diff", "size_bytes", "passed"):
            assert key in v


def test_thresholds_are_checked(report: ParityReport) -> None:
    with pytest.raises(DataError, match="--min-agreement"):
        Thresholds(min_top1_agreement=1.5).validate()
    with pytest.raises(DataError, match="unknown variant 'int4'"):
        parse_variants("int8,int4")
    assert parse_variants("int8, float16,x.tflite") == ["int8", "float16", "x.tflite"]


def test_validation_split_is_reproduced(trained_run: Path, tmp_path: Path) -> None:
    """A run trained with --val-split gets parity on the same held-out images."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("*.tflite"))
    history = json.loads((run / "history.json").read_text())
    assert history["val_dir"]  # the session run used a separate validation folder
    history.update(val_dir=None, val_split=0.2, seed=0)
    (run / "history.json").write_text(json.dumps(history))
    found = validation_data(run, load_spec(run / "spec.json"))
    assert found is not None
    data, where = found
    assert len(data.y) == 1200 and "validation split 0.2" in where  # 20 % of 3000 per class
    assert np.bincount(data.y).tolist() == [600, 600]


def test_diagnose_ranks_layers_and_finds_bad_calibration(trained_run: Path, demo_data: Path, tmp_path: Path) -> None:
    """Calibrated on flat dark images, the worst layer's error is many times that of the real calibration."""
    import cv2

    from edgecls.folders import load_scan, scan_folder

    x = load_scan(scan_folder(demo_data / "test")).x
    good = diagnose(trained_run, x, top=10)
    assert {e.layer for e in good} >= {"conv1", "conv2", "dense", "head"}
    ranks = [e.rmse_over_scale for e in good]
    assert ranks == sorted(ranks, reverse=True) and all(r > 0 for r in ranks)
    for cls in ("circle", "cross"):
        (tmp_path / "flat" / cls).mkdir(parents=True)
        for i in range(5):
            cv2.imwrite(str(tmp_path / "flat" / cls / f"{i}.png"), np.full((64, 64, 3), 10 + i, np.uint8))
    bad = diagnose(trained_run, x, data_dir=tmp_path / "flat", top=3)
    assert bad[0].rmse_over_scale > 5 * max(ranks)
    assert bad[0].rmse_over_scale > 10 * ROUNDING_RMSE_STEPS
    assert "calibrat" in bad[0].advice()
