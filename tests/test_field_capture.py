"""Capture rules, near-duplicates, rate caps, the drift monitor (no model), and the
device runs with ``--capture`` and the drift monitor on real artifacts and real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from device_helpers import camera_like_frames, write_video

from edgecls.demo_data import render
from edgecls.demo_field import apply_shift
from edgecls.device.capture_rules import RateCaps, RuleSet, parse_rate, parse_rules
from edgecls.device.dedupe import Deduper, fingerprint
from edgecls.device.drift import DriftMonitor
from edgecls.device.model import ModelInfo
from edgecls.device.results import Frame, FrameStats, LoopStats, Prediction, StageTimings
from edgecls.drift import Baseline, build_baseline
from edgecls.errors import DataError
from edgecls.preprocess import to_model_input

LABELS = ("circle", "cross")


def _pred(p: float) -> Prediction:
    probs = (1.0 - p, p)
    best = int(p >= 0.5)
    return Prediction(LABELS[best], best, max(probs), probs, ((LABELS[best], max(probs)),))


def test_rules_parse_and_match() -> None:
    rules = parse_rules(["low-score:0.6,margin:0.3", "label:cross", "every:5", "flip"], LABELS)
    assert [str(r) for r in rules] == ["low-score:0.6", "margin:0.3", "label:cross", "every:5", "flip"]
    rs = RuleSet(rules[:2])
    assert rs.match(1, _pred(0.45)) is not None and str(rs.match(1, _pred(0.45))) == "low-score:0.6"
    assert str(rs.match(1, _pred(0.36))) == "margin:0.3"  # score 0.64 passes low-score, margin 0.28 does not
    assert rs.match(1, _pred(0.9)) is None
    assert str(RuleSet((rules[2],)).match(3, _pred(0.9))) == "label:cross"
    every = RuleSet((rules[3],))
    assert [every.match(i, _pred(0.0)) is not None for i in range(6)] == [True, False, False, False, False, True]
    flip = RuleSet((rules[4],))
    hits = [flip.match(i, _pred(0.99 if i != 10 else 0.01)) is not None for i in range(12)]
    assert hits == [False] * 10 + [True, False]
    for bad, needle in (("low-score:2", "not in (0, 1]"), ("margin:x", "not a number"), ("label:dog", "not one of"),
                        ("every:0", "whole number"), ("sometimes", "unknown rule"), ("flip:3", "no value")):
        with pytest.raises(DataError, match="accepted forms") as err:
            parse_rules([bad], LABELS)
        assert needle in str(err.value)


def test_rate_caps_per_minute_and_hour() -> None:
    now = [0.0]
    caps = RateCaps(parse_rate("3/min,5/hour"), clock=lambda: now[0])
    got = []
    for _ in range(20):
        got.append(caps.allow())
        now[0] += 10.0
    # 3 in the first minute, then 2 more in the second, then the hour is full
    assert sum(got) == 5 and got[:4] == [True, True, True, False]
    now[0] = 3700.0
    assert caps.allow()
    with pytest.raises(DataError, match="accepted forms"):
        parse_rate("3/fortnight")


def test_near_duplicates_are_suppressed_new_scenes_kept() -> None:
    rng = np.random.default_rng(0)
    scene = render("circle", rng, (240, 320))
    other = render("cross", rng, (240, 320))
    d = Deduper()
    fp = fingerprint(to_model_input(scene, "bgr"))
    assert not d.seen(fp)
    d.remember(fp)
    noisy = np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8)
    shifted = np.roll(scene, 3, axis=1)
    assert d.seen(fingerprint(to_model_input(noisy, "bgr")))
    assert d.seen(fingerprint(to_model_input(shifted, "bgr")))
    assert not d.seen(fingerprint(to_model_input(other, "bgr")))
    assert d.suppressed == 2


def _baseline(n: int = 300) -> tuple[Baseline, list[np.ndarray]]:
    rng = np.random.default_rng(1)
    imgs = [to_model_input(render(LABELS[i % 2], rng, (120, 160)), "bgr") for i in range(n)]
    return build_baseline(np.stack(imgs), LABELS, np.arange(n) % 2, np.full(n, 0.97)), imgs


def _feed(monitor: DriftMonitor, tensors: list[np.ndarray], start: int = 0) -> None:
    for i, t in enumerate(tensors):
        n = start + i
        stats = FrameStats(n, n, 0.0, 0.0, StageTimings(0, 0, 0, 0), LoopStats(0, n + 1, 0, 0, 0))
        monitor.on_result(Frame(t, "rgb", n, 0.0, 0.0), t, _pred(0.97 if n % 2 else 0.03), stats)


def test_drift_monitor_quiet_on_training_like_frames_alarms_on_darkening() -> None:
    baseline, _ = _baseline()
    info = ModelInfo(Path("m.tflite"), LABELS, "sigmoid", None, "test")
    monitor = DriftMonitor(info, Baseline.from_json(baseline.to_json(), "test"), window=300, sample_every=2)
    rng = np.random.default_rng(2)
    fresh = [to_model_input(render(LABELS[i % 2], rng, (120, 160)), "bgr") for i in range(600)]
    _feed(monitor, fresh)
    assert monitor.checks > 0 and not monitor.alarms, monitor.state()
    dark = [to_model_input(apply_shift(render(LABELS[i % 2], rng, (120, 160)), "gamma", rng, 1.5), "bgr") for i in range(300)]
    _feed(monitor, dark, 600)
    assert "brightness" in monitor.alarms, monitor.state()
    line = monitor.describe("brightness")
    assert line.startswith("brightness PSI ") and "mean" in line
    state = monitor.state()
    assert state["enabled"] and any(a["statistic"] == "brightness" for a in state["alarms"])
    assert json.loads(json.dumps(state)) == state
    off = DriftMonitor(info, None)
    assert off.state() == {"enabled": False, "reason": off.off_reason} and "no drift baseline" in off.off_reason
    assert off.summary() == "drift off (no baseline)"
    with pytest.raises(Exception, match="not a usable drift baseline"):
        Baseline.from_json('{"format": "edgecls-drift-baseline", "version": 1}', "x")


# ----- real artifacts, real files


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """240 camera-like frames, a new scene every 2 frames (so near-duplicates are rare)."""
    out = tmp_path_factory.mktemp("capvideo")
    frames = camera_like_frames(["circle", "cross"] * 60, 2, seed=5, size=(320, 240))
    return write_video(out / "field.avi", frames)


def _strip_baseline(model: Path, out: Path) -> Path:
    from edgecls.convert.metadata import append_files

    with zipfile.ZipFile(model) as zf:
        start = min(i.header_offset for i in zf.infolist())
        members = {n: zf.read(n) for n in zf.namelist() if n != "baseline.json"}
    out.write_bytes(append_files(model.read_bytes()[:start], members))
    return out


@pytest.mark.slow
def test_capture_ring_stays_within_quota_and_imports(int8_model: Path, video: Path, tmp_path: Path) -> None:
    cap = tmp_path / "cap"
    # every:1 with no rate cap: far more than 1 MB of PNGs, so the ring must evict
    proc = run_cli("run", "--model", str(int8_model), "--source", str(video), "--headless", "--quiet",
                   "--capture", str(cap), "--capture-rule", "every:1", "--capture-rate", "100000/min",
                   "--capture-quota", "1", "--stats-every", "0", check=True)
    size = sum(p.stat().st_size for p in cap.iterdir() if p.name != "session.json")
    assert 0 < size <= 1_000_000, size
    assert "evicted for the quota" in proc.stderr
    evicted = int(proc.stderr.split(" dropped (writer behind), ")[1].split(" evicted")[0])
    records = sorted(cap.glob("*.json"))
    records = [r for r in records if r.name != "session.json"]
    assert evicted > 0 and len(records) > 3
    for r in records:  # every capture left is complete
        rec = json.loads(r.read_text())
        assert rec["rule"] == "every:1" and len(rec["model_sha256"]) == 64
        assert (cap / rec["image"]).is_file() and np.load(cap / rec["tensor"]).shape == (64, 64, 3)
        assert cv2.imread(str(cap / rec["image"])).shape == (240, 320, 3)  # the original, not resized
    session = json.loads((cap / "session.json").read_text())
    assert session["capture"]["rules"] == ["every:1"]

    review = tmp_path / "review"
    proc = run_cli("field", "import", str(cap), "--out", str(review), "--model", str(int8_model), check=True)
    rows = (review / "index.csv").read_text().splitlines()
    assert rows[0] == "file,predicted,score,rule,frame,ts,run,capture" and len(rows) == len(records) + 1
    first = rows[1].split(",")
    assert (review / first[0]).is_file() and "_s" in first[0] and first[0].endswith("_every-1.png")
    # refusals: not a capture folder; captures of a model with other labels; an existing review folder
    assert_one_line_error(run_cli("field", "import", str(video.parent), "--out", str(tmp_path / "r2")), "is not a capture folder")
    other = tmp_path / "labels.txt"
    other.write_text("cat\ndog\n")
    assert_one_line_error(run_cli("field", "import", str(cap), "--out", str(tmp_path / "r3"), "--labels", str(other)),
                          "from a model with labels circle, cross")
    assert not (tmp_path / "r3").exists()
    # capture resumes in the same folder with the same model, and refuses another model's folder
    proc = run_cli("run", "--model", str(int8_model), "--source", str(video), "--headless", "--quiet", "--max-frames", "5",
                   "--capture", str(cap), "--capture-rule", "every:1", "--capture-quota", "1", "--stats-every", "0", check=True)
    stripped = _strip_baseline(int8_model, tmp_path / "other.tflite")
    proc = run_cli("run", "--model", str(stripped), "--source", str(video), "--headless", "--capture", str(cap))
    assert_one_line_error(proc, "holds frames of another model")


@pytest.mark.slow
def test_capture_bad_input(int8_model: Path, video: Path, tmp_path: Path) -> None:
    base = ("run", "--model", str(int8_model), "--source", str(video), "--headless", "--quiet")
    assert_one_line_error(run_cli(*base, "--capture", str(tmp_path / "c"), "--capture-rule", "low-score:high"),
                          "bad --capture-rule 'low-score:high'")
    assert_one_line_error(run_cli(*base, "--capture", str(tmp_path / "c"), "--capture-rule", "label:dog"), "accepted forms")
    assert_one_line_error(run_cli(*base, "--capture", str(tmp_path / "c"), "--capture-rate", "5/week"), "bad --capture-rate")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(run_cli(*base, "--capture", str(blocker / "sub")), "cannot write --capture")
    assert_one_line_error(run_cli(*base, "--capture", str(blocker)), "is not a folder")
    assert not (tmp_path / "c").exists()


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_capture_on_a_disk_that_fills_up(int8_model: Path, video: Path, tmp_path: Path) -> None:
    """A real 3 MB tmpfs: the quota (50 MB) is larger than the disk. Writing fails with
    ENOSPC mid-run: the oldest captures are evicted, then capture stops with a logged
    line, and classification runs to the end of the file."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "3m"):
        pytest.skip("needs root and tmpfs to make a small real filesystem")
    try:
        proc = run_cli("run", "--model", str(int8_model), "--source", str(video), "--headless", "--quiet",
                       "--capture", str(disk / "cap"), "--capture-rule", "every:1", "--capture-rate", "100000/min",
                       "--capture-quota", "50", "--stats-every", "0")
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "done: 240 frames" in proc.stderr
        assert "No space left on device" in proc.stderr and "evicted the oldest captures" in proc.stderr
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 500_000))
        assert_one_line_error(run_cli("run", "--model", str(int8_model), "--source", str(video), "--headless",
                                      "--capture", str(disk / "cap2")), "is on a full disk")
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.slow
def test_drift_monitor_in_the_live_loop(int8_model: Path, tmp_path: Path) -> None:
    """With a baseline: quiet on training-like video, an alarm naming brightness on a darkened one;
    an artifact without one runs and says the monitor is off."""
    rng = np.random.default_rng(3)
    scenes = [cv2.resize(render(["circle", "cross"][i % 2], rng), (320, 240)) for i in range(150)]
    plain = [s for s in scenes for _ in range(6)]  # one window (900 frames) of 150 scenes
    dark = [apply_shift(f, "gamma", rng, 1.5) for f in plain]  # a second window, under-exposed
    video = write_video(tmp_path / "drift.avi", plain + dark)
    proc = run_cli("run", "--model", str(int8_model), "--source", str(video), "--headless", "--quiet",
                   "--stats-every", "0.01", check=True)
    alarms = [line for line in proc.stderr.splitlines() if "drift alarm" in line]
    assert alarms and any("brightness PSI" in line for line in alarms), proc.stderr
    first = proc.stderr.index("drift alarm")
    assert "stats:" in proc.stderr and "drift ok" in proc.stderr[:first], proc.stderr[:first][-2000:]
    stripped = _strip_baseline(int8_model, tmp_path / "nobase.tflite")
    proc = run_cli("run", "--model", str(stripped), "--source", str(video), "--headless", "--quiet",
                   "--max-frames", "20", "--stats-every", "0.01", check=True)
    assert "drift monitor off: nobase.tflite carries no drift baseline" in proc.stderr


