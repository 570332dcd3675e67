#!/usr/bin/env python3
"""Benchmark field learning (capture, drift monitor); print a markdown section.

    .venv/bin/python scripts/bench_field.py --run RUN_DIR [--quick] > section.md

1. Capture precision: camera-like frames, a third each plain, behind a fence and
   under-exposed, through the device's own classifier: the share the model got wrong
   among frames the low-score and margin rules catch, against among every 10th frame.
2. Drift detection: unshifted camera-like frames, then the same kind of scenes under a
   controlled shift (gamma, blur, colour cast, an unseen class): frames from the shift's
   start to the first alarm, and which statistic raised it; false alarms over at least
   10,000 unshifted frames (and the largest PSI each statistic reached there, against
   its limit).
3. Cost: ``edgecls run --headless`` on one 640x480 MJPG file with ``--capture`` (default
   rules and caps) and the drift monitor on, against both off, alternating, medians.
4. Quota: a long ``--capture-rule every:1`` run into a 5 MB quota: the folder's size
   after it, and the captures evicted.

RUN_DIR is converted here to a fresh int8 artifact (with its drift baseline).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: Unshifted frames before a shift (a full window), and shifted frames after it.
WARM = 900
SHIFTED = 1800


def say(message: str) -> None:
    print(f"[bench_field] {message}", file=sys.stderr, flush=True)


def camera_frames(count: int, kinds: tuple[str, ...], shift: str, seed: int, scene_frames: int = 30,
                  size: tuple[int, int] = (240, 320)) -> tuple[list[np.ndarray], list[str]]:
    """A camera watching a new scene every ``scene_frames`` frames: slow sway, fresh noise."""
    from edgecls.demo_data import render
    from edgecls.demo_field import apply_shift

    rng = np.random.default_rng([seed, 3])
    h, w = size
    frames, truth = [], []
    scene = np.zeros((h, w, 3), np.uint8)
    # sensor noise from a small bank in rotation (fresh noise per frame costs more than the rest)
    bank = [rng.normal(0, 3, (h + 8, w + 8, 3)).astype(np.float32) for _ in range(5)]
    kind = kinds[0]
    for i in range(count):
        if i % scene_frames == 0:
            kind = kinds[(i // scene_frames) % len(kinds)]
            # drawn at a training image's size and upscaled, as a camera sees the scene
            scene = apply_shift(cv2.resize(render(kind, rng), (w, h), interpolation=cv2.INTER_LINEAR), shift, rng)
        t = (i % scene_frames) / scene_frames
        m = np.array([[1, 0, 4 * np.sin(2 * np.pi * t)], [0, 1, 3 * np.cos(2 * np.pi * t)]], np.float32)
        moved = cv2.warpAffine(scene, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        off = i % 8
        frames.append(np.clip(moved + bank[i % 5][off : off + h, off : off + w], 0, 255).astype(np.uint8))
        truth.append(kind)
    return frames, truth


def classify_all(model: Path, frames: list[np.ndarray]) -> tuple[list, list]:  # type: ignore[type-arg]
    from edgecls.device.loop import open_classifier
    from edgecls.device.options import RunOptions
    from edgecls.device.results import Frame

    _info, backend, clf = open_classifier(RunOptions(model=model))
    tensors, preds = [], []
    for i, img in enumerate(frames):
        tensor, pred, _ = clf.classify(Frame(img, "bgr", i, 0.0, 0.0))
        tensors.append(tensor)
        preds.append(pred)
    backend.close()
    return tensors, preds


def capture_precision(model: Path, n: int) -> list[str]:
    from edgecls.device.capture_rules import RuleSet, parse_rules

    frames, truth, = [], []
    for shift, seed in (("none", 1), ("fence", 2), ("gamma", 3)):
        f, t = camera_frames(n // 3, ("circle", "cross"), shift, seed, scene_frames=1)
        frames += f
        truth += t
    _, preds = classify_all(model, frames)
    wrong = [p.label != t for p, t in zip(preds, truth, strict=True)]
    rows = []
    for spec in ("low-score:0.6", "margin:0.2", "low-score:0.8", "margin:0.6"):
        rules = RuleSet(parse_rules([spec], ("circle", "cross")))
        hit = [i for i, p in enumerate(preds) if rules.match(i, p) is not None]
        share = np.mean([wrong[i] for i in hit]) if hit else float("nan")
        rows.append(f"| {spec} | {len(hit)} | {share:.1%} |")
    # a random sample (not every:N: the frames alternate classes, so every:10 sees one class only)
    sample = np.random.default_rng(0).choice(len(frames), 300, replace=False)
    rows.append(f"| random 300 frames | 300 | {np.mean([wrong[i] for i in sample]):.1%} |")
    say(f"capture precision on {len(frames)} frames, {np.mean(wrong):.1%} wrong overall")
    return [f"Frames: {len(frames)} (a third each plain, fenced, under-exposed; each a new scene), "
            f"{np.mean(wrong):.1%} classified wrong overall.", "",
            "| rule | frames caught | share wrong |", "| --- | ---: | ---: |", *rows]


def drift_detection(model: Path, null_frames: int) -> list[str]:
    from edgecls.device.drift import CHECK_EVERY, LIMITS, SAMPLE_EVERY, WINDOW_FRAMES, DriftMonitor
    from edgecls.device.model import read_model_info
    from edgecls.device.results import Frame, FrameStats, LoopStats, StageTimings
    from edgecls.drift import read_baseline

    info = read_model_info(model)
    baseline = read_baseline(model)
    assert baseline is not None, "the artifact has no baseline"

    def feed(monitor: DriftMonitor, frames: list[np.ndarray], start: int) -> int | None:
        tensors, preds = classify_all(model, frames)
        for i, (t, p) in enumerate(zip(tensors, preds, strict=True)):
            n = start + i
            stats = FrameStats(n, n, 0.0, 0.0, StageTimings(0, 0, 0, 0), LoopStats(0, n + 1, 0, 0, 0))
            monitor.on_result(Frame(t, "rgb", n, 0.0, 0.0), t, p, stats)
            if monitor.alarms and start > 0:
                return i
        return None

    say(f"drift: {null_frames} unshifted frames")
    null = DriftMonitor(info, baseline)
    alarms_raised = 0
    peak: dict[str, float] = {}
    chunk = 1000
    for k in range(0, null_frames, chunk):
        frames, _ = camera_frames(chunk, ("circle", "cross"), "none", 100 + k)
        before = set(null.alarms)
        tensors, preds = classify_all(model, frames)
        for i, (t, p) in enumerate(zip(tensors, preds, strict=True)):
            n = k + i
            null.on_result(Frame(t, "rgb", n, 0.0, 0.0), t, p,
                           FrameStats(n, n, 0.0, 0.0, StageTimings(0, 0, 0, 0), LoopStats(0, n + 1, 0, 0, 0)))
            for name, v in null.psi.items():
                peak[name] = max(peak.get(name, 0.0), v)
            new = set(null.alarms) - before
            alarms_raised += len(new)
            before = set(null.alarms)
    rows = []
    cases = (("gamma 1.8 (under-exposed)", "gamma", ("circle", "cross")), ("blur sigma 3", "blur", ("circle", "cross")),
             ("colour cast +-40", "cast", ("circle", "cross")), ("unseen class (triangle)", "none", ("triangle",)))
    for name, shift, kinds in cases:
        monitor = DriftMonitor(info, baseline)
        warm, _ = camera_frames(WARM, ("circle", "cross"), "none", 7)
        feed(monitor, warm, 0)
        if monitor.alarms:  # a false alarm before the shift: counted in the table, not hidden
            rows.append(f"| {name} | false alarm before the shift | {'; '.join(monitor.describe(k) for k in monitor.alarms)} |")
            continue
        shifted, _ = camera_frames(SHIFTED, kinds, shift, 8)
        at = feed(monitor, shifted, WARM)
        what = "; ".join(monitor.describe(k) for k in monitor.alarms) if at is not None else f"no alarm in {SHIFTED} frames"
        rows.append(f"| {name} | {at if at is not None else '-'} | {what} |")
        say(f"drift {name}: {at} ({what})")
    peaks = ", ".join(f"{k} {peak.get(k, 0):.2f}/{LIMITS[k]:.2f}" for k in LIMITS)
    return [f"Window {WINDOW_FRAMES} frames, input statistics on every {SAMPLE_EVERY}th, checked every {CHECK_EVERY}. Frames from the shift's start to the first alarm "
            "(a new scene every 30 frames, 30 fps camera-like sway and noise):", "",
            "| shift | frames to alarm | alarm |", "| --- | ---: | --- |", *rows, "",
            f"False alarms over {null_frames} unshifted frames: **{alarms_raised}**. "
            f"Largest PSI seen there, per statistic (peak/limit): {peaks}."]


def run_fps(model: Path, video: Path, extra: list[str]) -> tuple[float, float]:
    """(frames/s, process CPU ms a frame) of one ``edgecls run`` over the file."""
    proc = subprocess.run([sys.executable, "-m", "edgecls", "run", "--model", str(model), "--source", str(video),
                           "--headless", "--quiet", "--stats-every", "0", *extra],
                          capture_output=True, text=True, check=True)
    m = re.search(r"\(([\d.]+) fps, ([\d.]+) ms CPU a frame\)", proc.stderr)
    assert m, proc.stderr
    return float(m.group(1)), float(m.group(2))


def cost(model: Path, work: Path, frames: int, repeats: int) -> list[str]:
    from edgecls.demo_data import DemoVideoOptions, generate_video

    video = work / "cost.avi"
    generate_video(video, DemoVideoOptions(seconds=frames / 30.0))
    on: list[tuple[float, float]] = []
    off: list[tuple[float, float]] = []
    for r in range(repeats):
        cap = ["--capture", str(work / f"cap{r}"), "--capture-rule", "low-score:0.9,margin:0.5"]
        pair = [(on, cap), (off, ["--no-drift"])]
        for into, extra in pair if r % 2 == 0 else pair[::-1]:  # alternate which goes first
            into.append(run_fps(model, video, extra))
        say(f"cost round {r}: on {on[-1][0]:.1f} fps {on[-1][1]:.2f} ms CPU, off {off[-1][0]:.1f} fps {off[-1][1]:.2f} ms CPU")
    fps_on, fps_off = statistics.median(f for f, _ in on), statistics.median(f for f, _ in off)
    cpu_on, cpu_off = statistics.median(c for _, c in on), statistics.median(c for _, c in off)
    return [f"`edgecls run --headless --quiet` on one 640x480 MJPG file ({frames} frames), {repeats} runs each, "
            "alternating (which goes first alternates too), medians. On: `--capture` (rules low-score:0.9, margin:0.5, "
            "default caps) and the drift monitor; off: neither.", "",
            "| | on | off | on/off |", "| --- | ---: | ---: | ---: |",
            f"| frames/s | {fps_on:.1f} | {fps_off:.1f} | **{fps_on / fps_off:.3f}x** (goal >= 0.95x) |",
            f"| process CPU ms a frame | {cpu_on:.2f} | {cpu_off:.2f} | {cpu_on / cpu_off:.3f}x |", "",
            "Runs of " + ", ".join(f"{a:.0f}/{b:.0f}" for (a, _), (b, _) in zip(on, off, strict=True))
            + " frames/s (on/off) show how much the machine's other load moves single runs."]


def quota(model: Path, work: Path, frames: int) -> list[str]:
    from edgecls.demo_data import DemoVideoOptions, generate_video

    video = work / "quota.avi"
    generate_video(video, DemoVideoOptions(seconds=frames / 30.0, seed=4))
    cap = work / "quota-cap"
    proc = subprocess.run([sys.executable, "-m", "edgecls", "run", "--model", str(model), "--source", str(video),
                           "--headless", "--quiet", "--stats-every", "0", "--capture", str(cap), "--capture-rule", "every:1",
                           "--capture-rate", "1000000/min", "--capture-quota", "5"], capture_output=True, text=True, check=True)
    size = sum(p.stat().st_size for p in cap.iterdir())
    m = re.search(r"captured (\d+) frames .*?(\d+) dropped \(writer behind\), (\d+) evicted", proc.stderr)
    assert m, proc.stderr
    return [f"A {frames}-frame 640x480 run capturing every frame (no rate cap, duplicates suppressed) into a 5 MB quota: "
            f"{m.group(1)} captured, {m.group(3)} evicted, {m.group(2)} dropped with the writer behind; the folder holds "
            f"**{size / 1e6:.2f} MB** at the end (quota 5.00 MB, session.json included)."]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, required=True, help="A trained run folder (converted here).")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from edgecls.convert.export import convert_run

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = convert_run(args.run, "int8", work / "model_int8.tflite").path
        lines = ["## field learning (capture, drift monitor)", "",
                 "`scripts/bench_field.py`: the device's own classifier, capture rules and drift monitor on "
                 "camera-like frames of the built-in shapes (`edgecls/demo_field.py` for the shifts).", "",
                 "### Capture precision", ""]
        lines += capture_precision(model, 600 if args.quick else 3000)
        lines += ["", "### Drift detection", ""]
        lines += drift_detection(model, 10_000 if not args.quick else 3000)
        lines += ["", "### Cost", ""]
        lines += cost(model, work, 900 if args.quick else 1800, 3 if args.quick else 5)
        lines += ["", "### Capture quota over a long run", ""]
        lines += quota(model, work, 1500 if args.quick else 6000)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
