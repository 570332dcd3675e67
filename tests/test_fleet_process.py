"""``edgecls run --mqtt`` publishes from a process of its own (device/mqtt_process.py): paho and
the spool never share the frame loop's GIL. What must hold: that process goes when the run
dies (the broker then sends the retained ``offline`` will), it is started again when it dies
alone, and seq never repeats across any of that. A real Mosquitto, real ``edgecls run``."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from device_helpers import cached_plain_models, camera_like_frames, write_video
from mqtt_helpers import Mosquitto, needs_mosquitto
from test_fleet import Listener, label_changes, monitor, start_device, wait_online

from edgecls.device.mqtt_child import NICE

SHAPES = ["circle", "cross", "triangle", "square"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_plain_models(tmp_path_factory)["softmax3_i8"]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 27 s at 30 fps (played with --realtime): outlives what a test does to it."""
    frames = camera_like_frames(SHAPES * 4, 50, size=(160, 120))
    return write_video(tmp_path_factory.mktemp("fleet_process") / "v.avi", frames, fps=30.0)


def publisher_pid(run_pid: int, timeout: float = 20.0) -> int:
    """The run's publisher process (a child running edgecls.device.mqtt_child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{run_pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                if b"edgecls.device.mqtt_child" in cmdline:
                    return int(child)
        time.sleep(0.05)
    raise AssertionError("edgecls run has no publisher process")


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":  # exited, waiting for its (new) parent to reap it
            return True
        time.sleep(0.05)
    return False


def autogroup(pid: int) -> str | None:
    """The autogroup a process is scheduled in, or None where the kernel names none: no
    autogrouping, or a session left in the root group, where the file is there but empty (CI)."""
    path = Path(f"/proc/{pid}/autogroup")
    words = path.read_text().split() if path.exists() else []
    return words[0] if words else None


@needs_mosquitto
@pytest.mark.slow
def test_killed_run_takes_its_publisher_along_and_the_will_says_offline(model: Path, video: Path, broker: Mosquitto,
                                                                         tmp_path: Path) -> None:
    seqs: list[int] = []
    host = monitor(broker.url, on_event=lambda _d, e, _t: seqs.append(int(e["seq"])))
    dev = start_device(model, video, broker.url, "cam", tmp_path, "--realtime")
    try:
        wait_online(host, ["cam"])
        child = publisher_pid(dev.pid)
        assert child != dev.pid
        # A process group of its own (a Ctrl-C at the terminal reaches the run alone), in the run's
        # session and so its autogroup (sched(7)): there its nice value counts against the loop.
        assert os.getpgid(child) == child != os.getpgid(dev.pid)
        assert os.getsid(child) == os.getsid(dev.pid)
        assert autogroup(child) == autogroup(dev.pid)
        assert os.getpriority(os.PRIO_PROCESS, child) == min(19, os.getpriority(os.PRIO_PROCESS, dev.pid) + NICE)
        listener = Listener(broker.url, ["edgecls/cam/claim"])
        claim = listener.wait(lambda m: m[2])[0][1]
        listener.close()
        assert json.loads(claim)["pid"] == dev.pid  # the claim names the run, not its helper
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "publisher_cpu_percent" not in (host.devices["cam"].stats or {}):
            time.sleep(0.1)
        stats = host.devices["cam"].stats or {}
        assert isinstance(stats.get("publisher_cpu_percent"), float) and "cpu_percent" in stats, stats  # both processes
        time.sleep(2.0)  # some events out
        dev.send_signal(signal.SIGKILL)
        dev.communicate(timeout=30)
        assert gone(child, 10.0), "the publisher process outlived the run"
    finally:
        if dev.poll() is None:
            dev.kill()
    offline = Listener(broker.url, ["edgecls/cam/availability"])
    assert offline.wait(lambda m: m[2] and m[1] == b"offline", timeout=15)  # the last will, retained
    offline.close()
    first = len(seqs)
    assert first > 0 and seqs == list(range(first)), seqs[:20]
    # the next run on the same spool: what the killed one had spooled goes out, and seq goes on
    (tmp_path / "cam.jsonl").rename(tmp_path / "first.jsonl")
    again = start_device(model, video, broker.url, "cam", tmp_path, "--max-frames", "60")
    _out, err = again.communicate(timeout=120)
    assert again.returncode == 0 and "Traceback" not in err, err
    more = len(label_changes(tmp_path / "cam.jsonl"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (len(seqs) <= first or len(set(seqs)) < max(seqs) + 1):
        time.sleep(0.1)
    host.close()
    unique = sorted(set(seqs))
    assert unique == list(range(len(unique))), unique[-20:]  # no gap, no seq used twice for two events
    assert len(unique) >= first + more


@needs_mosquitto
@pytest.mark.slow
def test_a_dead_publisher_process_is_started_again(model: Path, video: Path, broker: Mosquitto, tmp_path: Path) -> None:
    seqs: list[int] = []
    host = monitor(broker.url, on_event=lambda _d, e, _t: seqs.append(int(e["seq"])))
    dev = start_device(model, video, broker.url, "phoenix", tmp_path, "--realtime", "--max-frames", "450")
    try:
        wait_online(host, ["phoenix"])
        child = publisher_pid(dev.pid)
        time.sleep(1.0)
        os.kill(child, signal.SIGKILL)
        assert gone(child, 5.0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and host.devices["phoenix"].availability != "offline":
            time.sleep(0.05)
        assert host.devices["phoenix"].availability == "offline"  # the broker saw the connection drop: the will
        wait_online(host, ["phoenix"], timeout=30)  # ... and the new process said online again
        assert publisher_pid(dev.pid) != child
        _out, err = dev.communicate(timeout=120)
    finally:
        if dev.poll() is None:
            dev.kill()
    assert dev.returncode == 0 and "Traceback" not in err, err
    assert "MQTT publisher process ended" in err and err.count("MQTT publisher process ended") == 1, err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(set(seqs)) < max(seqs, default=-1) + 1:
        time.sleep(0.1)
    host.close()
    unique = sorted(set(seqs))
    assert unique and unique == list(range(len(unique))), unique[-20:]  # seq went on, never back
    assert len(unique) >= len(label_changes(tmp_path / "phoenix.jsonl")) - 5  # at most a tick's events lost with it


@needs_mosquitto
@pytest.mark.parametrize("in_process", [False, True], ids=["publisher-process", "in-process"])
def test_a_command_publishes_fresh_stats_at_once(in_process: bool, broker: Mosquitto, tmp_path: Path) -> None:
    """A field check's verdict is in the stats right after its reply, not at the next periodic
    stats message (60 s here): `fleet status` after `fleet check` shows it."""
    from edgecls.device.mqtt import FleetPublisher, PublisherProcess
    from edgecls.device.spool import Spool
    from edgecls.fleet_protocol import Topics, parse_broker

    verdict: dict[str, object] = {}

    def field_check(_pub: object, _args: object) -> dict[str, object]:
        verdict["field_check"] = {"passed": True}
        return {"passed": True}

    common = {"state": lambda: {"label": "a", "seq": 0}, "stats": lambda: {"fps": 1.0, **verdict},
              "stats_every_s": 60.0, "commands": {"field-check": field_check}}
    pub = (FleetPublisher(parse_broker(broker.url), Topics("edgecls", "s1"), Spool(tmp_path / "s.sqlite"), **common)
           if in_process else PublisherProcess(parse_broker(broker.url), Topics("edgecls", "s1"), tmp_path / "s.sqlite", **common))
    pub.start()
    listener = Listener(broker.url, ["edgecls/s1/stats", "edgecls/s1/cmd/result"])
    host = monitor(broker.url)
    try:
        assert pub.wait_ready(10)
        listener.wait(lambda m: m[0].endswith("/stats"))  # the first, at connect
        wait_online(host, ["s1"])
        host.send("s1", "field-check")
        listener.wait(lambda m: m[0].endswith("/cmd/result") and b'"ok":true' in m[1], 10)
        fresh = listener.wait(lambda m: m[0].endswith("/stats") and b'"passed":true' in m[1], 10)
        assert json.loads(fresh[0][1])["field_check"] == {"passed": True}
    finally:
        host.close()
        listener.close()
        pub.close(flush_s=0.5)