def test_collect_saves_originals_and_skips_near_duplicates(tmp_path: Path) -> None:
    frames = camera_like_frames(["circle", "cross"], 4, seed=1, size=(320, 240))
    video = write_video(tmp_path / "c.avi", frames + [frames[0]] * 8)
    proc = run_cli("collect", "--source", str(video), "--label", "circle", "--out", str(tmp_path / "data"), check=True)
    saved = sorted((tmp_path / "data" / "circle").iterdir())
    assert len(saved) == 8 and "8 near-duplicates skipped" in proc.stdout, proc.stdout
    assert all(cv2.imread(str(p)).shape == (240, 320, 3) for p in saved)  # originals, never resized
    proc = run_cli("collect", "--source", str(video), "--label", "cross", "--out", str(tmp_path / "data"), "--count", "3",
                   check=True)
    assert len(list((tmp_path / "data" / "cross").iterdir())) == 3
    assert_one_line_error(run_cli("collect", "--source", str(video), "--label", "../up", "--out", str(tmp_path / "d")),
                          "cannot be a folder name")
    assert_one_line_error(run_cli("collect", "--source", str(tmp_path / "none.avi"), "--label", "a", "--out",
                                  str(tmp_path / "d")), "none.avi")


def test_drift_state_reaches_status_and_metrics() -> None:
    """The monitor's accessor, through a real preview server: /status carries it, /metrics its gauges."""
    from serve_helpers import get, status

    from edgecls.device.serve import PreviewSink, parse_address

    baseline, _ = _baseline()
    info = ModelInfo(Path("m.tflite"), LABELS, "sigmoid", None, "test")
    monitor = DriftMonitor(info, baseline, window=300, sample_every=2)
    rng = np.random.default_rng(4)
    dark = [to_model_input(apply_shift(render(LABELS[i % 2], rng, (120, 160)), "gamma", rng, 1.5), "bgr") for i in range(330)]
    _feed(monitor, dark)
    sink = PreviewSink(parse_address("127.0.0.1:0"), info, "cpu, test", "test.avi")
    try:
        sink.attach({"drift": monitor, "off": DriftMonitor(info, None)})
        port = sink.address.port
        got = status(port)
        assert got["drift"]["enabled"] and got["drift"]["alarms"][0]["statistic"] in got["drift"]["psi"]
        assert got["off"] == {"enabled": False, "reason": monitor.off_reason or got["off"]["reason"]}
        code, _, body = get(port, "/metrics")
        text = body.decode()
        assert code == 200 and 'edgecls_drift_alarm{statistic="brightness"} 1.0' in text, text[-1500:]
        assert "edgecls_drift_enabled 0.0" in text and "edgecls_drift_enabled 1.0" in text
    finally:
        sink.close()
