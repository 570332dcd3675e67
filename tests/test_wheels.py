"""The release wheels (scripts/build-wheels) and what a user sees when the slow resize runs.

- The x86-64 wheel installs into a fresh venv where no C compiler is reachable, and the
  installed ``edgecls doctor`` reports the C kernel from the wheel; ``--serve`` works there
  too, since the preview is part of the ``[device]`` install.
- The auditwheel gate refuses a wheel whose kernel is built for another architecture.
- ``edgecls run`` and ``edgecls bench`` print exactly one warning line on the numpy twin.

The wheel is built once per session (sdist, then the wheel from it: about a minute).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, run_cli
from device_helpers import cached_plain_models, camera_like_frames, free_port, write_video

NETWORK_ERRORS = ("Could not find a version", "No matching distribution", "Failed to establish a new connection",
                  "Temporary failure in name resolution", "Network is unreachable", "ProxyError")
PLATFORM_WHEEL = REPO / "scripts" / "wheels" / "platform_wheel.py"


BIT_EXACT = """
import ctypes, numpy as np, edgecls.preprocess as pre
rng = np.random.default_rng(3)
images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(480, 640, 3), (481, 643, 4), (70, 100, 3)]]
twin = [pre._area_exact_numpy(np.ascontiguousarray(im[:, :, :3]), 64) for im in images]
ok = all(np.array_equal(pre._KERNEL.resize(im, 64, swap), t[:, :, ::-1] if swap else t)
         for im, t in zip(images, twin) for swap in (False, True))
