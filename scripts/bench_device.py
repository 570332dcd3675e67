#!/usr/bin/env python3
"""Benchmark the device runtime against the issue's four goals; print a markdown section.

    .venv/bin/python scripts/bench_device.py [--model M.tflite] [--quick] > section.md

1. Frame cost: a 640x480 BGR frame in memory, just written as a capture leaves it ->
   labelled prediction (the loop's own Classifier), median, against the bare int8
   ``invoke()`` of the same model (1 thread); the same from a cold frame and from a
   320x240 one; the resize's mean absolute difference from OpenCV's exact INTER_AREA.
2. Loop overhead: ``edgecls run --headless --jsonl`` on a 640x480 MJPG video against a
   bare loop (read, the same resize, invoke) over the same file, frames/s.
3. Freshness: a 30 fps paced source through the latest-frame reader, inference slowed
   below 30 fps: result age (capture -> sink) p99 against 2 frame intervals + inference.
4. Footprint: RSS of an ``edgecls run`` process over many frames of a live MJPEG stream
   (ffmpeg on loopback, unpaced), first prediction after start, the ``.[device]`` venv size.

Everything is measured in this one run, so the ratios compare like with like. Without
``--model`` an untrained CNN is converted to full int8 here (timings do not depend on the
weights). Progress goes to stderr; only the markdown goes to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import venv
from pathlib import Path

import cv2
import numpy as np
from repo_paths import shown

REPO = Path(__file__).resolve().parents[1]
FPS = 30.0


def say(message: str) -> None:
    print(f"[bench_device] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- inputs

def convert_model(out: Path) -> Path:
    """An untrained 2-class CNN as full int8 with uint8 I/O, labels.txt beside it."""
    import tensorflow as tf  # host side: only to make a model when none is given

    from edgecls.convert.export import tflite_bytes
    from edgecls.model import build_model

    tf.keras.utils.set_random_seed(0)
    model = build_model(2, batch_size=1)
    rng = np.random.default_rng(0)
    data = tflite_bytes(model, "int8", "uint8", rng.integers(0, 256, (32, 64, 64, 3)).astype(np.uint8))
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_int8.tflite").write_bytes(data)
    (out / "labels.txt").write_text("a\nb\n")
    return out / "model_int8.tflite"


def camera_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """Camera-like 640x480 BGR frames: built-in shapes in clutter, upscaled."""
    from edgecls.demo_data import SHAPES, render

    rng = np.random.default_rng(seed)
    return [cv2.resize(render(SHAPES[i % 2], rng), (640, 480), interpolation=cv2.INTER_LINEAR) for i in range(n)]


def write_video(path: Path, frames: list[np.ndarray], repeat: int = 1) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (640, 480))
    for _ in range(repeat):
        for frame in frames:
            writer.write(frame)
    writer.release()
    return path


def median_us(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


# ---------------------------------------------------------------- 1. frame cost

def frame_cost(model: Path, n: int) -> dict[str, float]:
    """Frame -> prediction through the device classifier, against the bare invoke.

    A camera or decoder hands the loop a frame it has just written, so before each timed
    call the next of 16 frames is copied into one capture buffer (untimed). The same
    call on a frame not touched since long ago (16 frames cycled, 14.7 MB, past the
    caches) is measured alongside, for the cost of a cold frame.
    """
    from ai_edge_litert.interpreter import Interpreter

    from edgecls.device.loop import open_classifier
    from edgecls.device.options import RunOptions
    from edgecls.device.results import Frame
    from edgecls.preprocess import to_model_input

    frames = camera_frames(16, seed=1)
    _, backend, classifier = open_classifier(RunOptions(model=model, num_threads=1))
    bare = Interpreter(model_path=str(model), num_threads=1)
    bare.allocate_tensors()
    inp = bare.get_input_details()[0]
    bare.set_tensor(inp["index"], to_model_input(frames[0], "bgr")[None])
    for _ in range(50):
        bare.invoke()
        classifier.classify(Frame(frames[0], "bgr", 0, 0.0, 0.0))
    # What --capture-size 320x240 hands the loop instead.
    small = [cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA) for f in frames]
    buffer, small_buffer = frames[0].copy(), small[0].copy()
    # Interleave them so machine noise hits all alike.
    invoke, full, pre, post, full_small, cold = [], [], [], [], [], []
    for i in range(n):
        np.copyto(buffer, frames[i % len(frames)])
        np.copyto(small_buffer, small[i % len(small)])
        t0 = time.perf_counter()
        bare.invoke()
        t1 = time.perf_counter()
        _, prediction, (p, _, q) = classifier.classify(Frame(buffer, "bgr", i, 0.0, 0.0))
        t2 = time.perf_counter()
        classifier.classify(Frame(small_buffer, "bgr", i, 0.0, 0.0))
        t3 = time.perf_counter()
        classifier.classify(Frame(frames[(i * 7) % len(frames)], "bgr", i, 0.0, 0.0))
        t4 = time.perf_counter()
        assert prediction.label
        invoke.append(t1 - t0)
        full.append(t2 - t1)
        pre.append(p)
        post.append(q)
        full_small.append(t3 - t2)
        cold.append(t4 - t3)
    mads = [float(np.mean(np.abs(to_model_input(f, "bgr").astype(int) - cv2.cvtColor(
        cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB).astype(int)))) for f in frames]
    area_us = median_us(lambda: cv2.resize(frames[0], (64, 64), interpolation=cv2.INTER_AREA), min(n, 500))
    backend.close()
    return {
        "invoke_us": statistics.median(invoke) * 1e6,
        "frame_us": statistics.median(full) * 1e6,
        "frame_small_us": statistics.median(full_small) * 1e6,
        "frame_cold_us": statistics.median(cold) * 1e6,
        "preprocess_us": statistics.median(pre) * 1e6,
        "postprocess_us": statistics.median(post) * 1e6,
        "inter_area_us": area_us,
        "mad": max(mads),
    }


# ---------------------------------------------------------------- 2. loop overhead

BARE_LOOP = """
import sys, time, cv2
from ai_edge_litert.interpreter import Interpreter
from edgecls.preprocess import to_model_input
it = Interpreter(model_path=sys.argv[2], num_threads=1)
it.allocate_tensors()
i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
cap = cv2.VideoCapture(sys.argv[1])
n = 0
t0, c0 = time.monotonic(), time.process_time()
while True:
    ok, frame = cap.read()
    if not ok:
        break
    it.set_tensor(i, to_model_input(frame, "bgr")[None])
    it.invoke()
    it.get_tensor(o)
    n += 1
