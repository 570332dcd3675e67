"""The TensorFlow-free device install: a fresh venv, ``pip install ".[device]"`` (not
editable), then ``edgecls run`` on a video file with that venv's own entry point.

The venv is cached beside pytest's temp folders (pytest-of-USER/edgecls-device-venv), so
later sessions only reinstall edgecls itself. Skips only when pip cannot reach a registry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import REPO
from device_helpers import cached_plain_models, camera_like_frames, write_video

NETWORK_ERRORS = ("Could not find a version", "No matching distribution", "Failed to establish a new connection",
                  "Temporary failure in name resolution", "Network is unreachable", "ProxyError")


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=900)


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


@pytest.fixture(scope="session")
def device_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.getbasetemp().parent / "edgecls-device-venv"
    python = home / "bin" / "python"
    if not (home / ".complete").exists():
        shutil.rmtree(home, ignore_errors=True)
        venv.create(home, with_pip=True)
        proc = _pip(python, "install", "-q", f"{REPO}[device]")
        if proc.returncode != 0:
            if any(err in proc.stdout + proc.stderr for err in NETWORK_ERRORS):
                shutil.rmtree(home, ignore_errors=True)
                pytest.skip(f"pip cannot reach the package registry: {proc.stderr.strip().splitlines()[-1:]}")
            raise AssertionError(f"pip install .[device] failed:\n{proc.stdout}\n{proc.stderr}")
        (home / ".complete").write_text("ok\n")
    else:  # the dependencies are cached; the project itself may have changed since
        proc = _pip(python, "install", "-q", "--no-deps", "--force-reinstall", str(REPO))
        assert proc.returncode == 0, proc.stderr
    return home


@pytest.mark.slow
def test_device_install_runs_without_tensorflow(device_venv: Path, tmp_path_factory: pytest.TempPathFactory,
                                                tmp_path: Path) -> None:
    python = device_venv / "bin" / "python"
    listed = _pip(python, "list", "--format=json")
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "edgecls" in names and "ai-edge-litert" in names
    assert not names & {"tensorflow", "tensorflow-cpu", "keras", "tf-keras", "tensorflow-intel"}, names
    show = _pip(python, "show", "-f", "edgecls").stdout
    assert "Editable project location" not in show, "installed as a wheel, not editable"
    model = cached_plain_models(tmp_path_factory)["sigmoid_u8"]
    video = write_video(tmp_path / "cam.avi", camera_like_frames(["circle", "square"], 10))
    out = tmp_path / "r.jsonl"
    proc = subprocess.run([str(device_venv / "bin" / "edgecls"), "run", "--model", str(model), "--source", str(video),
                           "--headless", "--max-frames", "15", "--jsonl", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 15 + 2 and json.loads(lines[-2])["label"] in ("cat", "dog")  # + run_start, run_end
    # The same interpreter, asked directly: importing the whole runtime pulls in no TensorFlow.
    check = subprocess.run([str(python), "-c", "import sys, edgecls.device.cli, edgecls.device.loop; "
                            "print(sorted(m for m in sys.modules if m.startswith(('tensorflow', 'keras'))))"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert check.stdout.strip() == "[]", check.stdout + check.stderr
    # pip compiled the resize kernel into the installed package, and the runtime loads it.
    kernel = subprocess.run([str(python), "-c", "from edgecls.preprocess import KERNEL_STATUS; print(KERNEL_STATUS)"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert kernel.stdout.startswith(f"C kernel ({device_venv}"), kernel.stdout + kernel.stderr
    assert sys.prefix != str(device_venv)
    print(f"device venv {device_venv}: {_size_mb(device_venv):.0f} MB")


@pytest.mark.slow
def test_install_without_a_c_compiler_still_succeeds(device_venv: Path, tmp_path: Path) -> None:
    """The kernel is optional: with no working compiler (CC=false) the wheel still builds,
    without the kernel, and edgecls runs its numpy twin (same bytes: tests/test_preprocess.py)."""
    python = device_venv / "bin" / "python"
    # From a clean copy: pip builds in the tree, whose build/ may hold a kernel from before.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("*.so", "__pycache__", "build", "*.egg-info")
    for name in ("edgecls", "convert", "device"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    proc = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "wheel", "-q", "--no-deps",
                           "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CC": "false"})
    if proc.returncode != 0 and any(err in proc.stdout + proc.stderr for err in NETWORK_ERRORS):
        pytest.skip("pip cannot reach the package registry for setuptools")
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("edgecls-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert "edgecls/preprocess.py" in names
    assert not [n for n in names if n.endswith(".so")], names