build = ctypes.CDLL(pre.KERNEL_STATUS.split("(", 1)[1].rstrip(")")).edgecls_area_x86_v3()
print("x86-64-v3" if build else "baseline", "identical" if ok else "DIFFERENT")
"""


@pytest.fixture(scope="session")
def x86_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "build-wheels"), "--out", str(out),
                           "--platform", "linux-x86_64"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "EDGECLS_BUILD_PYTHON": sys.executable})
    if proc.returncode != 0 and any(err in proc.stdout + proc.stderr for err in NETWORK_ERRORS):
        pytest.skip("pip cannot reach the package registry for the build's setuptools")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "auditwheel finds manylinux_2_5_x86_64, within its tag manylinux_2_17_x86_64" in proc.stdout, proc.stdout
    (wheel,) = out.glob("edgecls-*-py3-none-manylinux_2_17_x86_64.whl")
    assert len(list(out.glob("edgecls-*.tar.gz"))) == 1
    return wheel


def test_build_wheels_without_zig_names_what_to_install(tmp_path: Path) -> None:
    bare = tmp_path / "venv"
    venv.create(bare, with_pip=False)
    proc = subprocess.run(["bash", str(REPO / "scripts" / "build-wheels"), "--out", str(tmp_path / "dist")],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "EDGECLS_BUILD_PYTHON": str(bare / "bin" / "python"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"build-wheels: error: zig not found: pip install ziglang (into {bare}/bin/python's environment) or put zig on PATH"]
    assert not (tmp_path / "dist").exists()


@pytest.mark.slow
def test_wrong_platform_kernel_is_refused_by_auditwheel(x86_wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(x86_wheel) as zf:
        assert [n for n in zf.namelist() if "_area" in n] == ["edgecls/_area.so"], "only its own kernel"
    kernel = tmp_path / "_area.so"
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "aarch64-linux-gnu.2.17", "-O2", "-shared",
                    "-fPIC", "-o", str(kernel), str(REPO / "edgecls" / "_area.c")], check=True, timeout=300)
    made = subprocess.run([sys.executable, str(PLATFORM_WHEEL), "make", str(x86_wheel), str(kernel),
                           "manylinux_2_17_x86_64", str(tmp_path / "bad")], capture_output=True, text=True, check=True)
    bad = Path(made.stdout.strip())
    proc = subprocess.run([sys.executable, str(PLATFORM_WHEEL), "check", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert f"platform_wheel: error: auditwheel does not accept {bad.name} as manylinux_2_17_x86_64" in proc.stderr
    assert "aarch64" in proc.stdout + proc.stderr
    good = subprocess.run([sys.executable, str(PLATFORM_WHEEL), "check", str(x86_wheel)], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr


@pytest.mark.slow
def test_x86_wheel_installs_and_runs_without_a_compiler(x86_wheel: Path, tmp_path: Path,
                                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path / "venv"
    venv.create(home, with_pip=True)
    # No compiler anywhere: CC is false and PATH holds only the venv's own scripts.
    env = {"HOME": str(tmp_path), "PATH": str(home / "bin"), "CC": "false", "LANG": "C.UTF-8",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", **{k: v for k, v in os.environ.items() if k.startswith("PIP_")}}
    assert shutil.which("cc", path=env["PATH"]) is None and shutil.which("gcc", path=env["PATH"]) is None
    # the registry's wheels come from pip's cache when they are in it
    env["XDG_CACHE_HOME"] = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    proc = subprocess.run([str(home / "bin" / "python"), "-m", "pip", "install", "-q", f"{x86_wheel}[device]"],
                          capture_output=True, text=True, timeout=900, env=env)
    if proc.returncode != 0 and any(err in proc.stdout + proc.stderr for err in NETWORK_ERRORS):
        pytest.skip("pip cannot reach the package registry for the device dependencies")
    assert proc.returncode == 0, proc.stderr
    edgecls = str(home / "bin" / "edgecls")
    doctor = subprocess.run([edgecls, "doctor"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    site = next((home / "lib").glob("python3.*/site-packages"))
    assert f"resize: C kernel ({site}/edgecls/_area.so)" in doctor.stdout, doctor.stdout + doctor.stderr
    # The wheel's kernel (either of its x86 builds) gives the numpy twin's bytes.
    for force, build in (("0", "x86-64-v3"), ("1", "baseline")):
        exact = subprocess.run([str(home / "bin" / "python"), "-c", BIT_EXACT], capture_output=True, text=True,
                               timeout=120, env={**env, "EDGECLS_X86_BASELINE": force}, cwd=tmp_path)
        if build == "x86-64-v3" and exact.stdout.startswith("baseline"):
            build = "baseline"  # an older CPU than Haswell runs the tests
        assert exact.stdout.split() == [build, "identical"], exact.stdout + exact.stderr
    # --serve in the same [device] install: the preview's dependencies came with it.
    model = cached_plain_models(tmp_path_factory)["sigmoid_u8"]
    video = write_video(tmp_path / "cam.avi", camera_like_frames(["circle", "square"], 5))
    run = subprocess.run([edgecls, "run", "--model", str(model), "--source", str(video), "--headless", "--quiet",
                          "--max-frames", "10", "--serve", str(free_port())],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "done: 10 frames" in run.stderr and "warning" not in run.stderr.lower(), run.stderr


@pytest.mark.slow
def test_run_and_bench_warn_once_on_the_numpy_twin(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    model = cached_plain_models(tmp_path_factory)["sigmoid_u8"]
    video = write_video(tmp_path / "cam.avi", camera_like_frames(["circle"], 4))
    run_args = ("run", "--model", str(model), "--source", str(video), "--headless", "--quiet", "--max-frames", "3")
    bench_args = ("bench", "--model", str(model), "--frames", "3", "--warmup", "1")
    for args in (run_args, bench_args):
        slow = run_cli(*args, env={"EDGECLS_NATIVE": "0"}, check=True)
        warnings = [line for line in slow.stderr.splitlines() if "numpy twin" in line]
        assert warnings == [
            "warning: resizing with the numpy twin, about 100x slower a frame than the C kernel (EDGECLS_NATIVE=0); "
            "fix: install edgecls from its wheel for this platform (x86-64/aarch64 Linux, macOS), or sudo apt "
            "install gcc, then reinstall edgecls from its checkout: pip install --force-reinstall --no-deps ."], slow.stderr
        fast = run_cli(*args, check=True)
        assert "numpy twin" not in fast.stderr + fast.stdout
