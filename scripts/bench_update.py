#!/usr/bin/env python3
"""Benchmark a live model update; print a markdown section.

    .venv/bin/python scripts/bench_update.py --run RUN_DIR --data DATA/test [--rounds N] > section.md

Makes two signed packages from the demo run (v1: as trained; v2: the same network
re-calibrated on 64 images, so another int8 model), installs v1 in a fresh store, starts
``edgecls run --store --inbox`` on a 640x480 MJPG recording played at camera speed
(``--realtime``, 30 fps), drops v2 into the inbox as rsync would (a dotfile renamed into
place) and reads the JSONL results. Per round:

- update to live: from the rename into the inbox to the first result v2 classified
  (includes the inbox's 1 s settle wait, the verification, the field check and the swap);
- gap during the swap: the time between the last v1 result and the first v2 result,
  against the recording's frame interval (goal: at most 2 intervals);
- CPU seconds of the on-device field check (its thread's CPU time, from the store's history).

Medians over the rounds. Progress goes to stderr; only the markdown goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

from update_helpers import drop, start_device, swap_gap  # noqa: E402

FPS = 30.0
GOAL_INTERVALS = 2.0
COUNT = 200


def say(message: str) -> None:
    print(f"[bench_update] {message}", file=sys.stderr, flush=True)


def make_packages(run: Path, data: Path, work: Path) -> tuple[Path, Path, Path]:
    from edgecls.convert.export import convert_run
    from edgecls.convert.package import make_package
    from edgecls.package import keygen

    key, pub = keygen(work / "bench")
    runs = []
    for name in ("run_a", "run_b"):
        copy = work / name
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("*.tflite"))
        runs.append(copy)
    convert_run(runs[1], "int8", calibration=64)
    v1 = make_package(runs[0], work / "v1.edgecls", key=key, data=data, version="v1", count=COUNT).path
    v2 = make_package(runs[1], work / "v2.edgecls", key=key, data=data, version="v2", count=COUNT).path
    return v1, v2, pub


def one_round(v1: Path, v2: Path, pub: Path, video: Path, work: Path) -> dict[str, float]:
    from edgecls.device.store import ModelStore
    from edgecls.package import load_public_keys

    store = ModelStore(work / "store")
    store.install(v1, load_public_keys([pub]))
    inbox = work / "inbox"
    inbox.mkdir()
    device = start_device(store.root, pub, video, work, inbox=inbox, probation=3.0)
    try:
        device.wait_for("classifying")
        time.sleep(2.0)  # steady state
        t_drop = time.time()
        drop(v2, inbox)
        device.wait_for("probation passed")
        device.stop()
    finally:
        device.kill9()
    records = device.records()
    sha = json.loads(v2.with_suffix(".sha").read_text())
    gap, first = swap_gap(records, sha)
    live_at = records[first]["ts"] + records[first]["latency_ms"] / 1000.0
    swapped = next(e for e in store.history() if e["event"] == "swapped")
    return {"update_s": live_at - t_drop, "gap_ms": gap * 1000.0, "check_cpu_s": swapped["check_cpu_s"],
            "check_s": swapped["check_s"], "verify_s": swapped["verify_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="The demo run folder (trained).")
    parser.add_argument("--data", type=Path, required=True, help="Its test folder, for the field bundles.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 rounds.")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    import zipfile

    from device_helpers import camera_like_frames, write_video

    with tempfile.TemporaryDirectory(prefix="bench_update_") as tmp:
        work = Path(tmp)
        say("making the v1 and v2 packages (field export of each)")
        v1, v2, pub = make_packages(args.run, args.data, work)
        with zipfile.ZipFile(v2) as zf:
            v2.with_suffix(".sha").write_text(json.dumps(json.loads(zf.read("manifest.json"))["model_sha256"]))
        frames = camera_like_frames(["circle", "square"], 60)
        video = write_video(work / "cam.avi", frames * 10, FPS)  # 40 s at 30 fps
        results = []
        for n in range(rounds):
            folder = work / f"round{n}"
            folder.mkdir()
            results.append(one_round(v1, v2, pub, video, folder))
            say(f"round {n + 1}: {results[-1]}")
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}

    def each(key: str, spec: str) -> str:
        return ", ".join(format(r[key], spec) for r in results)

    interval_ms = 1000.0 / FPS
    worst_gap = max(r["gap_ms"] for r in results)
    print("## update (live model update through the inbox)\n")
    print(f"`scripts/bench update`: the demo run packaged twice (v1, v2 re-calibrated), {COUNT}-image field "
          f"bundles, v2 dropped into the inbox of `edgecls run --store --inbox --realtime` on a 640x480 "
          f"MJPG recording at {FPS:.0f} fps; medians of {rounds} rounds on {platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f} at the end.\n")
    print("| figure | median | all rounds | goal |")
    print("| --- | ---: | --- | --- |")
    print(f"| update to live (inbox rename -> first v2 result; includes the 1 s settle wait) | {med['update_s']:.2f} s | "
          f"{each('update_s', '.2f')} | |")
    print(f"| verification (signature, every sha256, unpack) | {med['verify_s']:.3f} s | "
          f"{each('verify_s', '.3f')} | |")
    print(f"| on-device field check, wall | {med['check_s']:.2f} s | {each('check_s', '.2f')} | |")
    print(f"| on-device field check, CPU seconds (its thread) | {med['check_cpu_s']:.2f} s | "
          f"{each('check_cpu_s', '.2f')} | |")
    verdict = "met" if worst_gap <= GOAL_INTERVALS * interval_ms else "NOT met"
    print(f"| gap during the swap (last v1 result -> first v2 result) | {med['gap_ms']:.1f} ms = "
          f"{med['gap_ms'] / interval_ms:.2f} intervals | {each('gap_ms', '.1f')} ms | "
          f"<= {GOAL_INTERVALS:.0f} intervals ({GOAL_INTERVALS * interval_ms:.1f} ms): {verdict} (worst round) |")
    print()


if __name__ == "__main__":
    main()
