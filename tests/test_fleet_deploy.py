"""``edgecls fleet deploy`` and ``cmd/update``/``cmd/rollback``: the update gate over MQTT.

Real parts: Debian's Mosquitto, packages made from the session's trained run and signed
with real Ed25519 keys, devices that are real ``edgecls run --store --trust --mqtt``
processes playing a recording at camera speed, and the real deploy command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.device_helpers import camera_like_frames, write_video
from tests.mqtt_helpers import Mosquitto, needs_mosquitto
from tests.update_helpers import Device, flip_byte, start_device

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), needs_mosquitto]

COUNT = 40


@pytest.fixture(scope="module")
def pkgs(trained_run: Path, demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """v1 (installed on every device), v2 (the same network re-calibrated: another model),
    v2 with one byte changed, and v2 signed by a key the devices do not trust."""
    from edgecls.convert.export import convert_run
    from edgecls.convert.package import make_package
    from edgecls.package import keygen

    d = tmp_path_factory.mktemp("deploy_pkgs")
    key, pub = keygen(d / "good")
    other_key, _ = keygen(d / "other")
    data = demo_data / "test"
    run_a, run_b = d / "run_a", d / "run_b"
    shutil.copytree(trained_run, run_a, ignore=shutil.ignore_patterns("*.tflite"))
    v1 = make_package(run_a, d / "v1.edgecls", key=key, data=data, version="v1", count=COUNT).path
    shutil.copytree(trained_run, run_b, ignore=shutil.ignore_patterns("*.tflite"))
    convert_run(run_b, "int8", calibration=64)
    v2 = make_package(run_b, d / "v2.edgecls", key=key, data=data, version="v2", count=COUNT).path
    untrusted = make_package(run_b, d / "v2-untrusted.edgecls", key=other_key, data=data, version="v2", count=COUNT).path
    return {"pub": pub, "v1": v1, "v2": v2, "bad": flip_byte(v2, d / "v2-bad.edgecls"), "untrusted": untrusted}


def _sha(package: Path) -> str:
    with zipfile.ZipFile(package) as zf:
        return str(json.loads(zf.read("manifest.json"))["model_sha256"])


def _history(store: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (store / "history.jsonl").read_text().splitlines()]


def _current(store: Path) -> str:
    return str(json.loads((store / "state.json").read_text())["current"])


@pytest.fixture(scope="module")
def fleet(pkgs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A broker and two devices (dev-a, dev-b) serving v1 from their stores."""
    work = tmp_path_factory.mktemp("deploy_fleet")
    broker = Mosquitto(work / "broker").start()
    frames = camera_like_frames(["circle", "square"], 30, size=(160, 120))
    video = write_video(work / "cam.avi", frames * 150, 30.0)  # 300 s at camera speed: outlives both tests
    devices: dict[str, Device] = {}
    stores: dict[str, Path] = {}
    try:
        for name in ("dev-a", "dev-b"):
            store = stores[name] = work / f"store-{name}"
            run_cli("store", "install", str(pkgs["v1"]), "--store", str(store), "--trust", str(pkgs["pub"]), check=True)
            devices[name] = start_device(store, pkgs["pub"], video, work, probation=2.0, tag=name, extra=(
                "--mqtt", broker.url, "--device-id", name, "--mqtt-spool", str(work / f"{name}.spool")))
        for device in devices.values():
            device.wait_for("classifying")
        yield {"broker": broker, "devices": devices, "stores": stores, "work": work, "video": video}
    finally:
        for device in devices.values():
            device.kill9()
        broker.stop()


def _deploy(url: str, package: Path, *extra: str) -> Any:
    proc = run_cli("fleet", "deploy", "--mqtt", url, str(package), "--devices", "dev-a,dev-b", "--canary", "1",
                   "--timeout", "150", *extra, timeout=400)
    print(proc.stdout, proc.stderr)
    return proc


