#!/usr/bin/env python3
"""Benchmark ``edgecls run --mqtt`` and ``edgecls fleet`` against issue 13; print a markdown section.

    .venv/bin/python scripts/bench_fleet.py [--model M.tflite] [--quick] [--only noloss|cost|scale|decode] [--rounds N] [--recording camera|flicker] [--spare-core] > section.md

``--only cost`` runs part 3 alone (a few minutes instead of the whole section); ``--only scale``
the scale part alone (under a minute).

1. No loss (``--only noloss``: with 2. alone): 8 ``edgecls run --realtime --mqtt`` processes on one 64 s recording, one
   Mosquitto (persistence on), SIGKILLed and restarted 3 times during the run. A collector
   (``FleetMonitor`` with a persistent session) counts events by seq; each device's own JSONL
   says which label changes it emitted. Goal: received = emitted, for every device.
2. Latency: emit (the loop hands the event over) to host receive, for events emitted while
   the broker was up and the spool empty (from 5 s after a restart to the next kill).
3. Cost: frames/s of ``edgecls run --headless`` on the same file with ``--mqtt`` and without,
   alternated in this run (50 rounds of 100 s recordings), the median of each round's own
   ratio. Goal: >= 0.95x. Two recordings of the demo's classes
   (circle, cross; give the demo's model with ``--model``): what a camera sees (the scene
   changes every 2 s: ``edgecls demo-video`` at 320x240), and the worst case, the label
   changing on every other frame (a model that flickers). Decoded as fast as they go.
   With ``EDGECLS_BENCH_BASELINE=DIR`` (an older tree's import path, e.g. a ``git archive``
   with ``device/`` copied to ``edgecls/device``) a third arm runs ``--mqtt`` from that tree,
   in the same rounds. ``--spare-core`` runs every arm as on a device with a core to spare:
   the run on all CPUs but the last, its publisher process and the broker on the last.
   Per-event CPU: the publisher path alone against the broker, 3000 events at 500 a second
   (this tree: ``PublisherProcess``, paho and the spool in a child process; a baseline tree
   without it: ``FleetPublisher`` on threads); CPU per event of the emitting thread (the
   loop's share), of the other threads of its process (they take the loop's GIL) and of
   the publisher process.
   ``--only decode``: the camera recording read alone (no classifier) with FFmpeg on 1 and 2
   threads and on its own choice (one per core, OpenCV's default), the order rotated.
4. Scale: 50 simulated devices (the device-side ``FleetPublisher``, no classifier) and
   ``edgecls fleet status --json`` as a user runs it (a new process). Goal: within 2 s.

Needs Debian's mosquitto. Without ``--model`` a 3-class int8 CNN with random weights is
converted here (its label changes often on these frames, which is what is counted).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from device_helpers import camera_like_frames, write_video  # noqa: E402
from mqtt_helpers import MOSQUITTO, Mosquitto  # noqa: E402

if TYPE_CHECKING:
    from edgecls.device.spool import SpoolStats

SHAPES = ["circle", "cross", "triangle", "square", "star", "ring"]
COST_GOAL = 0.95
#: Rounds of the cost runs (each round: every arm once, the order rotated). Many short runs, not
#: a few long ones: the machine's speed drifts over seconds, and a round's own ratio cancels it.
COST_ROUNDS = 50
BASELINE = os.environ.get("EDGECLS_BENCH_BASELINE")
STATUS_GOAL_S = 2.0
LOADS: list[float] = []  # the 1-minute load average at the start of each cost run


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """First quartile, median, third quartile."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, q2, q3


def median_interval(values: list[float], level: float = 0.9, resamples: int = 4000) -> tuple[float, float]:
    """A bootstrap interval of the median (seeded: the same runs give the same interval)."""
    rng = np.random.default_rng(0)
    meds = np.median(rng.choice(np.asarray(values), size=(resamples, len(values))), axis=1)
    return float(np.quantile(meds, (1 - level) / 2)), float(np.quantile(meds, (1 + level) / 2))


def verdict(values: list[float], goal: float) -> str:
    """met / NOT met only when the 90 % interval of the median is on one side of the goal."""
    lo, hi = median_interval(values)
    if lo >= goal:
        return f"met: 90 % interval of the median {lo:.3f} - {hi:.3f}"
    if hi < goal:
        return f"NOT met: 90 % interval of the median {lo:.3f} - {hi:.3f}"
    return f"not resolved by this run: 90 % interval of the median {lo:.3f} - {hi:.3f} spans it"


def say(message: str) -> None:
    print(f"[bench_fleet] {message}", file=sys.stderr, flush=True)


