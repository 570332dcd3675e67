"""edgecls run --mqtt and edgecls fleet: a real Mosquitto, real `edgecls run` processes on
videos, the broker SIGKILLed and restarted mid-run, and every event counted by seq against
each device's own JSONL."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli
from device_helpers import cached_plain_models, camera_like_frames, write_video
from mqtt_helpers import MOSQUITTO_PASSWD, Mosquitto, free_port, needs_mosquitto

from edgecls.errors import DataError
from edgecls.fleet_protocol import PayloadError, SeqTracker, Topics, loads, parse_broker

SHAPES = ["circle", "cross", "triangle", "square", "star", "ring"]


# -- the contract, no broker


def test_broker_url_and_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.write_text("pi1:s3cret\n")
    b = parse_broker("mqtt://broker.local", credentials=creds)
    assert (b.host, b.port, b.tls, b.username, b.password) == ("broker.local", 1883, False, "pi1", "s3cret")
    assert "s3cret" not in repr(b)
    assert parse_broker("mqtts://h:9000").tls and parse_broker("mqtts://h").port == 8883
    for bad in ("http://h", "mqtt://", "mqtt://h:99999", "mqtt://u:pw@h"):
        with pytest.raises(DataError):
            parse_broker(bad)
    with pytest.raises(DataError, match="--mqtt-ca"):
        parse_broker("mqtts://h", ca=tmp_path / "missing.pem")
    monkeypatch.setenv("EDGECLS_MQTT_USERNAME", "envuser")
    monkeypatch.setenv("EDGECLS_MQTT_PASSWORD", "envpw")
    assert parse_broker("mqtt://h").username == "envuser"


def test_hostile_payloads_and_seq_bookkeeping() -> None:
    for bad in (b"\xff\xfe", b"[1,2]", b"{", b"x" * 5000):
        with pytest.raises(PayloadError):
            loads(bad, 4096)
    assert loads(b"") == {}
    t = SeqTracker()
    for s in (3, 4, 4, 7, 5):
        t.add(s)
    assert (t.gaps, t.missing(), t.duplicates) == (1, [6], 1)
    topics = Topics("edgecls", "pi1")
    assert topics.split("edgecls/pi1/cmd/result") == ("pi1", "cmd/result")
    assert topics.split("edgecls/+/events") is None and topics.split("other/pi1/events") is None


def test_spool_bounds_seq_and_lock(tmp_path: Path) -> None:
    from edgecls.device.spool import Spool
    from edgecls.errors import OutputError

    path = tmp_path / "s.sqlite"
    spool = Spool(path, max_events=5)
    for _ in range(8):
        spool.append(lambda seq: json.dumps({"seq": seq}).encode())
    stats = spool.stats()
    assert (stats.pending, stats.dropped, stats.next_seq) == (5, 3, 8)
    assert [s for s, _ in spool.pending(-1, 100)] == [3, 4, 5, 6, 7]
    with pytest.raises(OutputError, match="in use by another edgecls run"):
        Spool(path)
    spool.ack([3, 4, 5, 6, 7])
    spool.close()
    again = Spool(path)  # everything delivered and deleted: seq still goes on, never back
    assert again.append(lambda seq: b"x")[0] == 8
    again.close()


# -- real broker, real devices


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class int8 model with random weights: its label changes often on these shapes."""
    return cached_plain_models(tmp_path_factory)["softmax3_i8"]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """15 s at 30 fps of shapes (320x240)."""
    frames = camera_like_frames(SHAPES * 5, 15, size=(320, 240))
    return write_video(tmp_path_factory.mktemp("fleet_video") / "v.avi", frames, fps=30.0)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 s at 30 fps: outlives the commands a test sends to a running device."""
    frames = camera_like_frames(SHAPES * 4, 50, size=(320, 240))
    return write_video(tmp_path_factory.mktemp("fleet_video") / "long.avi", frames, fps=30.0)


def start_device(model: Path, video: Path, url: str, device: str, folder: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "edgecls", "run", "--model", str(model), "--source", str(video), "--headless",
           "--quiet", "--mqtt", url, "--device-id", device, "--mqtt-spool", str(folder / f"{device}.sqlite"),
           "--jsonl", str(folder / f"{device}.jsonl"), "--stats-every", "0", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def label_changes(jsonl: Path) -> list[tuple[int, str]]:
    """(frame, label) of every label change in a device's JSONL: what its events must be."""
    out: list[tuple[int, str]] = []
    for line in jsonl.read_text().splitlines():
        r = json.loads(line)
        if "event" in r:  # run_start / run_end, not a frame
            continue
        if not out or out[-1][1] != r["label"]:
            out.append((r["frame"], r["label"]))
    return out


