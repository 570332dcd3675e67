"""Signed update packages, the on-device gate, the zero-downtime swap, probation and rollback.

Real parts throughout: packages made from the session's trained run by the real
exporter and signed with real Ed25519 keys, real interpreters, a device that is a real
``edgecls run`` process playing a recording at camera speed, and real ``kill -9``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_one_line_error, run_cli
from tests.device_helpers import camera_like_frames, free_port, write_video
from tests.update_helpers import drop, flip_byte, start_device, swap_gap

#: Slow: the module's fixtures train (once per session), convert and package real models.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

#: Reference images per field bundle: enough for every figure, cheap to export and check.
COUNT = 40
FPS = 30.0


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from edgecls.package import keygen

    d = tmp_path_factory.mktemp("keys")
    good_key, good_pub = keygen(d / "good")
    _, other_pub = keygen(d / "other")
    return {"key": good_key, "pub": good_pub, "other_key": d / "other.key", "other_pub": other_pub}


def _repack(src: Path, out: Path, key: Path | None, pub: Path, *, model: Path | None = None,
            edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """A package made from another one's members (optionally another model or an edited spec),
    properly signed: the signature is valid, what it vouches for is not."""
    from edgecls.package import load_public_keys, open_package, write_package

    with tempfile.TemporaryDirectory() as tmp:
        open_package(src, load_public_keys([pub]), Path(tmp))
        manifest = json.loads((Path(tmp) / "manifest.json").read_text())
        meta = {k: manifest[k] for k in ("version", "created", "source_run", "spec")}
        if edit is not None:
            edit(meta)
        write_package(out, model or Path(tmp) / "model.tflite", Path(tmp) / "bundle", meta, key)
    return out


def _without_signature(src: Path, out: Path) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename != "manifest.sig":
                zout.writestr(info, zin.read(info))
    return out


@pytest.fixture(scope="module")
def packages(trained_run: Path, demo_data: Path, keys: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """v1 (the trained run), v2 (the same network re-calibrated: another int8 model), and
    the packages the gate must refuse."""
    from edgecls.convert.export import convert_run
    from edgecls.convert.package import make_package

    d = tmp_path_factory.mktemp("packages")
    data = demo_data / "test"
    run_a = d / "run_a"
    shutil.copytree(trained_run, run_a, ignore=shutil.ignore_patterns("*.tflite"))
    v1 = make_package(run_a, d / "v1.edgecls", key=keys["key"], data=data, version="v1", count=COUNT).path
    run_b = d / "run_b"
    shutil.copytree(trained_run, run_b, ignore=shutil.ignore_patterns("*.tflite"))
    convert_run(run_b, "int8", calibration=64)
    v2 = make_package(run_b, d / "v2.edgecls", key=keys["key"], data=data, version="v2", count=COUNT).path
    recalibrated = convert_run(run_b, "int8", d / "recalibrated.tflite", calibration=16).path

    def reversed_labels(meta: dict[str, Any]) -> None:
        meta["spec"]["labels"] = meta["spec"]["labels"][::-1]

    def size96(meta: dict[str, Any]) -> None:
        meta["spec"]["input_size"] = 96

    return {
        "v1": v1, "v2": v2,
        "byte_changed": flip_byte(v2, d / "byte_changed.edgecls"),
        "unsigned": _without_signature(v2, d / "unsigned.edgecls"),
        "untrusted": _repack(v2, d / "untrusted.edgecls", keys["other_key"], keys["pub"]),
        "recalibrated": _repack(v2, d / "recalibrated.edgecls", keys["key"], keys["pub"], model=recalibrated),
        "other_bundle": _repack(v1, d / "other_bundle.edgecls", keys["key"], keys["pub"],
                                model=run_b / "model_int8.tflite", edit=lambda m: m.update(version="v2-other-bundle")),
        "labels": _repack(v2, d / "labels.edgecls", keys["key"], keys["pub"], edit=reversed_labels),
        "size96": _repack(v2, d / "size96.edgecls", keys["key"], keys["pub"], edit=size96),
    }


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 120 s camera-like recording (320x240, 30 fps): long enough for every refusal and a swap."""
    frames = camera_like_frames(["circle", "square"], 45, size=(320, 240))
    return write_video(tmp_path_factory.mktemp("video") / "cam.avi", frames * 40, FPS)