def make_model(work: Path) -> Path:
    from device_helpers import plain_models

    return plain_models(work / "models")["softmax3_i8"]


def label_changes(jsonl: Path) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for line in jsonl.read_text().splitlines():
        r = json.loads(line)
        if "event" in r:  # run_start / run_end, not a frame
            continue
        if not out or out[-1][1] != r["label"]:
            out.append((r["frame"], r["label"]))
    return out


def device_cmd(model: Path, video: Path, url: str | None, name: str, work: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "edgecls", "run", "--model", str(model), "--source", str(video), "--headless",
           "--quiet", "--jsonl", str(work / f"{name}.jsonl"), "--stats-every", "0", *extra]
    if url:
        cmd += ["--mqtt", url, "--device-id", name, "--mqtt-spool", str(work / f"{name}.sqlite")]
    return cmd


def no_loss(model: Path, video: Path, work: Path, devices: int, kills: int, seconds: float) -> dict:
    from edgecls.fleet_host import FleetMonitor
    from edgecls.fleet_protocol import parse_broker

    broker = Mosquitto(work / "broker").start()
    received: dict[str, dict[int, tuple[dict, float]]] = {}


    def on_event(device: str, event: dict, t: float) -> None:
        received.setdefault(device, {})[event["seq"]] = (event, t)

    host = FleetMonitor(parse_broker(broker.url), session="bench-collector", on_event=on_event).start()
    names = [f"pi{i:02d}" for i in range(devices)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = [subprocess.Popen(device_cmd(model, video, broker.url, n, work, "--realtime"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=env) for n in names]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not all(
            n in host.devices and host.devices[n].availability == "online" for n in names):
        time.sleep(0.2)
    t0 = time.time()
    say(f"{devices} devices online; killing the broker {kills} times over {seconds:.0f} s")
    outages: list[tuple[float, float]] = []
    for k in range(kills):
        time.sleep(max(0.0, t0 + (k + 1) * seconds / (kills + 1) - time.time()))
        down = time.time()
        broker.kill()
        time.sleep(2.0)
        broker.start()
        outages.append((down, time.time()))
        say(f"broker killed at +{down - t0:.1f} s, back after {time.time() - down:.1f} s")
    errs = [p.communicate(timeout=300)[1] for p in procs]
    expected = {n: label_changes(work / f"{n}.jsonl") for n in names}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(len(received.get(n, {})) < len(expected[n]) for n in names):
        time.sleep(0.2)
    host.close()
    broker.stop()
    rows = []
    latencies: list[float] = []
    for n, err in zip(names, errs, strict=True):
        got = received.get(n, {})
        ok_frames = [(got[s][0]["frame"], got[s][0]["label"]) for s in sorted(got)] == expected[n]
        rows.append({"device": n, "emitted": len(expected[n]), "received": len(got),
                     "left": spool_stats(work / f"{n}.sqlite").pending,
                     "missing": len(set(range(len(expected[n]))) - set(got)), "in_order_match": ok_frames,
                     "reconnects": err.count("reconnected to"), "duplicates": host.devices[n].seqs.duplicates})
        for event, t in got.values():
            e = event["emitted"]
            if all(not (down <= e <= up + 5.0) for down, up in outages):
                latencies.append((t - e) * 1000.0)
    latencies.sort()
    return {"rows": rows, "outages": len(outages), "latencies": latencies}


Arm = TypeVar("Arm")


def rotated(arms: list[Arm], r: int) -> list[Arm]:
    """Round ``r``'s order of the arms: each arm goes first in turn."""
    return arms[r % len(arms):] + arms[:r % len(arms)]


def spare_core_split() -> tuple[set[int], set[int]]:
    """``--spare-core``: (the run's CPUs, the publisher's): the last CPU this process may use
    goes to the publisher process, the broker and this bench; the run gets the others."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("bench_fleet: --spare-core needs at least 2 CPUs")
    return set(cpus[:-1]), {cpus[-1]}


def cpu_list(cpus: set[int]) -> str:
    """CPUs as ``taskset --cpu-list`` and the section's text write them: ``0,1``."""
    return ",".join(map(str, sorted(cpus)))


def _pin_children(pid: int, cpus: set[int]) -> None:
    """Every thread of every child process of ``pid`` onto ``cpus`` (a thread started later
    inherits its starter's CPUs; those started before are caught by the next call)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return
    for child in children:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{child}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                if os.sched_getaffinity(tid) != cpus:
                    os.sched_setaffinity(tid, cpus)
            except OSError:
                pass  # the thread ended


def run_fps(cmd: list[str], baseline: bool = False, spare: tuple[set[int], set[int]] | None = None) -> tuple[float, float, float]:
    """frames/s and CPU ms a frame (the loop's process, all its threads, during the loop) from
    the run's closing line; and CPU seconds of the whole run, every process (the publisher
    process too; start-up and model loading included). ``spare``: the run on the first CPUs,
    its publisher process moved to the second (every 20 ms, from its start on)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if baseline:
        env["PYTHONPATH"] = str(BASELINE)
    if spare is not None:
        cmd = ["taskset", "--cpu-list", cpu_list(spare[0]), *cmd]
    LOADS.append(os.getloadavg()[0])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # cwd: not the repository: ``python -m`` puts the working directory first on sys.path, and
    # the repository's edgecls/ would shadow the baseline tree's (the baseline arm of sessions
    # 4 and 5 ran this tree: BENCHMARKS.md says so)
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=tempfile.gettempdir())
        while spare is not None and proc.poll() is None:
            _pin_children(proc.pid, spare[1])
            time.sleep(0.02)
        proc.wait()
        err.seek(0)
        stderr = err.read()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"\(([\d.]+) fps, ([\d.]+) ms CPU a frame", stderr)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(stderr[-2000:])
    return float(m.group(1)), float(m.group(2)), after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def cost(model: Path, video: Path, work: Path, rounds: int, spare: tuple[set[int], set[int]] | None = None) -> dict:
    """Alternated arms, the order rotated each round; each run starts with an empty JSONL and
    spool (the JSONL appends: a reused one would count earlier runs' label changes too).
    ``spare``: every arm's run on the first CPUs; the publisher process, the broker and this
    bench on the second."""
    broker = Mosquitto(work / "cost_broker").start()
    broker_pid = broker.proc.pid if broker.proc else None
    mine = os.sched_getaffinity(0)
    if spare is not None and broker_pid is not None:
        os.sched_setaffinity(broker_pid, spare[1])
        os.sched_setaffinity(0, spare[1])
    arms = ["without", "with"] + (["baseline"] if BASELINE else [])
    out: dict = {arm: [] for arm in arms}
    undelivered: dict[str, list[int]] = {arm: [] for arm in arms if arm != "without"}
    brokers: dict[str, list[float]] = {arm: [] for arm in arms}  # the broker's CPU seconds during each run
    events = 0
    try:
        for r in range(rounds):
            for arm in rotated(arms, r):
                name = f"cost-{video.stem}"
                (work / f"{name}.sqlite").unlink(missing_ok=True)
                (work / f"{name}.jsonl").unlink(missing_ok=True)
                url = broker.url if arm != "without" else None
                held = _proc_cpu(broker_pid)
                fps, cpu, total = run_fps(device_cmd(model, video, url, name, work), baseline=arm == "baseline",
                                          spare=spare)
                out[arm].append((fps, cpu, total))
                brokers[arm].append(_proc_cpu(broker_pid) - held)
                if arm != "without":  # the frames/s counts only if the events went out too
                    events = len(label_changes(work / f"{name}.jsonl"))
                    left = spool_stats(work / f"{name}.sqlite")
                    undelivered[arm].append(left.pending + events - left.next_seq)  # not acknowledged + never spooled
                say(f"cost {video.stem} round {r}: {arm} {fps:.0f} fps, {cpu:.2f} ms CPU a frame, {total:.1f} s CPU all processes")
    finally:
        broker.stop()
        os.sched_setaffinity(0, mine)  # what this bench starts next runs where it likes
    return {**out, "events": events, "undelivered": undelivered, "broker": brokers}