print(n / (time.monotonic() - t0), n / (time.process_time() - c0))
"""


def bare_loop_fps(video: Path, model: Path) -> tuple[float, float]:
    """read, the same resize, invoke: in a fresh process, like ``edgecls run``.
    Returns frames per wall-clock second and per CPU second."""
    proc = subprocess.run([sys.executable, "-c", BARE_LOOP, str(video), str(model)],
                          capture_output=True, text=True, check=True)
    wall, cpu = proc.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def cli_loop_fps(video: Path, model: Path, work: Path) -> tuple[float, float, int]:
    out = work / "loop.jsonl"
    with open(work / "loop.stdout", "w") as stdout:
        proc = subprocess.run([sys.executable, "-m", "edgecls", "run", "--model", str(model), "--source", str(video),
                               "--headless", "--jsonl", str(out), "--stats-every", "0"],
                              stdout=stdout, stderr=subprocess.PIPE, text=True, check=True,
                              env={**os.environ, "COLUMNS": "200"})
    m = re.search(r"done: (\d+) frames in [\d.]+ s \(([\d.]+) fps, ([\d.]+) ms CPU a frame\)", proc.stderr)
    assert m, proc.stderr
    return float(m.group(2)), 1e3 / float(m.group(3)), int(m.group(1))


def loop_cpu_in_process(model: Path, work: Path, frames: int, rounds: int = 3) -> dict[str, float]:
    """CPU per frame of the bare steps vs the whole loop (reader, classifier, JSONL and
    console sinks) on one frame in memory: the overhead itself, without decode or load noise."""
    from edgecls.device.loop import open_classifier, run_loop
    from edgecls.device.options import RunOptions
    from edgecls.device.results import Frame
    from edgecls.device.sinks import ConsoleSink, JsonlSink, Sink
    from edgecls.preprocess import to_model_input

    image = camera_frames(1, seed=6)[0]
    _, backend, classifier = open_classifier(RunOptions(model=model))
    it, i, o = backend.interpreter, backend._in, backend._out  # type: ignore[attr-defined]

    class Memory:
        finished, dropped, reconnects, stalls = False, 0, 0, 0

        def __init__(self) -> None:
            self.n = 0

        def next(self, timeout: float) -> Frame | None:
            if self.n >= frames:
                self.finished = True
                return None
            self.n += 1
            return Frame(image, "bgr", self.n, time.time(), time.monotonic())

        def close(self) -> None:
            pass

    bare, loop = [], []
    for _ in range(rounds):
        c = time.process_time()
        for _ in range(frames):
            it.set_tensor(i, to_model_input(image, "bgr")[None])
            it.invoke()
            it.get_tensor(o)
        bare.append((time.process_time() - c) / frames * 1e6)
        with open(os.devnull, "w") as null:
            sinks: list[Sink] = [JsonlSink(work / "cpu.jsonl"), ConsoleSink(null)]
            c = time.process_time()
            run_loop(Memory(), classifier, sinks, threading.Event())
            loop.append((time.process_time() - c) / frames * 1e6)
            for sink in sinks:
                sink.close()
    return {"bare_us": statistics.median(bare), "loop_us": statistics.median(loop)}


def loop_overhead(model: Path, work: Path, frames: int, rounds: int) -> dict[str, float]:
    video = write_video(work / "loop.avi", camera_frames(100, seed=2), repeat=max(1, frames // 100))
    bare, cli, ratios, cpu_ratios = [], [], [], []
    for _ in range(rounds):  # alternate, so load from other processes hits both alike
        bare_wall, bare_cpu = bare_loop_fps(video, model)
        run_wall, run_cpu, n = cli_loop_fps(video, model, work)
        bare.append(bare_wall)
        cli.append(run_wall)
        ratios.append(run_wall / bare_wall)
        cpu_ratios.append(run_cpu / bare_cpu)
    return {"bare_fps": statistics.median(bare), "run_fps": statistics.median(cli), "frames": n,
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "cpu_ratio": statistics.median(cpu_ratios)}


# ---------------------------------------------------------------- 3. freshness

class PacedSource:
    colour = "bgr"
    live = True
    description = "paced 30 fps source"

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames = frames
        self.n = 0
        self.t0 = time.monotonic()

    def read(self) -> np.ndarray:
        due = self.t0 + self.n / FPS
        time.sleep(max(0.0, due - time.monotonic()))
        self.n += 1
        return self.frames[self.n % len(self.frames)]

    def close(self) -> None:
        pass


def freshness(model: Path, results: int, delay_s: float) -> dict[str, float]:
    from edgecls.device.classify import Classifier, PostOptions
    from edgecls.device.loop import open_classifier, run_loop
    from edgecls.device.options import RunOptions
    from edgecls.device.reader import LatestFrameReader

    info, backend, _ = open_classifier(RunOptions(model=model))

    class Slow:
        name, input, output = "slow", backend.input, backend.output

        def invoke(self, tensor: np.ndarray) -> np.ndarray:
            time.sleep(delay_s)
            return backend.invoke(tensor)

        def delegated_partitions(self) -> int:
            return backend.delegated_partitions()

        def close(self) -> None:
            backend.close()

    classifier = Classifier(info, Slow(), PostOptions())
    ages: list[float] = []
    work: list[float] = []

    class Ages:
        def on_result(self, frame, tensor, prediction, stats) -> None:  # type: ignore[no-untyped-def]
            ages.append(time.monotonic() - frame.mono)
            t = stats.timings
            work.append((t.preprocess_ms + t.invoke_ms + t.postprocess_ms) / 1e3)

        def close(self) -> None:
            pass

    reader = LatestFrameReader(lambda: PacedSource(camera_frames(30, seed=3)))  # type: ignore[arg-type, return-value]
    try:
        summary = run_loop(reader, classifier, [Ages()], threading.Event(), max_frames=results)
    finally:
        reader.close()
    a = np.array(ages)
    tenth = max(1, len(a) // 10)
    inference = float(np.median(work))
    return {
        "results": len(a), "source_frames": len(a) + summary.dropped, "dropped": summary.dropped,
        "p50_ms": float(np.percentile(a, 50)) * 1e3, "p99_ms": float(np.percentile(a, 99)) * 1e3,
        "max_ms": float(a.max()) * 1e3, "inference_ms": inference * 1e3,
        "goal_ms": (2 / FPS + inference) * 1e3,
        "first_tenth_ms": float(a[:tenth].mean()) * 1e3, "last_tenth_ms": float(a[-tenth:].mean()) * 1e3,
    }


# ---------------------------------------------------------------- 4. footprint

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as fh:
        return any(f[1].upper() == want and f[3] == "0A" for f in (line.split() for line in fh.readlines()[1:]))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_over_frames(model: Path, work: Path, frames: int) -> dict[str, float]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg is needed for the RSS figure: apt-get install -y ffmpeg")
    video = write_video(work / "stream.avi", camera_frames(60, seed=4))
    port = free_port()
    url = f"http://127.0.0.1:{port}/cam.mjpg"
    server = subprocess.Popen([ffmpeg, "-nostdin", "-loglevel", "error", "-stream_loop", "-1", "-i", str(video),
                               "-c:v", "copy", "-f", "mpjpeg", "-listen", "1", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not listening(port):
            time.sleep(0.05)
        out = work / "rss.jsonl"
        proc = subprocess.Popen([sys.executable, "-m", "edgecls", "run", "--model", str(model), "--source", url,
                                 "--headless", "--quiet", "--jsonl", str(out), "--max-frames", str(frames),
                                 "--stats-every", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        samples: list[float] = []
        while proc.poll() is None:
            time.sleep(0.5)
            with contextlib.suppress(OSError, ValueError):
                value = rss_mb(proc.pid)
                if value == value:  # not NaN: the process had not exited yet
                    samples.append(value)
        _, err = proc.communicate()
        assert proc.returncode == 0, err
        m = re.search(r"done: (\d+) frames in ([\d.]+) s \(([\d.]+) fps, [\d.]+ ms CPU a frame\), (\d+) dropped", err)
        assert m, err
    finally:
        server.kill()
        server.wait()
    lines = out.read_text().count("\n")
    rss = np.array(samples)
    settled = rss[len(rss) // 10:] if len(rss) >= 10 else rss
    return {"frames": lines, "fps": float(m.group(3)), "dropped": int(m.group(4)), "rss_max": float(rss.max()),
            "rss_settled_min": float(settled.min()), "rss_settled_max": float(settled.max()),
            "rss_growth": float(settled.max() - settled.min()), "samples": len(rss)}


def first_prediction(model: Path, work: Path, rounds: int) -> float:
    video = write_video(work / "first.avi", camera_frames(5, seed=5))
    times = []
    for i in range(rounds):
        out = work / f"first{i}.jsonl"
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "edgecls", "run", "--model", str(model), "--source", str(video),
                                 "--headless", "--quiet", "--jsonl", str(out), "--stats-every", "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not (out.exists() and out.read_text().count("\n") >= 1):
            time.sleep(0.002)
        times.append(time.monotonic() - start)
        proc.wait()
    return statistics.median(times)


def venv_size(path: Path | None, work: Path) -> tuple[float, str]:
    """MB of a venv with ``pip install ".[device]"``; made in the work folder if not given."""
    if path is None:
        cached = Path(tempfile.gettempdir()) / f"pytest-of-{os.environ.get('USER', 'root')}" / "edgecls-device-venv"
        path = cached if (cached / ".complete").exists() else work / "device-venv"
    if not (path / "bin" / "python").exists():
        say(f"creating {path} with pip install .[device] (about a minute)")
        venv.create(path, with_pip=True)
        subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"{REPO}[device]"], check=True)
    listed = subprocess.run([str(path / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, check=True)
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert not names & {"tensorflow", "tensorflow-cpu", "keras"}, names
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6
    return size, str(path)


# ---------------------------------------------------------------- report

def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="int8 .tflite (labels embedded or labels.txt beside); converted if absent")
    parser.add_argument("--quick", action="store_true", help="smaller counts (about a minute) for a smoke run")
    parser.add_argument("--venv", type=Path, help="a .[device] venv to measure (default: the test's cached one, or a new one)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    q = args.quick
    counts = {"cost": 2000 if q else 20000, "loop": 300 if q else 1500, "rounds": 3 if q else 7,
              "fresh": 600 if q else 10000, "rss": 10000 if q else 100000, "first": 3 if q else 7}
    with tempfile.TemporaryDirectory(prefix="bench_device.") as tmp:
        work = Path(tmp)
        model = args.model or convert_model(work / "model")
        say(f"model {model}; counts {counts}")
        say("1/4 frame cost")
        cost = frame_cost(model, counts["cost"])
        say("2/4 loop overhead")
        loop = loop_overhead(model, work, counts["loop"], counts["rounds"])
        loop.update(loop_cpu_in_process(model, work, counts["loop"] * 2))
        say("3/4 freshness (30 fps paced source, slowed inference)")
        fresh = freshness(model, counts["fresh"], delay_s=0.040)
        say("4/4 footprint (RSS over a live stream, first prediction, venv)")
        rss = rss_over_frames(model, work, counts["rss"])
        first = first_prediction(model, work, counts["first"])
        size, _ = venv_size(args.venv, work)

    from edgecls.preprocess import KERNEL_STATUS

    ratio = cost["frame_us"] / cost["invoke_us"]
    loop_ratio = loop["ratio"]
    print("## Device runtime (`edgecls run`)\n")
    print(f"`.venv/bin/python scripts/bench_device.py{' --quick' if q else ''}{' --model ' + shown(args.model) if args.model else ''}`"
          f" on {platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}, "
          f"OpenCV {cv2.__version__}; model {model.name if args.model else 'untrained CNN, full int8, uint8 I/O'}; "
          "all figures from this one run.\n")
    print("| figure | goal | measured | |")
    print("|---|---|---|---|")
    print(f"| frame cost: 640x480 BGR in memory (just written, as a capture leaves it) -> prediction, median | "
          f"<= 2x bare int8 `invoke()` (1 thread) | {cost['frame_us']:.0f} us vs invoke {cost['invoke_us']:.0f} us = "
          f"**{ratio:.2f}x** (preprocess {cost['preprocess_us']:.0f} us, {KERNEL_STATUS.split(' (')[0]}; "
          f"postprocess {cost['postprocess_us']:.0f} us) | {verdict(ratio <= 2)} |")
    print(f"| frame cost from a frame not in any cache (16 frames cycled, 14.7 MB) | - | "
          f"{cost['frame_cold_us']:.0f} us = **{cost['frame_cold_us'] / cost['invoke_us']:.2f}x** the invoke | - |")
    print(f"| frame cost from a 320x240 frame (`--capture-size 320x240`: the camera or the Pi's ISP scales) | - | "
          f"{cost['frame_small_us']:.0f} us = **{cost['frame_small_us'] / cost['invoke_us']:.2f}x** the invoke, "
          f"{cost['frame_small_us'] / cost['frame_us']:.2f}x the 640x480 frame cost | - |")
    print(f"| resize quality: mean abs. difference from exact INTER_AREA | <= 1.5 grey levels | "
          f"{cost['mad']:.3f} (worst of 16 frames; INTER_AREA itself costs {cost['inter_area_us']:.0f} us) | {verdict(cost['mad'] <= 1.5)} |")
    print(f"| loop overhead: `edgecls run --headless --jsonl`, 640x480 MJPG, {loop['frames']} frames | >= 0.9x bare loop frames/s | "
          f"{loop['run_fps']:.0f} vs {loop['bare_fps']:.0f} frames/s: **{loop_ratio:.2f}x** (median of {counts['rounds']} alternating rounds, "
          f"range {loop['ratio_min']:.2f}-{loop['ratio_max']:.2f}; the file is decoded on its own thread while frames are classified); "
          f"per CPU second **{loop['cpu_ratio']:.2f}x** | {verdict(loop_ratio >= 0.9)} |")
    print(f"| loop overhead itself: CPU per frame in memory, whole loop (reader, classifier, JSONL + console sinks) vs bare steps | - | "
          f"{loop['loop_us']:.0f} vs {loop['bare_us']:.0f} us: **+{loop['loop_us'] - loop['bare_us']:.0f} us** a frame "
          f"({loop['bare_us'] / loop['loop_us']:.2f}x, before decoding, which costs more than both) | - |")
    print(f"| freshness: 30 fps source, inference {fresh['inference_ms']:.0f} ms (slower than the source), {fresh['results']} results "
          f"from {fresh['source_frames']} frames | p99 age <= 2 intervals + inference = {fresh['goal_ms']:.0f} ms | "
          f"p99 **{fresh['p99_ms']:.1f} ms** (p50 {fresh['p50_ms']:.1f}, max {fresh['max_ms']:.1f}); {fresh['dropped']} stale frames dropped; "
          f"mean age first/last tenth {fresh['first_tenth_ms']:.1f}/{fresh['last_tenth_ms']:.1f} ms (no backlog) | "
          f"{verdict(fresh['p99_ms'] <= fresh['goal_ms'])} |")
    print(f"| RSS of the `edgecls run` process over {rss['frames']} frames of a live MJPEG stream | <= 100 MB, flat within 5 MB | "
          f"max **{rss['rss_max']:.1f} MB**; after the first tenth {rss['rss_settled_min']:.1f}-{rss['rss_settled_max']:.1f} MB "
          f"(growth {rss['rss_growth']:.1f} MB, {rss['samples']} samples); {rss['fps']:.0f} frames/s | "
          f"{verdict(rss['rss_max'] <= 100 and rss['rss_growth'] <= 5)} |")
    print(f"| first prediction after process start (median of {counts['first']}) | <= 1 s | **{first:.2f} s** | {verdict(first <= 1.0)} |")
    print(f"| `.[device]` venv size | reported | **{size:.0f} MB**, no TensorFlow | - |")
    print()


if __name__ == "__main__":
    main()
