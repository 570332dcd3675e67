"""Training stops when validation stops improving and keeps the best epoch; --epochs N is
exactly N epochs (``--epochs 5`` is the article)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgecls.demo_data import DemoDataOptions, generate

    out = tmp_path_factory.mktemp("early") / "data"
    generate(out, DemoDataOptions(train_per_class=40, test_per_class=10, seed=4))
    return out


@pytest.mark.slow
def test_default_stops_early_and_keeps_the_best_epoch(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = run_cli("train", str(data / "train"), "--val-dir", str(data / "test"), "--out", str(run),
                   "--patience", "1", "--max-epochs", "6", check=True)
    hist = json.loads((run / "history.json").read_text())
    val = hist["history"]["val_accuracy"]
    ran = hist["epochs"]
    assert hist["max_epochs"] == 6 and hist["patience"] == 1 and len(val) == ran <= 6
    best = max(range(ran), key=lambda i: (val[i], -i))
    assert hist["best_epoch"] == best + 1 and hist["best_val_accuracy"] == val[best]
    if ran < 6:
        assert ran == best + 2, "stopped one epoch (the patience) after the best"
    assert f"{ran} epochs run; best epoch {best + 1}" in proc.stdout, proc.stdout


@pytest.mark.slow
def test_fixed_epochs_run_them_all(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_cli("train", str(data / "train"), "--val-dir", str(data / "test"), "--out", str(run), "--epochs", "2", check=True)
    hist = json.loads((run / "history.json").read_text())
    assert hist["epochs"] == 2 == hist["max_epochs"] and hist["patience"] == 0 and len(hist["history"]["val_accuracy"]) == 2