def spool_stats(path: Path) -> SpoolStats:
    """A finished run's spool, read through the device's own Spool: its ``SpoolStats``."""
    from edgecls.device.spool import Spool

    spool = Spool(path)
    try:
        return spool.stats()
    finally:
        spool.close()


def _proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of a live process, from /proc (0 without one)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_event_worker(n: int, rate: float) -> None:
    """In its own process (so a baseline tree can be imported): the publisher path of
    ``edgecls run --mqtt`` against a broker, ``n`` events at ``rate`` a second; prints the CPU
    per event as JSON: the emitting thread (the frame loop's share), the other threads of its
    process, and the publisher process. This tree: ``PublisherProcess`` (paho and the spool in
    a child process); a tree without it (the baseline): ``FleetPublisher`` on threads."""
    import edgecls.device.mqtt as sink_module
    from edgecls.device.spool import Spool
    from edgecls.fleet_protocol import Topics, parse_broker

    # a baseline tree's mqtt.py has none (an editable install may still serve this tree's module)
    PublisherProcess = getattr(sink_module, "PublisherProcess", None)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "b").start()
        try:
            pub: Any
            if PublisherProcess is not None:
                pub = PublisherProcess(parse_broker(broker.url), Topics("edgecls", "cpu"), work / "s.sqlite",
                                       state=lambda: {"label": "a"}, stats=lambda: {"fps": 1.0}, state_every_s=30.0)
            else:
                from edgecls.device.mqtt import FleetPublisher

                pub = FleetPublisher(parse_broker(broker.url), Topics("edgecls", "cpu"), Spool(work / "s.sqlite"),
                                     state=lambda: {"label": "a"}, stats=lambda: {"fps": 1.0}, state_every_s=30.0)
            pub.start()
            pub.wait_ready(10)
            time.sleep(0.5)
            child = pub._proc.pid if PublisherProcess is not None else None
            now = time.time()
            events = [{"ts": round(now, 6), "emitted": round(now, 6), "frame": i, "label": "ab"[i % 2], "score": 0.91,
                       "previous": "ba"[i % 2]} for i in range(n)]
            emit = 0.0
            cpu0, own0, child0, t0 = time.process_time(), time.thread_time(), _proc_cpu(child), time.monotonic()
            for i in range(0, n, 10):  # 10 label changes back to back, then a pause: paced by sleeping
                c = time.thread_time()
                for event in events[i:i + 10]:
                    pub.emit(event)  # what MqttSink.on_result does on a label change
                    pub.state_changed()
                emit += time.thread_time() - c
                time.sleep(max(0.0, t0 + (i + 10) / rate - time.monotonic()))
            while pub.delivered < n and time.monotonic() < t0 + n / rate + 60:
                time.sleep(0.005)
            other = time.process_time() - cpu0 - (time.thread_time() - own0)
            publisher = _proc_cpu(child) - child0
            delivered = pub.delivered
            pub.close(flush_s=1.0)
        finally:
            broker.stop()
    print(json.dumps({"emit_us": 1e6 * emit / n, "other_us": 1e6 * other / n, "child_us": 1e6 * publisher / n,
                      "delivered": delivered, "n": n, "process": PublisherProcess is not None}))


