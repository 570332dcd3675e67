#!/usr/bin/env python3
"""Benchmark ``edgecls run --serve`` against the issue's goal; print a markdown section.

    .venv/bin/python scripts/bench_serve.py [--model M.tflite] [--quick] > section.md

Frames/s of ``edgecls run --headless --quiet --jsonl`` on one 640x480 MJPG file, without
``--serve`` and with ``--serve`` plus 3 viewers reading ``/stream`` continuously (as a
browser tab does), the two alternated in this one run; medians. Goal: with >= 0.9x without.

Frames/s is counted from the JSONL rows' capture times, over the part of each run after
the first 15 % of its frames and, with --serve, after all 3 viewers got their first frame,
so both arms are timed in the same steady state. The viewers run in this process, so
their reading competes for the same cores, as it would on a Pi serving its own page.
Without ``--model`` an untrained CNN is converted to full int8 here (timings do not depend
on the weights). Progress goes to stderr; only the markdown goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests")]

from bench_device import camera_frames, convert_model, free_port, write_video  # noqa: E402
from serve_helpers import StreamViewer, wait_for  # noqa: E402

VIEWERS = 3
GOAL = 0.9
#: Frames at the start of every run left out of the rate (imports done, caches warm).
SKIP = 0.15


def say(message: str) -> None:
    print(f"[bench_serve] {message}", file=sys.stderr, flush=True)


def one_run(model: Path, video: Path, work: Path, serve: bool, viewers_n: int = VIEWERS) -> dict[str, float]:
    """One ``edgecls run``; with ``serve``, ``viewers_n`` viewers attached as soon as the port answers.
    Also the process's CPU seconds per frame (all its threads: loop, encoder, server)."""
    out = work / f"r{time.monotonic_ns()}.jsonl"
    cmd = [sys.executable, "-m", "edgecls", "run", "--model", str(model), "--source", str(video), "--headless",
           "--quiet", "--jsonl", str(out), "--stats-every", "0"]
    port = free_port()
    if serve:
        cmd += ["--serve", f"127.0.0.1:{port}"]
    env = {**os.environ, "COLUMNS": "200"}
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    viewers: list[StreamViewer] = []
    try:
        if serve:
            viewers = [StreamViewer(port, seconds=120) for _ in range(viewers_n)]
            import socket

            def port_open() -> bool:
                with socket.socket() as s:
                    return s.connect_ex(("127.0.0.1", port)) == 0

            wait_for(lambda: port_open() or proc.poll() is not None, 30, "the preview port", every=0.01)
            for v in viewers:
                v.start()
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for v in viewers:
            v.stop()
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"edgecls run failed ({proc.returncode}):\n{err}")
    rows = [r for r in (json.loads(line) for line in out.read_text().splitlines()) if "event" not in r]
    out.unlink()
    start = rows[int(len(rows) * SKIP)]["ts"]
    if viewers:
        firsts = [v.first_at for v in viewers]
        if any(t is None for t in firsts):
            raise SystemExit(f"a viewer got no frame: {[v.error for v in viewers]}")
        start = max(start, *[t for t in firsts if t is not None])
    timed = [r for r in rows if r["ts"] >= start]
    span = timed[-1]["ts"] - timed[0]["ts"]
    if len(timed) < 100 or span <= 0:
        raise SystemExit(f"too few frames after the viewers connected ({len(timed)}): use a longer video (--frames)")
    result = {"fps": (len(timed) - 1) / span, "frames": len(rows), "cpu_ms": 1e3 * cpu_s / len(rows)}
    say(f"  {len(rows)} frames in {rows[-1]['ts'] - rows[0]['ts']:.2f} s, timed {len(timed)} in {span:.2f} s")
    if viewers:
        result["preview_fps"] = statistics.median((v.frames - 1) / max((v.last_at or 0) - (v.first_at or 0), 1e-9)
                                                  for v in viewers)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="A .tflite (default: an untrained int8 CNN converted here).")
    parser.add_argument("--frames", type=int, default=4800, help="Frames in the test video (640x480 MJPG).")
    parser.add_argument("--rounds", type=int, default=6, help="Alternated pairs (without, with --serve).")
    parser.add_argument("--quick", action="store_true", help="2400 frames, 3 rounds.")
    args = parser.parse_args()
    frames, rounds = (2400, 3) if args.quick else (args.frames, args.rounds)
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        work = Path(tmp)
        model = args.model or convert_model(work / "model")
        say(f"writing a {frames}-frame 640x480 MJPG video")
        base = camera_frames(60, seed=3)
        video = write_video(work / "v.avi", base, repeat=max(1, frames // len(base)))
        arms = {"without `--serve`": (False, 0), "`--serve`, no viewer": (True, 0), f"`--serve` + {VIEWERS} viewers": (True, VIEWERS)}
        fps: dict[str, list[float]] = {name: [] for name in arms}
        cpu: dict[str, list[float]] = {name: [] for name in arms}
        preview: list[float] = []
        names = list(arms)
        for i in range(rounds):
            for name in names[i % 3:] + names[: i % 3]:  # rotate the order round by round
                serve, n = arms[name]
                r = one_run(model, video, work, serve, n)
                fps[name].append(r["fps"])
                cpu[name].append(r["cpu_ms"])
                if n:
                    preview.append(r["preview_fps"])
                say(f"round {i + 1}/{rounds} {name}: {r['fps']:.1f} frames/s, {r['cpu_ms']:.2f} ms CPU a frame")
    med = {name: statistics.median(v) for name, v in fps.items()}
    without, with_ = med[names[0]], med[names[2]]
    ratio = with_ / without
    print("## Live preview (`--serve`) cost\n")
    print(f"`edgecls run --headless --quiet --jsonl` on one {frames}-frame 640x480 MJPG file ({model.name if args.model else 'untrained int8 CNN'}), "
          f"{rounds} rounds, the three arms in rotating order, medians; viewers read `/stream` continuously. CPU: the "
          f"`edgecls run` process's user+system seconds (loop, encoder and server threads, start-up included) per frame. "
          f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end.\n")
    print("| run | frames/s (each run) | median frames/s | median CPU ms a frame |")
    print("|---|---|---:|---:|")
    for name in names:
        print(f"| {name} | {', '.join(f'{x:.0f}' for x in fps[name])} | {med[name]:.1f} | {statistics.median(cpu[name]):.2f} |")
    print(f"\nRatio with {VIEWERS} viewers / without: **{ratio:.2f}x** (goal >= {GOAL}x: {'met' if ratio >= GOAL else 'NOT met'}). "
          f"Each viewer received a median {statistics.median(preview):.1f} preview frames/s (cap 15): one JPEG per "
          "preview frame, encoded on the server's thread and shared by all viewers. On a shared machine the "
          "wall-clock rates swing with other processes' load; the CPU column is the steadier view of the cost.")


if __name__ == "__main__":
    main()