def wait_online(host: object, devices: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        views = host.devices  # type: ignore[attr-defined]
        if all(d in views and views[d].availability == "online" for d in devices):
            return
        time.sleep(0.1)
    raise AssertionError(f"devices not online within {timeout} s")


def monitor(url: str, **kwargs: object):  # type: ignore[no-untyped-def]
    from edgecls.fleet_host import FleetMonitor

    return FleetMonitor(parse_broker(url), **kwargs).start()  # type: ignore[arg-type]


@needs_mosquitto
@pytest.mark.slow
def test_broker_killed_twice_mid_run_loses_no_event(model: Path, video: Path, broker: Mosquitto, tmp_path: Path) -> None:
    received: dict[str, dict[int, dict[str, object]]] = {}

    def on_event(device: str, event: dict[str, object], _t: float) -> None:
        received.setdefault(device, {})[int(event["seq"])] = event  # type: ignore[call-overload]

    host = monitor(broker.url, session="test-collector", on_event=on_event)
    devices = [f"cam{i}" for i in range(3)]
    procs = [start_device(model, video, broker.url, d, tmp_path, "--realtime") for d in devices]
    try:
        wait_online(host, devices)
        for _ in range(2):  # SIGKILL, down for 1.5 s, back on the same port and data
            broker.kill()
            time.sleep(1.5)
            broker.start()
            time.sleep(2.0)
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            p.kill() if p.poll() is None else None
    deadline = time.monotonic() + 20
    expected = {d: label_changes(tmp_path / f"{d}.jsonl") for d in devices}
    while time.monotonic() < deadline and any(len(received.get(d, {})) < len(expected[d]) for d in devices):
        time.sleep(0.2)
    host.close()
    for d, (_out, err) in zip(devices, outs, strict=True):
        assert "Traceback" not in err, err
        assert "lost" in err and "reconnected" in err, err  # it noticed both outages and came back
        got = received.get(d, {})
        print(f"{d}: emitted {len(expected[d])} label changes, received {len(got)} events, broker restarts 2")
        assert sorted(got) == list(range(len(expected[d]))), (d, len(got), len(expected[d]))
        assert [(got[s]["frame"], got[s]["label"]) for s in sorted(got)] == expected[d]
        con = sqlite3.connect(tmp_path / f"{d}.sqlite")
        assert con.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0  # all acknowledged, spool empty
        con.close()


class Listener:
    """A plain paho client that keeps every message on the given topics (retained too)."""

    def __init__(self, url: str, topics: list[str]) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        b = parse_broker(url)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, bytes(m.payload), bool(m.retain)))
        self.client.connect(b.host, b.port)
        self.client.subscribe([(t, 1) for t in topics])
        self.client.loop_start()

    def wait(self, pred, timeout: float = 30.0) -> list[tuple[str, bytes, bool]]:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in list(self.messages) if pred(m)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no such message within {timeout} s; got {[m[0] for m in self.messages]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@needs_mosquitto
@pytest.mark.slow
def test_commands_status_and_discovery(trained_run: Path, int8_model: Path, demo_data: Path, long_video: Path,
                                       broker: Mosquitto, tmp_path: Path) -> None:
    import cv2
    import numpy as np

    from edgecls.bundle import file_sha256

    bundle = tmp_path / "bundle"
    run_cli("field", "export", str(trained_run), "--data", str(demo_data / "test"), "--out", str(bundle),
            "--count", "20", check=True)
    listener = Listener(broker.url, ["homeassistant/#", "edgecls/pi1/snapshot", "edgecls/pi1/cmd/result"])
    host = monitor(broker.url)
    dev = start_device(int8_model, long_video, broker.url, "pi1", tmp_path, "--realtime", "--bundle", str(bundle))
    try:
        wait_online(host, ["pi1"])
        # Home Assistant discovery: three sensors of one device, availability wired
        configs = {t: json.loads(p) for t, p, _r in listener.wait(lambda m: m[0].startswith("homeassistant/"))}
        deadline = time.monotonic() + 10
        while len(configs) < 3 and time.monotonic() < deadline:
            configs = {t: json.loads(p) for t, p, _ in listener.messages if t.startswith("homeassistant/")}
            time.sleep(0.05)
        assert sorted(configs) == [f"homeassistant/sensor/pi1/edgecls_{k}/config" for k in ("fps", "label", "score")]
        for config in configs.values():
            assert config["availability_topic"] == "edgecls/pi1/availability"
            assert config["device"]["identifiers"] == ["edgecls_pi1"]
            print(json.dumps(config))
        assert configs["homeassistant/sensor/pi1/edgecls_label/config"]["state_topic"] == "edgecls/pi1/state"

        # field check from the host CLI, while the device classifies on
        proc = run_cli("fleet", "check", "pi1", "--mqtt", broker.url, "--timeout", "60")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "pi1" in proc.stdout and "pass" in proc.stdout, proc.stdout

        rid = host.send("pi1", "snapshot")
        jpeg = listener.wait(lambda m: m[0] == "edgecls/pi1/snapshot")[0][1]
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (240, 320, 3)
        assert listener.wait(lambda m: rid.encode() in m[1])

        rid = host.send("pi1", "reload")
        reply = json.loads(listener.wait(lambda m: rid.encode() in m[1])[0][1])
        assert reply["ok"] and reply["result"]["sha256"] == file_sha256(int8_model), reply

        # hostile commands: an error reply each, and the device goes on
        listener.client.publish("edgecls/pi1/cmd/snapshot", b"{not json", qos=1)
        listener.client.publish("edgecls/pi1/cmd/frobnicate", b'{"id": "x1"}', qos=1)
        listener.client.publish("edgecls/pi1/cmd/reload", b'{"id": "' + b"a" * 8000 + b'"}', qos=1)
        listener.client.publish("edgecls/pi1/cmd/ping", b'{"id": "../etc"}', qos=1)
        errors = listener.wait(lambda m: m[0].endswith("cmd/result") and b'"ok":false' in m[1])
        deadline = time.monotonic() + 10
        while len(errors) < 4 and time.monotonic() < deadline:
            errors = [m for m in listener.messages if m[0].endswith("cmd/result") and b'"ok":false' in m[1]]
            time.sleep(0.05)
        texts = sorted(json.loads(m[1])["error"] for m in errors)
        assert len(texts) == 4, texts
        assert any("unknown command 'frobnicate'" in t for t in texts) and sum("bad payload" in t for t in texts) == 3, texts

        # fleet status: the verdict arrives with the stats published right after the command
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (host.devices["pi1"].stats or {}).get("field_check"):
            time.sleep(0.1)
        proc = run_cli("fleet", "status", "--mqtt", broker.url)
        assert proc.returncode == 0, proc.stderr
        print(proc.stdout)
        line = next(ln for ln in proc.stdout.splitlines() if "pi1" in ln)
        assert "online" in line and "pass" in line and "model_int8.tflite" in line, proc.stdout
        rows = json.loads(run_cli("fleet", "status", "--mqtt", broker.url, "--json", check=True).stdout)
        assert rows[0]["device"] == "pi1" and rows[0]["online"] and rows[0]["field_check"] == "pass"

        proc = run_cli("fleet", "check", "ghost", "--mqtt", broker.url, "--timeout", "2")
        assert proc.returncode == 2 and "did not answer" in proc.stderr, proc.stderr
    finally:
        dev.terminate()
        _out, err = dev.communicate(timeout=30)
        host.close()
        listener.close()
    assert dev.returncode == 0 and "Traceback" not in err, err
    offline = Listener(broker.url, ["edgecls/pi1/availability"])
    assert offline.wait(lambda m: m[2] and m[1] == b"offline")
    offline.close()
    proc = run_cli("fleet", "status", "--mqtt", broker.url, check=True)
    line = next(ln for ln in proc.stdout.splitlines() if "pi1" in ln)
    assert "offline" in line and "[" not in line, proc.stdout  # styled, not markup printed as text


def test_bad_mqtt_options_fail_before_capture(model: Path, video: Path, tmp_path: Path) -> None:
    base = ("run", "--model", str(model), "--source", str(video), "--headless", "--quiet",
            "--mqtt-spool", str(tmp_path / "s.sqlite"))
    assert_one_line_error(run_cli(*base, "--mqtt", "http://broker:1883"), "--mqtt")
    assert_one_line_error(run_cli(*base, "--mqtt", "mqtt://h", "--mqtt-ca", str(tmp_path / "no.pem")), "--mqtt-ca")
    assert_one_line_error(run_cli(*base, "--mqtt", "mqtt://h", "--device-id", "a/b"), "--device-id")
    assert_one_line_error(run_cli(*base, "--mqtt", "mqtt://u:pw@h"), "never in the URL")
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    assert_one_line_error(run_cli(*base, "--mqtt", "mqtts://h", "--mqtt-ca", str(garbage)), "TLS files")
    assert_one_line_error(run_cli("fleet", "status", "--mqtt", "mqtt://127.0.0.1:1"), "cannot reach MQTT broker")
    assert not (tmp_path / "s.sqlite").exists()


@needs_mosquitto
@pytest.mark.slow
def test_unreachable_broker_spools_then_delivers_in_order(model: Path, video: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    first = start_device(model, video, url, "lonely", tmp_path, "--max-frames", "120")
    _out, err = first.communicate(timeout=120)
    assert first.returncode == 0 and "Traceback" not in err, err
    assert err.count("cannot be reached") + err.count("has not answered") == 1, err
    spooled = len(label_changes(tmp_path / "lonely.jsonl"))
    con = sqlite3.connect(tmp_path / "lonely.sqlite")
    assert con.execute("SELECT COUNT(*) FROM events").fetchone()[0] == spooled > 0
    con.close()
    broker = Mosquitto(tmp_path / "broker", port=port).start()
    try:
        got: list[int] = []
        host = monitor(url, on_event=lambda _d, e, _t: got.append(e["seq"]))
        watch = subprocess.Popen([sys.executable, "-m", "edgecls", "fleet", "watch", "--mqtt", url, "--json",
                                  "--duration", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)  # subscribed before the device delivers
        (tmp_path / "lonely.jsonl").rename(tmp_path / "first.jsonl")
        second = start_device(model, video, url, "lonely", tmp_path, "--max-frames", "60")
        _out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        total = spooled + len(label_changes(tmp_path / "lonely.jsonl"))
        deadline = time.monotonic() + 10
        while len(got) < total and time.monotonic() < deadline:
            time.sleep(0.1)
        host.close()
        watch.terminate()
        watched, _ = watch.communicate(timeout=10)
        assert got == list(range(total)), got  # the old run's events first, in order; seq went on
        lines = [json.loads(line) for line in watched.splitlines()]
        assert [e["seq"] for e in lines] == list(range(total)) and {e["device"] for e in lines} == {"lonely"}
    finally:
        broker.stop()


@needs_mosquitto
@pytest.mark.skipif(MOSQUITTO_PASSWD is None, reason="mosquitto_passwd is not installed")
def test_wrong_credentials_name_broker_and_user_never_password(model: Path, video: Path, tmp_path: Path) -> None:
    from mqtt_helpers import add_user

    passwd = add_user(tmp_path, {"pi1": "right-one"})
    broker = Mosquitto(tmp_path / "broker", anonymous=False, extra=f"password_file {passwd}\n").start()
    try:
        creds = tmp_path / "creds"
        creds.write_text("pi1:Wr0ngPassw0rd\n")
        dev = start_device(model, video, broker.url, "pi1", tmp_path, "--max-frames", "60",
                           "--mqtt-credentials", str(creds))
        _out, err = dev.communicate(timeout=120)
        assert dev.returncode == 0 and "Traceback" not in err, err
        refused = [ln for ln in err.splitlines() if "refused" in ln]
        assert len(refused) == 1 and "user 'pi1'" in refused[0] and broker.url in refused[0], err
        assert "Wr0ngPassw0rd" not in err
        proc = run_cli("fleet", "status", "--mqtt", broker.url, "--mqtt-credentials", str(creds))
        assert_one_line_error(proc, "refused user 'pi1'")
        assert "Wr0ngPassw0rd" not in proc.stderr + proc.stdout
        creds.write_text("pi1:right-one\n")
        assert run_cli("fleet", "status", "--mqtt", broker.url, "--mqtt-credentials", str(creds)).returncode == 0
    finally:
        broker.stop()


@needs_mosquitto
@pytest.mark.slow
def test_duplicate_device_id_is_warned(model: Path, long_video: Path, broker: Mosquitto, tmp_path: Path) -> None:
    host = monitor(broker.url)
    first = start_device(model, long_video, broker.url, "twin", tmp_path, "--realtime", "--mqtt-spool", str(tmp_path / "a.sqlite"))
    try:
        wait_online(host, ["twin"])
        (tmp_path / "b").mkdir()
        second = start_device(model, long_video, broker.url, "twin", tmp_path / "b", "--realtime", "--max-frames", "60",
                              "--mqtt-spool", str(tmp_path / "b.sqlite"))
        _out, err2 = second.communicate(timeout=60)
    finally:
        first.terminate()
        _out, err1 = first.communicate(timeout=30)
        host.close()
    assert "device id 'twin' is already online" in err2, err2
    assert "device id 'twin' is now also used by another process" in err1, err1


@needs_mosquitto
@pytest.mark.skipif(MOSQUITTO_PASSWD is None, reason="mosquitto_passwd is not installed")
def test_install_md_acl_lets_devices_write_only_their_own_topics(tmp_path: Path) -> None:
    """The ACL file INSTALL.md installs, loaded by a real Mosquitto: a device cannot write
    another's topics or send commands; the host can."""
    import paho.mqtt.client as mqtt
    from mqtt_helpers import add_user

    from edgecls.fleet_protocol import PROTOCOL_VERSION  # noqa: F401  (the contract module imports cleanly)

    acl = Path(__file__).resolve().parents[1] / "device" / "deploy" / "mosquitto-edgecls.acl"
    passwd = add_user(tmp_path, {"fleet-host": "h", "pi1": "p1", "pi2": "p2"})
    broker = Mosquitto(tmp_path / "broker", anonymous=False,
                       extra=f"password_file {passwd}\nacl_file {acl}\n").start()
    clients = []
    try:
        def client(user: str, password: str, topics: list[str]) -> list[tuple[str, bytes]]:
            got: list[tuple[str, bytes]] = []
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            c.username_pw_set(user, password)
            c.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload)))
            c.connect("127.0.0.1", broker.port)
            c.loop_start()
            if topics:
                c.subscribe([(t, 1) for t in topics])
            clients.append(c)
            time.sleep(0.3)
            return got

        host_got = client("fleet-host", "h", ["edgecls/#"])
        pi2_got = client("pi2", "p2", ["edgecls/pi2/cmd/#"])
        client("pi1", "p1", [])
        pi1 = clients[-1]
        host = clients[0]
        pi1.publish("edgecls/pi1/events", b'{"seq":0,"label":"a"}', qos=1).wait_for_publish(5)
        pi1.publish("edgecls/pi2/events", b'{"seq":0,"label":"forged"}', qos=1).wait_for_publish(5)
        pi1.publish("edgecls/pi2/cmd/reload", b"{}", qos=1).wait_for_publish(5)
        host.publish("edgecls/pi2/cmd/snapshot", b"{}", qos=1).wait_for_publish(5)
        time.sleep(1.0)
        assert ("edgecls/pi1/events", b'{"seq":0,"label":"a"}') in host_got
        assert not any(b"forged" in p for _t, p in host_got), host_got
        assert [t for t, _p in pi2_got] == ["edgecls/pi2/cmd/snapshot"], pi2_got
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        broker.stop()