def test_deploy_good_then_bad_then_rollback(pkgs: dict[str, Path], fleet: dict[str, Any], tmp_path: Path) -> None:
    """A good package goes live on the canary, then on the rest; a damaged one stops at the
    canary (exit 1) and the second device never hears of it; cmd/rollback puts v1 back."""
    url, stores, devices = fleet["broker"].url, fleet["stores"], fleet["devices"]
    v1, v2 = _sha(pkgs["v1"]), _sha(pkgs["v2"])

    good = _deploy(url, pkgs["v2"], "--trust", str(pkgs["pub"]), "--json", str(tmp_path / "good.json"))
    assert good.returncode == 0, good.stdout + good.stderr
    rows = {r["device"]: r for r in json.loads((tmp_path / "good.json").read_text())["devices"]}
    assert [rows[d]["outcome"] for d in ("dev-a", "dev-b")] == ["confirmed", "confirmed"], rows
    assert (rows["dev-a"]["stage"], rows["dev-b"]["stage"]) == ("canary", "rest")
    assert rows["dev-a"]["before"] == f"v1 ({v1[:12]})" and rows["dev-a"]["after"] == f"v2 ({v2[:12]})", rows
    for line in ("dev-a", "dev-b"):
        assert any(line in x and "confirmed" in x and "v2" in x for x in good.stdout.splitlines()), good.stdout
    assert _current(stores["dev-a"]) == v2 and _current(stores["dev-b"]) == v2
    # staged: the rest was sent the package only after the canary's probation passed
    a_confirmed = next(r["ts"] for r in _history(stores["dev-a"]) if r["event"] == "confirmed")
    b_swapped = next(r["ts"] for r in _history(stores["dev-b"]) if r["event"] == "swapped")
    assert a_confirmed < b_swapped, (a_confirmed, b_swapped)
    # every result names its model: v1 before the swap, v2 after, none lost
    records = [r for r in devices["dev-b"].records() if "model_sha256" in r]
    assert {r["model_sha256"] for r in records} == {v1, v2}

    # a package with one byte changed: refused by the canary, never sent to the rest
    b_before = len(_history(stores["dev-b"]))
    bad = _deploy(url, pkgs["bad"], "--json", str(tmp_path / "bad.json"))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    rows = {r["device"]: r for r in json.loads((tmp_path / "bad.json").read_text())["devices"]}
    assert rows["dev-a"]["outcome"] == "refused" and "package v2-bad.edgecls: model.tflite" in rows["dev-a"]["reason"], rows
    assert rows["dev-b"]["outcome"] == "skipped" and "canary dev-a refused" in rows["dev-b"]["reason"], rows
    assert "error: 2 of 2 device(s) not updated" in bad.stderr, bad.stderr
    assert len(_history(stores["dev-b"])) == b_before, "the second device heard of a package its canary refused"
    assert _current(stores["dev-a"]) == v2 and _current(stores["dev-b"]) == v2

    # --trust on the host: a package signed by another key never leaves the host
    untrusted = _deploy(url, pkgs["untrusted"], "--trust", str(pkgs["pub"]))
    assert untrusted.returncode == 2 and untrusted.stderr.count("\n") == 1, untrusted.stderr
    assert "trusted key" in untrusted.stderr, untrusted.stderr

    # cmd/rollback on dev-b: v1 again, published on its update topic
    from edgecls.fleet_deploy import DeployMonitor
    from edgecls.fleet_protocol import parse_broker

    monitor = DeployMonitor(parse_broker(url))
    monitor.start()
    try:
        rid = monitor.send("dev-b", "rollback")
        reply = _wait(lambda: monitor.result("dev-b", rid))
        assert reply["ok"] and reply["result"]["sha256"] == v1 and reply["result"]["version"] == "v1", reply
        record = _wait(lambda: next(iter(monitor.records("dev-b", rid)), None))
        assert record["event"] == "rollback" and record["model"] == v2 and record["to"] == v1, record
        # the state message names the model now in use, with its version
        _wait(lambda: (monitor.devices["dev-b"].state or {}).get("model", {}).get("sha256") == v1 or None)
        assert monitor.devices["dev-b"].state["model"]["version"] == "v1"  # type: ignore[index]
    finally:
        monitor.close()
    assert _current(stores["dev-b"]) == v1
    for device in devices.values():
        assert device.proc.poll() is None, device.text()


def _wait(fn: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value is not None:
            return value
        time.sleep(0.05)
    raise AssertionError(f"nothing within {timeout} s")


def test_hostile_update_payloads(pkgs: dict[str, Path], fleet: dict[str, Any]) -> None:
    """Damaged or truncated cmd/update payloads, and cmd/update to a device without --store:
    an error reply each, and the devices keep running."""
    import hashlib

    from edgecls.fleet_deploy import DeployMonitor
    from edgecls.fleet_protocol import Topics, dumps, frame_update, parse_broker

    url, work = fleet["broker"].url, fleet["work"]
    model = work / "plain.tflite"
    with zipfile.ZipFile(pkgs["v1"]) as zf:
        model.write_bytes(zf.read("model.tflite"))
    log = work / "plain.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "edgecls", "run", "--model", str(model), "--source", str(fleet["video"]),
                                 "--headless", "--quiet", "--realtime", "--stats-every", "0", "--mqtt", url,
                                 "--device-id", "plain", "--mqtt-spool", str(work / "plain.spool")],
                                stdout=subprocess.DEVNULL, stderr=fh, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    plain = Device(proc, log, work / "plain.jsonl")
    try:
        data = pkgs["v2"].read_bytes()
        monitor = DeployMonitor(parse_broker(url))
        monitor.start()
        try:
            topic = Topics("edgecls", "dev-a").cmd("update")
            damaged = bytearray(frame_update("damaged", data))
            damaged[-100] ^= 1
            truncated = frame_update("truncated", data)[:-1000]
            header = dumps({"id": "oversize", "bytes": 1, "sha256": hashlib.sha256(b"x").hexdigest()})
            for payload in (bytes(damaged), truncated, header + b"\n" + b"x" * 10, b"\x00\xffnot a header"):
                monitor.client.publish(topic, payload, qos=1)
            expect = {"damaged": "damaged in transit", "truncated": "is truncated", "oversize": "is truncated"}
            for rid, needle in expect.items():
                reply = _wait(lambda rid=rid: monitor.result("dev-a", rid))
                assert not reply["ok"] and needle in reply["error"], reply
            # a device without --store: the reply names it
            plain.wait_for("classifying")
            _wait(lambda: (monitor.devices.get("plain") and monitor.devices["plain"].availability == "online") or None)
            monitor.send_update("plain", "nostore", data)
            reply = _wait(lambda: monitor.result("plain", "nostore"))
            assert not reply["ok"] and "--store" in reply["error"], reply
            rid = monitor.send("dev-a", "ping")
            assert _wait(lambda: monitor.result("dev-a", rid))["ok"]
        finally:
            monitor.close()
        assert fleet["devices"]["dev-a"].proc.poll() is None
        assert plain.proc.poll() is None, plain.text()
    finally:
        plain.kill9()
