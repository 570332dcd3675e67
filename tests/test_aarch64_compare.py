"""scripts/aarch64/compare.py, the verdict of check-aarch64, must be able to fail: a row
whose measurement is missing is NOT RUN, and NOT RUN is never counted as passed.

The host and device folders are written the way probe.py and the check's ``edgecls`` runs
write them; the complete pair passes, and removing any one measurement fails the verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

COMPARE = REPO / "scripts" / "aarch64" / "compare.py"


def _side(folder: Path, machine: str) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    tensors = {f"{group}{i}": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
               for group in ("arrays/", "images/", "video-ffv1.avi/") for i in range(2)}
    np.savez(folder / "preprocess.npz", **tensors)
    np.savez(folder / "infer.npz", **{k: np.full((1, 1), 7, np.uint8) for k in tensors})
    (folder / "preprocess.decoded.json").write_text(json.dumps({"video-ffv1.avi/0": "ab", "video-mjpg.avi/0": "cd"}))
    (folder / "info.json").write_text(json.dumps({
        "python": "3.11.2", "machine": machine, "libc": "glibc-2.36", "versions": {"edgecls": "0.1.0"},
        "resize": "C kernel", "imported": ["edgecls"], "import_failures": {}, "forbidden_loaded": [],
        "resize_detail": "C kernel (/opt/edgecls/lib/python3.11/site-packages/edgecls/_area.so)"}))
    (folder / "run.jsonl").write_text("".join(json.dumps({"frame": i, "label": "cat", "score": 0.9}) + "\n"
                                              for i in range(3)))
    (folder / "field-export.log").write_text("ok\n")
    (folder / "field.json").write_text(json.dumps({"passed": True, "count": 3, "figures": {}}))


def _compare(host: Path, device: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(COMPARE), str(host), str(device), "--suite", "bookworm",
                           "--runtime", "litert"], capture_output=True, text=True, timeout=60)


@pytest.fixture
def sides(tmp_path: Path) -> tuple[Path, Path]:
    host, device = tmp_path / "host", tmp_path / "device"
    _side(host, "x86_64")
    _side(device, "aarch64")
    np.savez(device / "preprocess-twin.npz", **dict(np.load(host / "preprocess.npz")))
    (device / "sitevenv.json").write_text(json.dumps({
        "system_site": True, "numpy_from_apt": True, "numpy": "1.24.2", "apt_module_ok": True,
        "apt_module": "pywt 1.4.1 from /usr/lib/python3/dist-packages/pywt"}))
    return host, device


def test_complete_measurements_pass(sides: tuple[Path, Path]) -> None:
    proc = _compare(*sides)
    assert proc.returncode == 0, proc.stdout
    assert "verdict: PASS: device and host agree exactly" in proc.stdout
    assert "NOT RUN" not in proc.stdout


@pytest.mark.parametrize(("side", "name", "row"), [
    ("host", "run.jsonl", "edgecls run --headless (FFV1 video)"),
    ("host", "field-export.log", "edgecls field check"),
    ("device", "preprocess-twin.npz", "preprocess: numpy twin, all of the above"),
    ("device", "sitevenv.json", "Pi OS venv (--system-site-packages) keeps apt's numpy"),
])
def test_a_missing_row_fails_the_verdict(sides: tuple[Path, Path], side: str, name: str, row: str) -> None:
    host, device = sides
    ((host if side == "host" else device) / name).unlink()
    proc = _compare(host, device)
    assert proc.returncode == 1, proc.stdout
    line = next(line for line in proc.stdout.splitlines() if line.strip().startswith(row))
    assert " NOT RUN " in line, line
    assert "verdict: INCOMPLETE: 1 check(s) did not run: " + row in proc.stdout


def test_a_kernel_not_from_the_wheel_fails(sides: tuple[Path, Path]) -> None:
    host, device = sides
    info = json.loads((device / "info.json").read_text())
    info["resize_detail"] = "numpy (the C kernel was not built: install edgecls where a C compiler is present)"
    (device / "info.json").write_text(json.dumps(info))
    proc = _compare(host, device)
    assert proc.returncode == 1
    assert any(line.strip().startswith("C kernel loaded from the aarch64 wheel") and " FAIL " in line
               for line in proc.stdout.splitlines()), proc.stdout