def test_readme_documents_every_topic_and_command() -> None:
    """Topic names and the command registry come from code; the README's table must name them all."""
    from edgecls.device.commands import COMMANDS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    t = Topics("edgecls", "DEVICE")
    names = [getattr(t, n).removeprefix("edgecls/DEVICE/") for n in ("availability", "claim", "state", "events", "stats", "result")]
    for name in [*names, *(f"cmd/{c}" for c in COMMANDS)]:
        assert f"| `{name}` |" in readme, name


@needs_mosquitto
def test_fleet_check_exit_codes_with_simulated_devices(broker: Mosquitto, tmp_path: Path) -> None:
    """Device-side publishers without a classifier, each with its own field-check handler
    (the command registry is a dict others extend): one passes, one fails, one never answers."""
    from edgecls.device.mqtt import FleetPublisher
    from edgecls.device.spool import Spool

    def handler(passed: bool | None):  # type: ignore[no-untyped-def]
        def run(_pub: object, _args: object) -> dict[str, object]:
            if passed is None:
                time.sleep(30)
            return {"passed": passed, "failures": [] if passed else ["(b) raw outputs 7 steps (limit 1)"], "count": 20}
        return run

    pubs = []
    for name, verdict in (("good", True), ("bad", False), ("slow", None)):
        pub = FleetPublisher(parse_broker(broker.url), Topics("edgecls", name), Spool(tmp_path / f"{name}.sqlite"),
                             state=lambda: {"label": "a", "seq": 0}, stats=lambda: {"fps": 1.0},
                             commands={"field-check": handler(verdict)})
        pub.start()
        pubs.append(pub)
    try:
        host = monitor(broker.url)
        wait_online(host, ["good", "bad", "slow"])
        host.close()
        ok = run_cli("fleet", "check", "good", "--mqtt", broker.url, "--timeout", "20")
        assert ok.returncode == 0 and "pass" in ok.stdout, ok.stdout + ok.stderr
        bad = run_cli("fleet", "check", "good", "bad", "--mqtt", broker.url, "--timeout", "20")
        assert bad.returncode == 1 and "FAIL" in bad.stdout and "raw outputs 7 steps" in bad.stdout, bad.stdout
        assert "failed on 1 device" in bad.stderr
        silent = run_cli("fleet", "check", "--mqtt", broker.url, "--timeout", "3")  # all online: good, bad, slow
        assert silent.returncode == 2 and "no answer" in silent.stdout, silent.stdout
        assert "[/]" not in bad.stdout + silent.stdout  # styled, not markup printed as text
        rows = json.loads(run_cli("fleet", "status", "--mqtt", broker.url, "--json", check=True).stdout)
        assert [(r["device"], r["online"]) for r in rows] == [("bad", True), ("good", True), ("slow", True)]
    finally:
        for pub in pubs:
            pub.close(flush_s=0.5)