def paho_floor_worker(n: int, rate: float, batch: int = 25) -> None:
    """The library's own share: a bare paho client (network thread started) publishing ``n``
    ready-made event payloads at QoS 1 in batches of ``batch``, waiting for every PUBACK: no
    spool, no JSON. Prints the process CPU per message as JSON."""
    from edgecls.fleet_protocol import make_client, parse_broker

    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "b").start()
        try:
            client = make_client(parse_broker(broker.url), "paho-floor")
            client.max_inflight_messages_set(0)  # as the publisher sets it (device/mqtt_publisher.py: WINDOW)
            acks: list[int] = []
            client.on_publish = lambda _c, _u, mid, _r, _p: acks.append(mid)
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            time.sleep(0.5)
            payload = json.dumps({"v": 1, "seq": 123456, "instance": "0123456789abcdef", "ts": 1796012205.290712,
                                  "emitted": 1796012205.292013, "frame": 1234, "label": "cross", "score": 0.9867,
                                  "previous": "circle"}, separators=(",", ":")).encode()
            cpu0, t0 = time.process_time(), time.monotonic()
            for i in range(0, n, batch):
                for _ in range(batch):
                    client.publish("edgecls/floor/events", payload, qos=1)
                time.sleep(max(0.0, t0 + (i + batch) / rate - time.monotonic()))
            while len(acks) < n and time.monotonic() < t0 + n / rate + 60:
                time.sleep(0.005)
            cpu = time.process_time() - cpu0
            client.loop_stop()
            client.disconnect()
        finally:
            broker.stop()
    print(json.dumps({"paho_us": 1e6 * cpu / n, "delivered": len(acks), "n": n}))