@pytest.fixture(scope="module")
def base_store(packages: dict[str, Path], keys: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("store") / "store"
    proc = run_cli("store", "install", str(packages["v1"]), "--store", str(store), "--trust", str(keys["pub"]), check=True)
    assert "installed v1" in proc.stdout, proc.stdout
    return store


def _fresh_store(base: Path, at: Path) -> Path:
    shutil.copytree(base, at, ignore=shutil.ignore_patterns("lock"))
    return at


def _sha(package: Path) -> str:
    with zipfile.ZipFile(package) as zf:
        return str(json.loads(zf.read("manifest.json"))["model_sha256"])


def _events(store: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (store / "history.jsonl").read_text().splitlines()]


# -- the package file on its own (host or device, no interpreter)


def test_package_verify(packages: dict[str, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    ok = run_cli("package", "verify", str(packages["v2"]), "--trust", str(keys["pub"]), check=True)
    assert "ok:" in ok.stdout and "version v2" in ok.stdout
    truncated = tmp_path / "truncated.edgecls"
    truncated.write_bytes(packages["v2"].read_bytes()[: packages["v2"].stat().st_size // 2])
    not_a_key = tmp_path / "trust.pub"
    not_a_key.write_text("ssh-rsa AAAA not an ed25519 pem\n")
    for package, trust, needle in (
        (packages["byte_changed"], keys["pub"], "model.tflite"),
        (packages["unsigned"], keys["pub"], "is unsigned"),
        (packages["untrusted"], keys["pub"], "matches none of the 1 trusted key"),
        (truncated, keys["pub"], "truncated or corrupt"),
        (packages["v2"], not_a_key, "is not a PEM public key"),
        (packages["v2"], keys["key"], "that is a private key"),
    ):
        assert_one_line_error(run_cli("package", "verify", str(package), "--trust", str(trust)), needle)


def test_hostile_members_refused(packages: dict[str, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    """A member the signed manifest does not list, or a path leaving the folder, is refused before unpacking."""
    for name, needle in (("extra.py", "holds 'extra.py', which its signed manifest does not list"), ("../escape.txt", "unsafe path")):
        evil = tmp_path / "evil.edgecls"
        shutil.copyfile(packages["v2"], evil)
        with zipfile.ZipFile(evil, "a") as zf:
            zf.writestr(name, b"print('owned')\n")
        assert_one_line_error(run_cli("package", "verify", str(evil), "--trust", str(keys["pub"])), needle)
    assert not (tmp_path.parent / "escape.txt").exists()


# -- the live gate


def test_live_update_refusals_then_swap(packages: dict[str, Path], keys: dict[str, Path], base_store: Path,
                                        recording: Path, tmp_path: Path) -> None:
    """Every bad package is refused with its reason while the old model keeps classifying;
    then the good one is swapped in between two frames, on a recording at camera speed."""
    store = _fresh_store(base_store, tmp_path / "store")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    port = free_port()
    device = start_device(store, keys["pub"], recording, tmp_path, inbox=inbox, probation=2.0,
                          extra=("--serve", f"127.0.0.1:{port}"))
    try:
        device.wait_for("classifying")
        messages = {}
        for name, needle in (("byte_changed", "model.tflite"), ("unsigned", "is unsigned"),
                             ("untrusted", "matches none of the 1 trusted key"),
                             ("recalibrated", "(b) raw outputs vs host int8"),
                             ("other_bundle", "but the bundle was made for"),
                             ("labels", "labels: the manifest says"), ("size96", "input size")):
            drop(packages[name], inbox)
            text = device.wait_for(f"refused {name}.edgecls")
            line = next(x for x in text.splitlines() if f"refused {name}.edgecls" in x)
            assert needle in line, line
            assert "still running v1" in line, line
            reason = inbox / "refused" / f"{name}.edgecls.reason.txt"
            deadline = time.monotonic() + 10
            while not reason.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert reason.read_text().strip() in line
            messages[name] = line
        v1 = _sha(packages["v1"])
        assert {r["model_sha256"] for r in device.records()} == {v1}, "a refused package changed the running model"
        drop(packages["v2"], inbox)
        device.wait_for("probation passed")
        v2 = _sha(packages["v2"])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as r:
            status = json.loads(r.read())
        assert (status["model"]["sha256"], status["model"]["version"]) == (v2, "v2"), status["model"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        assert f'edgecls_model{{sha256="{v2}",version="v2"}} 1.0' in metrics, metrics
        assert f'edgecls_model{{sha256="{v1}",version="v1"}} 0.0' in metrics, metrics
        assert device.stop() == 0
    finally:
        device.kill9()
    for name, line in messages.items():
        print(name, "->", line.split(" ", 1)[1])
    records = device.records()
    gap, first = swap_gap(records, v2)
    print(f"swap gap {gap * 1000:.1f} ms at frame {first} (frame interval {1000 / FPS:.1f} ms)")
    assert gap < 1.0, f"the swap stalled the loop for {gap:.3f} s"  # the goal (<= 2 intervals) is in BENCHMARKS.md
    indexes = [r["source_index"] for r in records]
    assert indexes == list(range(indexes[0], indexes[0] + len(indexes))), "a frame's result was lost"
    assert records[first]["model_version"] == "v2" and records[first - 1]["model_version"] == "v1"
    events = [e["event"] for e in _events(store)]
    assert events.count("refused") == 7 and events[-2:] == ["swapped", "confirmed"], events
    assert json.loads((store / "state.json").read_text())["current"] == v2


STEPS = ("verify", "check", "swap", "probation")


@pytest.mark.parametrize("step", STEPS)
def test_kill9_at_each_step(step: str, packages: dict[str, Path], keys: dict[str, Path], base_store: Path,
                            recording: Path, tmp_path: Path) -> None:
    """kill -9 in the middle of an update, then a restart: the device runs a committed, verified model."""
    store = _fresh_store(base_store, tmp_path / "store")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    device = start_device(store, keys["pub"], recording, tmp_path, inbox=inbox, probation=60.0,
                          env={"EDGECLS_TEST_PAUSE_AT": step})
    try:
        device.wait_for("classifying")
        drop(packages["v2"], inbox)
        device.wait_for(f"test pause at {step}")
    finally:
        device.kill9()
    again = start_device(store, keys["pub"], recording, tmp_path, realtime=False, extra=("--max-frames", "5"), tag="again")
    assert again.proc.wait(120) == 0, again.text()
    records = again.records()
    assert len(records) == 5
    v1 = _sha(packages["v1"])
    assert {r["model_sha256"] for r in records} == {v1}, (step, records[0])
    state = json.loads((store / "state.json").read_text())
    assert state["current"] == v1 and state["probation"] is None
    assert not list((store / "tmp").iterdir())
    assert sorted(p.name for p in (store / "models").iterdir()) == [v1]
    if step == "probation":
        assert _events(store)[-1]["event"] == "recovered", _events(store)[-1]
    print(f"kill -9 at {step}: restarted on {records[0]['model_version']} ({v1[:12]}); state {state}")


def test_crash_during_probation_rolls_back(packages: dict[str, Path], keys: dict[str, Path], base_store: Path,
                                           recording: Path, tmp_path: Path) -> None:
    """A model that kills the process (SIGSEGV) on its first frame: the restart runs the previous model."""
    store = _fresh_store(base_store, tmp_path / "store")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    device = start_device(store, keys["pub"], recording, tmp_path, inbox=inbox, probation=60.0,
                          env={"EDGECLS_TEST_BREAK": "v2:crash"})
    try:
        device.wait_for("classifying")
        drop(packages["v2"], inbox)
        assert device.proc.wait(120) == -11, device.text()
    finally:
        device.kill9()
    again = start_device(store, keys["pub"], recording, tmp_path, inbox=inbox, realtime=False,
                         extra=("--max-frames", "5"), tag="again")
    assert again.proc.wait(120) == 0, again.text()
    assert {r["model_version"] for r in again.records()} == {"v1"}
    last = _events(store)[-1]
    assert last["event"] == "recovered" and "restarted during the probation" in last["reason"], last
    assert not list((inbox / ".taken").iterdir()), "an accepted package stayed in the inbox"
    print("crash in probation ->", last)


def test_error_during_probation_falls_back_live(packages: dict[str, Path], keys: dict[str, Path], base_store: Path,
                                                recording: Path, tmp_path: Path) -> None:
    """A model that raises on a frame: the slot puts the previous one back on that very frame; no result is lost."""
    store = _fresh_store(base_store, tmp_path / "store")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    device = start_device(store, keys["pub"], recording, tmp_path, inbox=inbox, probation=60.0,
                          env={"EDGECLS_TEST_BREAK": "v2:raise"})
    try:
        device.wait_for("classifying")
        drop(packages["v2"], inbox)
        device.wait_for("rolled back from")
        time.sleep(1.0)  # the old model keeps classifying after the fallback
        assert device.stop() == 0
    finally:
        device.kill9()
    records = device.records()
    assert {r["model_version"] for r in records} == {"v1"}
    indexes = [r["source_index"] for r in records]
    assert indexes == list(range(indexes[0], indexes[0] + len(indexes)))
    last = _events(store)[-1]
    assert last["event"] == "rollback" and "the model raised on a frame" in last["reason"], last


def test_rollback_by_hand(packages: dict[str, Path], keys: dict[str, Path], base_store: Path, tmp_path: Path) -> None:
    store = _fresh_store(base_store, tmp_path / "store")
    run_cli("store", "install", str(packages["v2"]), "--store", str(store), "--trust", str(keys["pub"]), check=True)
    proc = run_cli("rollback", "--store", str(store), check=True)
    assert "now serves v1" in proc.stdout, proc.stdout
    assert_one_line_error(run_cli("rollback", "--store", str(store)), "has no previous model")


def test_rollback_by_hand_live(packages: dict[str, Path], keys: dict[str, Path], base_store: Path,
                               recording: Path, tmp_path: Path) -> None:
    """``edgecls rollback`` beside a live device: it swaps back between two frames; no result is lost."""
    store = _fresh_store(base_store, tmp_path / "store")
    run_cli("store", "install", str(packages["v2"]), "--store", str(store), "--trust", str(keys["pub"]), check=True)
    device = start_device(store, keys["pub"], recording, tmp_path, probation=2.0)
    try:
        device.wait_for("classifying")
        time.sleep(1.0)
        proc = run_cli("rollback", "--store", str(store), check=True)
        assert "the live process now runs v1" in proc.stdout, proc.stdout
        time.sleep(1.0)
        assert device.stop() == 0
    finally:
        device.kill9()
    records = device.records()
    gap, first = swap_gap(records, _sha(packages["v1"]))
    assert records[first - 1]["model_version"] == "v2" and gap < 1.0
    indexes = [r["source_index"] for r in records]
    assert indexes == list(range(indexes[0], indexes[0] + len(indexes)))
    print(f"rollback by hand, live: gap {gap * 1000:.1f} ms")


# -- bad input, one line each


def test_store_install_refuses_other_input_size(packages: dict[str, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    assert_one_line_error(run_cli("store", "install", str(packages["size96"]), "--store", str(tmp_path / "s"),
                                  "--trust", str(keys["pub"])), "input size: the manifest says 96x96")


def _mount_tmpfs(at: Path, options: str) -> bool:
    at.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(at)], capture_output=True).returncode == 0


def test_store_on_full_disk(packages: dict[str, Path], keys: dict[str, Path], tmp_path: Path) -> None:
    disk = tmp_path / "full"
    if not _mount_tmpfs(disk, "size=256k"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        assert_one_line_error(run_cli("store", "install", str(packages["v1"]), "--store", str(disk / "store"),
                                      "--trust", str(keys["pub"])), "No space left on device")
        assert not (disk / "store" / "state.json").exists()
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_inbox_not_writable(base_store: Path, keys: dict[str, Path], recording: Path, tmp_path: Path) -> None:
    inbox = tmp_path / "ro"
    if not _mount_tmpfs(inbox, "ro,size=64k"):
        pytest.skip("needs root to mount a read-only tmpfs")
    try:
        store = _fresh_store(base_store, tmp_path / "store")
        assert_one_line_error(run_cli("run", "--store", str(store), "--trust", str(keys["pub"]), "--inbox", str(inbox),
                                      "--source", str(recording), "--headless", "--max-frames", "1"), "is not writable")
    finally:
        subprocess.run(["umount", str(inbox)], check=False)


def test_run_store_trust_not_a_key(base_store: Path, recording: Path, tmp_path: Path) -> None:
    bad = tmp_path / "k.pub"
    bad.write_bytes(os.urandom(100))
    store = _fresh_store(base_store, tmp_path / "store")
    assert_one_line_error(run_cli("run", "--store", str(store), "--trust", str(bad), "--source", str(recording),
                                  "--headless", "--max-frames", "1"), f"trust file {bad} is not a PEM public key")
