"""``doctor`` names a numpy ABI clash when picamera2 cannot import because of it.

On Pi OS, apt's picamera2 (through simplejpeg) is compiled against Bookworm's numpy 1.24;
a numpy 2 in a ``--system-site-packages`` venv shadows it and the import fails with an
error that says nothing about numpy versions. picamera2 itself cannot exist here (no
libcamera), so a ``picamera2`` package stands in whose import does what apt's does: load a
real extension compiled against numpy 1.x (PyWavelets 1.4.1's manylinux wheel, built
before numpy 2) under this venv's numpy 2. Skips only when the registry is unreachable.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

NUMPY1_BUILT = "pywavelets==1.4.1"


@pytest.mark.skipif(int(np.__version__.split(".")[0]) < 2, reason="needs numpy 2 in this venv to clash")
def test_doctor_names_a_numpy_abi_clash(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                           NUMPY1_BUILT, "-d", str(tmp_path)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"cannot download {NUMPY1_BUILT}: {proc.stderr.strip().splitlines()[-1:]}")
    (wheel,) = tmp_path.glob("*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    (site / "picamera2").mkdir()
    (site / "picamera2" / "__init__.py").write_text("import pywt  # noqa: F401  (built against numpy 1.x, as apt's is)\n")
    out = run_cli("doctor", env={"PYTHONPATH": str(site)}).stdout
    line = next(line for line in out.splitlines() if "picamera2:" in line)
    assert f"this venv loads numpy {np.__version__}" in line and "a numpy ABI clash" in line, out
    assert 'fix: pip install "numpy<2" into this venv' in out, out
    # Without the clash, the plain message stays.
    plain = run_cli("doctor").stdout
    assert "numpy ABI clash" not in plain