def per_event(rounds: int, n: int = 3000, rate: float = 500.0) -> dict:
    arms = ["with"] + (["baseline"] if BASELINE else [])
    out: dict = {arm: [] for arm in arms}
    for r in range(rounds):
        for arm in rotated(arms, r):
            env = {**os.environ, **({"PYTHONPATH": str(BASELINE)} if arm == "baseline" else {})}
            proc = subprocess.run([sys.executable, __file__, "--per-event-worker", str(n), str(rate)],
                                  capture_output=True, text=True, env=env, check=True)
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            if res["delivered"] != n:
                raise RuntimeError(f"per-event worker delivered {res['delivered']} of {n}")
            out[arm].append(res)
            res.setdefault("child_us", 0.0)  # an older worker: no publisher process
            say(f"per event {arm}: {res['emit_us']:.1f} us emitting, {res['other_us']:.1f} us other threads, "
                f"{res['child_us']:.1f} us publisher process")
    floor = []
    for _ in range(rounds):
        proc = subprocess.run([sys.executable, __file__, "--paho-floor-worker", str(n), str(rate)],
                              capture_output=True, text=True, check=True)
        floor.append(json.loads(proc.stdout.strip().splitlines()[-1])["paho_us"])
        say(f"paho alone: {floor[-1]:.1f} us a message")
    return {**out, "n": n, "rate": rate, "paho": floor}


def decode_alone(video: Path, rounds: int) -> dict[int, list[float]]:
    """Frames/s of reading ``video`` alone (``OpenCVSource``, no classifier) with FFmpeg on 1
    and 2 threads and on FFmpeg's own choice (0: what OpenCV does when not told), in this
    process, the order rotated each round."""
    from edgecls.device.sources import SourceOptions, open_source, parse_source

    out: dict[int, list[float]] = {1: [], 2: [], 0: []}
    for r in range(rounds):
        for n in rotated(list(out), r):
            t = time.perf_counter()
            source = open_source(parse_source(str(video)), SourceOptions(decode_threads=n))
            frames = 0
            while source.read() is not None:
                frames += 1
            source.close()
            out[n].append(frames / (time.perf_counter() - t))
    return out


def decode_lines(d: dict[int, list[float]], what: str) -> list[str]:
    names = {0: "FFmpeg's choice (0: one thread per core; OpenCV's default)", 1: "1 thread", 2: "2 threads"}
    lines = [f"**Decode alone**, {what} (`OpenCVSource`, no classifier, {len(d[0])} rounds, the order rotated; "
             "ratio: round by round against FFmpeg's choice):", "",
             "| FFmpeg threads | median frames/s | round by round / FFmpeg's choice (90 % interval of the median) |",
             "|---|---:|---|"]
    for n, fps in d.items():
        vs = [a / b for a, b in zip(fps, d[0], strict=True)]
        lo, hi = median_interval(vs)
        lines.append(f"| {names[n]} | {statistics.median(fps):.0f} | {statistics.median(vs):.3f}x ({lo:.3f} - {hi:.3f}) |")
    return [*lines, ""]


