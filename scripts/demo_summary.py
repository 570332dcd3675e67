"""The closing table of scripts/demo, read from the JSON each step wrote (nothing recomputed).

    .venv/bin/python scripts/demo_summary.py DEMO_DIR
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _video_run(out: Path) -> dict[str, float] | None:
    lines = (out / "run.jsonl").read_text(encoding="utf-8").splitlines() if (out / "run.jsonl").exists() else []
    records = [r for r in (json.loads(line) for line in lines if line.strip()) if "event" not in r]
    truth = _load(out / "camera.avi.truth.json")
    if not records or truth is None:
        return None
    hits = [r["label"] == truth["truth"][r["source_index"]] for r in records if r["source_index"] < len(truth["truth"])]
    return {
        "frames": len(records),
        "accuracy": sum(hits) / len(hits) if hits else 0.0,
        "fps": statistics.median(r["fps"] for r in records[len(records) // 2 :]),
        "invoke_ms": statistics.median(r["invoke_ms"] for r in records),
        "latency_ms": statistics.median(r["latency_ms"] for r in records),
    }


def main(out: Path) -> int:
    console = Console(width=max(110, Console().width))
    run = out / "run"
    table = Table(title="edgecls demo: the whole loop on built-in data", show_lines=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("from")
    history = _load(run / "history.json")
    if history:
        stopped = "early stopping" if history["epochs"] < history.get("max_epochs", history["epochs"]) else "max epochs"
        table.add_row(f"training: epochs run ({stopped}), best epoch kept (its validation accuracy)",
                      f"{history['epochs']}, best {history['best_epoch']} ({history['best_val_accuracy']:.2%})", "edgecls train")
    evaluation = _load(run / "evaluation.json")
    if evaluation:
        table.add_row("float (Keras) test accuracy (images no choice was made on)", f"{evaluation['accuracy']:.2%}",
                      "edgecls evaluate")
    parity = _load(out / "parity.json")
    if parity:
        for name, v in parity["variants"].items():
            verdict = "pass" if v["passed"] else "FAIL"
            table.add_row(
                f"{name}: accuracy / agreement with float / size",
                f"{v['accuracy']:.2%} / {v['top1_agreement']:.2%} / {v['size_bytes'] / 1e6:.2f} MB ({verdict})",
                "edgecls parity",
            )
    video = _video_run(out)
    if video:
        table.add_row("device run on the camera-like video: frames", f"{video['frames']:.0f}", "edgecls run --jsonl")
        table.add_row("device run: accuracy against the video's truth", f"{video['accuracy']:.2%}", "run.jsonl + truth")
        table.add_row("device run: frames/s (paced at the video's rate), invoke ms, latency ms (medians)",
                      f"{video['fps']:.0f} / {video['invoke_ms']:.3f} / {video['latency_ms']:.1f}", "run.jsonl")
    check = _load(out / "field_check.json")
    if check:
        table.add_row("field check on the device", "PASS" if check.get("passed") else "FAIL", "edgecls field check")
    if check:
        table.add_row("field check: reference images, failures", f"{check.get('count')}, {len(check.get('failures', []))}",
                      "edgecls field check")
    replay = _load(out / "field_replay.json")
    if replay:
        table.add_row("field replay: device vs float agreement on field frames",
                      f"{replay['agreement']:.2%} of {replay['count']}", "edgecls field replay")
        table.add_row("field replay: quantization drift", "ok" if replay["quantization_ok"] else "DRIFT", "edgecls field replay")
        table.add_row("field replay: domain drift", "ok" if replay["domain_ok"] else "DRIFT", "edgecls field replay")
    console.print(table)
    console.print("artifacts:")
    for path in [run / "model.keras", *sorted(run.glob("*.tflite")), out / "bundle", out / "frames", out / "run.jsonl",
                 run / "curves.png", run / "confusion.png"]:
        if path.exists():
            console.print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