@needs_mosquitto
def test_status_settles_on_retained_messages_while_the_fleet_keeps_talking(broker: Mosquitto) -> None:
    """``settle`` waits for the retained state a new subscription brings, not for silence: a
    live fleet (here 20 devices' stats every 50 ms) is never silent, and waiting for silence
    made every ``fleet status`` last its whole ``max_s``."""
    from edgecls.fleet_host import FleetMonitor
    from edgecls.fleet_protocol import dumps, make_client

    b = parse_broker(broker.url)
    talker = make_client(b, "talker")
    talker.connect(b.host, b.port)
    talker.loop_start()
    names = [f"cam{i:02d}" for i in range(20)]
    for name in names:
        t = Topics("edgecls", name)
        talker.publish(t.availability, "online", qos=1, retain=True)
        talker.publish(t.state, dumps({"label": "a", "seq": 1}), qos=1, retain=True).wait_for_publish(5)
    stop = threading.Event()

    def chatter() -> None:
        while not stop.is_set():
            for name in names:
                talker.publish(Topics("edgecls", name).stats, dumps({"fps": 30.0}), qos=0)
            time.sleep(0.05)

    thread = threading.Thread(target=chatter, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        mon = FleetMonitor(b, events=False).start()
        start = time.monotonic()
        mon.settle(quiet_s=0.3, max_s=20.0)
        took = time.monotonic() - start
        rows = mon.rows()
        mon.close()
        assert [r["device"] for r in rows if r["online"]] == names
        assert took < 10.0, f"settle waited {took:.1f} s for a silence that never comes"
    finally:
        stop.set()
        thread.join(5)
        talker.loop_stop()
        talker.disconnect()