def scale(work: Path, n: int) -> dict:
    from edgecls.device.mqtt import FleetPublisher
    from edgecls.device.spool import Spool
    from edgecls.fleet_protocol import Topics, parse_broker

    broker = Mosquitto(work / "scale_broker").start()
    pubs = []
    try:
        b = parse_broker(broker.url)
        for i in range(n):
            name = f"sim{i:02d}"
            state: dict[str, Any] = {"label": "circle", "score": 0.9, "ts": time.time(), "event_ts": time.time(), "seq": 2,
                     "model": {"name": "model_int8.tflite", "sha256": "0" * 64, "labels": ["a", "b"]}}
            pub = FleetPublisher(b, Topics("edgecls", name), Spool(work / f"{name}.sqlite"),
                                 state=functools.partial(dict, state), stats=lambda: {"fps": 30.0, "frames": 100},
                                 state_every_s=30.0)
            pub.start()
            for label in ("a", "b", "a"):
                pub.emit({"ts": time.time(), "emitted": time.time(), "frame": 0, "label": label, "score": 0.9})
            pubs.append(pub)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(p.delivered >= 3 for p in pubs):
            time.sleep(0.1)
        from edgecls.fleet_host import FleetMonitor

        times, inproc, startup = [], [], []
        rows = 0
        for _ in range(3):
            start = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "edgecls", "fleet", "status", "--mqtt", broker.url, "--json"],
                                  capture_output=True, text=True)
            times.append(time.monotonic() - start)
            rows = sum(1 for r in json.loads(proc.stdout) if r["online"])
            start = time.monotonic()
            subprocess.run([sys.executable, "-m", "edgecls", "--help"], capture_output=True, text=True)
            startup.append(time.monotonic() - start)
            start = time.monotonic()
            mon = FleetMonitor(b, events=False).start()
            mon.settle()
            assert sum(1 for r in mon.rows() if r["online"]) == n
            mon.close()
            inproc.append(time.monotonic() - start)
        return {"devices": n, "online_rows": rows, "seconds": times, "inproc": inproc, "startup": startup}
    finally:
        for p in pubs:
            p.close(flush_s=0.5)
        broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=COST_ROUNDS,
                    help=f"rounds of the cost runs (default {COST_ROUNDS}); more narrow the interval of the median")
    ap.add_argument("--only", choices=["noloss", "cost", "scale", "decode"],
                    help="only the no-loss and latency part, only the cost part (frames/s with and without --mqtt, "
                         "per-event CPU), only the scale part, or only the decode threads (the camera recording "
                         "read alone)")
    ap.add_argument("--recording", choices=["camera", "flicker"],
                    help="cost runs on this recording only (default: both); all the rounds go to one question")
    ap.add_argument("--spare-core", action="store_true",
                    help="cost runs as on a device whose frame loop leaves a core free (a Pi 4 or 5): every run on "
                         "all CPUs but the last, its publisher process, the broker and this bench on the last")
    ap.add_argument("--per-event-worker", nargs=2, type=float, metavar=("N", "RATE"), help=argparse.SUPPRESS)
    ap.add_argument("--paho-floor-worker", nargs=2, type=float, metavar=("N", "RATE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.per_event_worker:
        per_event_worker(int(args.per_event_worker[0]), args.per_event_worker[1])
        return
    if args.paho_floor_worker:
        paho_floor_worker(int(args.paho_floor_worker[0]), args.paho_floor_worker[1])
        return
    if MOSQUITTO is None:
        raise SystemExit("bench_fleet: mosquitto is not installed (apt-get install -y mosquitto)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only == "scale":
            only = scale(work, 50)
            print("\n".join(["## Fleet over MQTT (issue 13): scale only", "",
                             f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end.",
                             "", scale_line(only), ""]))
            return
        if args.only == "decode":
            from edgecls.demo_data import DemoVideoOptions, generate_video

            camera = work / "camera.avi"
            generate_video(camera, DemoVideoOptions(classes=2, seconds=100, width=320, height=240, seed=3))
            d = decode_alone(camera, 3 if args.quick else 30)
            print("\n".join(["## Fleet over MQTT (issue 13): decode threads only", "",
                             f"{platform.machine()}, {os.cpu_count()} CPUs, OpenCV {cv2.__version__}, load average "
                             f"{os.getloadavg()[0]:.1f} at the end.", "",
                             *decode_lines(d, "the cost bench's camera recording (100 s, 320x240 MJPEG)")]))
            return
        model = args.model or make_model(work)
        seconds = 20 if args.quick else 64
        nl = None
        if args.only in (None, "noloss"):
            say(f"writing a {seconds} s recording")
            video = write_video(work / "rec.avi", camera_like_frames(SHAPES * (seconds // 3), 15, size=(320, 240))[: seconds * 30])
            nl = no_loss(model, video, work, devices=3 if args.quick else 8, kills=3, seconds=seconds)
        if args.only == "noloss":
            assert nl is not None
            print("\n".join(["## Fleet over MQTT (issue 13): no loss and latency only", "",
                             f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end.",
                             "", *no_loss_lines(nl, seconds)]))
            return
        cost_s = 20 if args.quick else 100
        say(f"writing the cost recordings ({cost_s} s each)")
        from edgecls.demo_data import DemoVideoOptions, generate_video, render

        rounds = 3 if args.quick else args.rounds
        spare = spare_core_split() if args.spare_core else None
        c = ch = None
        if args.recording in (None, "camera"):
            camera = work / "camera.avi"
            generate_video(camera, DemoVideoOptions(classes=2, seconds=cost_s, width=320, height=240, seed=3))
            c = cost(model, camera, work, rounds, spare)
        if args.recording in (None, "flicker"):
            rng = np.random.default_rng(5)
            flicker = write_video(work / "flicker.avi", [cv2.resize(render(k, rng), (320, 240)) for k in
                                                        ["circle", "circle", "cross", "cross"] * (cost_s * 30 // 4)])
            ch = cost(model, flicker, work, rounds, spare)
        pe = per_event(3)
        s = None if args.only else scale(work, 50)
    def cost_lines(c: dict, what: str) -> list[str]:
        med = {arm: (statistics.median(x[0] for x in c[arm]), statistics.median(x[1] for x in c[arm]))
               for arm in ("without", "with", "baseline") if arm in c}
        whole = {arm: statistics.median(x[2] for x in c[arm]) for arm in med}
        wo, co = med["without"]
        frames = cost_s * 30
        names = {"without": "without `--mqtt`", "with": "with `--mqtt`", "baseline": "with `--mqtt`, before (baseline tree)"}
        lines = [f"{what}: {c['events']} label changes (events) in {frames} frames.", "",
                 "| run | frames/s, quartiles of the runs | median frames/s | ratio | median CPU ms a frame, loop's process "
                 "| extra CPU a label change, loop's process | median CPU s a run, every process of the run "
                 "| median CPU s a run, the broker |",
                 "|---|---|---:|---:|---:|---:|---:|---:|"]
        for arm, (fps, cpu) in med.items():
            extra = ("" if arm == "without" else "(too few events to tell)" if c["events"] < frames / 20
                     else f"{1e3 * (cpu - co) * frames / c['events']:.0f} us")
            q1, _, q3 = quartiles([x[0] for x in c[arm]])
            lines.append(f"| {names[arm]} | {q1:.0f} - {q3:.0f} | {fps:.0f} | "
                         f"{fps / wo:.3f}x | {cpu:.2f} | {extra} | {whole[arm]:.2f} | "
                         f"{statistics.median(c['broker'][arm]):.2f} |")
        ratio = med["with"][0] / wo
        ratios = [w[0] / o[0] for w, o in zip(c["with"], c["without"], strict=True)]
        p1, paired, p3 = quartiles(ratios)
        before = ""
        if "baseline" in c:
            b1, pb, b3 = quartiles([b[0] / o[0] for b, o in zip(c["baseline"], c["without"], strict=True)])
            vs = [w[0] / b[0] for w, b in zip(c["with"], c["baseline"], strict=True)]
            lo, hi = median_interval(vs)
            before = (f" Before (the baseline tree): round by round {pb:.3f}x (quartiles {b1:.2f} - {b3:.2f}), "
                      f"ratio of the medians {med['baseline'][0] / wo:.3f}x. This tree against the baseline tree, "
                      f"round by round: {statistics.median(vs):.3f}x (90 % interval of the median {lo:.3f} - {hi:.3f}).")
        short = {arm: sum(1 for u in left if u) for arm, left in c["undelivered"].items()}
        delivered = "; ".join(f"{names[arm]}: " + (f"every run's events acknowledged by the broker before it exited "
                                                  f"({len(c['undelivered'][arm])} runs)" if not n else
                                                  f"**{n} of {len(c['undelivered'][arm])} runs ended with events "
                                                  f"not acknowledged** (at most {max(c['undelivered'][arm])})")
                              for arm, n in short.items())
        return [*lines, "", f"Ratio with `--mqtt`: **{paired:.3f}x** frames/s, the median of each round's own ratio "
                f"(quartiles {p1:.2f} - {p3:.2f}; goal >= {COST_GOAL}x: {verdict(ratios, COST_GOAL)}); "
                f"the ratio of the medians: {ratio:.3f}x.{before}", "",
                f"Delivered (each run's spool at its end against its JSONL's label changes): {delivered}.", ""]

    def per_event_lines(pe: dict) -> list[str]:
        names = {"with": "this tree", "baseline": "before (baseline tree)"}
        how = {True: "`PublisherProcess`, paho and the spool in a process of their own",
               False: "`FleetPublisher` on threads of the loop's process"}
        trees = "; ".join(f"{names[arm]}: {how[pe[arm][0]['process']]}" for arm in names if arm in pe)
        lines = [f"**Per-event CPU** of the publisher path alone ({pe['n']} events at {pe['rate']:.0f} a second against "
                 f"the same Mosquitto, medians of {len(pe['with'])} runs; {trees}): the "
                 "emitting thread (the frame loop's share), the other threads of the loop's process (they take its "
                 "GIL), and the publisher process (its own GIL, on another core when there is one).", "",
                 "| tree | emitting thread, us an event | other threads of the loop's process | publisher process | total |",
                 "|---|---:|---:|---:|---:|"]
        for arm in ("with", "baseline"):
            if arm in pe:
                e, o = statistics.median(x["emit_us"] for x in pe[arm]), statistics.median(x["other_us"] for x in pe[arm])
                ch = statistics.median(x["child_us"] for x in pe[arm])
                lines.append(f"| {names[arm]} | {e:.1f} | {o:.0f} | {ch:.0f} | {e + o + ch:.0f} |")
        floor = statistics.median(pe["paho"])
        return [*lines, "", f"Of that, paho alone (a bare client with its network thread, the same payloads at QoS 1 in "
                f"batches of 25, every PUBACK awaited, no spool, no JSON) costs {floor:.0f} us a message: "
                f"{', '.join(f'{x:.0f}' for x in pe['paho'])} us in {len(pe['paho'])} processes.", ""]

    head = ["## Fleet over MQTT (issue 13)", "",
            f"Debian's Mosquitto on loopback (persistence on, saved every second), {platform.machine()}, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; 1-minute load average "
            f"{min(LOADS):.1f} to {max(LOADS):.1f} at the starts of the cost runs. Model: "
            f"{'the given ' + model.name if args.model else 'a 3-class int8 CNN with random weights'}.", ""]
    cost_part = [
            f"**Cost**: `edgecls run --headless --quiet --jsonl` on one file, with `--mqtt` and without, alternated, "
            f"{rounds} rounds each (the order rotated), medians; each run starts with an empty JSONL "
            "and spool. The goal is judged on the median of each round's own ratio: this shared machine's speed "
            "drifts by 10-20 % over seconds (runs of the same code spread that much), and the runs of one round "
            "are next to each other in time. CPU ms a frame: the CPU of the loop's process during the loop (all its threads; the "
            "publisher process of this tree is not in it) per frame; extra CPU a label change: (CPU a frame with "
            "- without) x frames / events; CPU s a run: every process of the run, start to end (start-up, model "
            "loading and the publisher process included), and the broker's, which shares this machine's two cores "
            "here (in a deployment it runs on another machine). "
            + (f"**`--spare-core`**: as on a device whose frame loop leaves a core free (a Pi 4 or 5, 4 cores: "
               f"the loop's capture and inference threads use about 2): every run of every arm on CPU "
               f"{cpu_list(spare[0])}, its publisher process, the broker and this bench on CPU "
               f"{cpu_list(spare[1])}. " if spare is not None else "") +
            f"{'Two recordings' if c is not None and ch is not None else 'A recording'} of the "
            f"demo's classes, {cost_s} s of 320x240, decoded as fast as they go:", "",
            *(cost_lines(c, "What a camera sees (`edgecls demo-video`: the scene changes every 2 s, moving, sensor noise)")
              if c is not None else []),
            *(cost_lines(ch, "Worst case, a flickering label (each class held for 2 frames: a label change on every other frame)")
              if ch is not None else []),
            *per_event_lines(pe)]
    if nl is None or s is None:
        print("\n".join([*head, *cost_part]))
        return
    print("\n".join([*head, *no_loss_lines(nl, seconds), *cost_part, scale_line(s), ""]))


def no_loss_lines(nl: dict, seconds: int) -> list[str]:
    lat = nl["latencies"]
    p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: float("nan"))
    lost = sum(r["missing"] for r in nl["rows"])
    out = [f"**No loss**: {len(nl['rows'])} devices `edgecls run --realtime --mqtt` on one {seconds} s 320x240 recording, "
           f"the broker SIGKILLed and restarted {nl['outages']} times (down 2 s each). Emitted: label changes in each "
           "device's own JSONL; received: distinct seq at a collector with a persistent session.", "",
           "| device | emitted | received | missing | same frames and labels, in seq order | reconnects | duplicates dropped by seq | left in spool |",
           "|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in nl["rows"]:
        out.append(f"| {r['device']} | {r['emitted']} | {r['received']} | {r['missing']} | "
                   f"{'yes' if r['in_order_match'] else 'NO'} | {r['reconnects']} | {r['duplicates']} | {r['left']} |")
    out += ["", f"Lost: **{lost}** (goal 0: {'met' if lost == 0 else 'NOT met'}).", "",
            f"**Latency** emit -> host receive with the broker up ({len(lat)} events, outage windows + 5 s left out): "
            f"p50 {p(0.5):.1f} ms, **p99 {p(0.99):.1f} ms**, max {lat[-1] if lat else float('nan'):.1f} ms.", ""]
    return out


def scale_line(s: dict) -> str:
    met = max(s["seconds"]) <= STATUS_GOAL_S and s["online_rows"] == s["devices"]
    return (f"**Scale**: {s['devices']} simulated devices (the device-side `FleetPublisher`, no classifier), "
            f"`edgecls fleet status --json` as a new process: {', '.join(f'{t:.2f}' for t in s['seconds'])} s, "
            f"{s['online_rows']} devices online in its answer "
            f"(goal <= {STATUS_GOAL_S:.0f} s: {'met' if met else 'NOT met'}). "
            f"Of that, starting the `edgecls` command itself (`edgecls --help`, same run) takes "
            f"{', '.join(f'{t:.2f}' for t in s['startup'])} s; the query itself (connect, collect every retained "
            f"message, rows; in process) {', '.join(f'{t:.2f}' for t in s['inproc'])} s.")


if __name__ == "__main__":
    main()
