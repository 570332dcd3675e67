"""``edgecls run``, ``edgecls bench`` and ``edgecls doctor``: the device commands.

Registered on the shared app by :func:`edgecls.cli.main`. Nothing heavy is imported at
module level (the interpreter, OpenCV and the loop load inside each command), and nothing
here or below imports TensorFlow.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from edgecls.cli import app, err_console, handle_errors, out_console, styled
from edgecls.redact import MaskSecretsFilter

from . import (
    capture_cli,  # noqa: F401  (registers 'edgecls collect' and 'field import')
    field_cli,  # noqa: F401  (registers 'edgecls field' and 'field check')
)
from .options import DEFAULT_CAPTURE_SIZE, EDGETPU_DEVICE

INPUT_MEAN_HELP = ("A model without normalisation metadata takes (pixel - mean) / std: the mean "
                   "(e.g. 127.5 for inputs in [-1, 1]). Default: from the model.")
INPUT_STD_HELP = "... and the std (e.g. 127.5 for inputs in [-1, 1]). Default: from the model."

CAPTURE_SIZE = "{}x{}".format(*DEFAULT_CAPTURE_SIZE)
DECODE_THREADS_HELP = ("FFmpeg threads decoding a video file or stream (0: FFmpeg picks, one per core); "
                       "1 leaves the other cores to the classifier.")
SOURCE_HELP = "Camera index, /dev/videoN, video file, folder of images, RTSP/HTTP URL, GStreamer pipeline, or 'picamera2'."


def _setup_logging(verbose: bool = False) -> None:
    logger = logging.getLogger("edgecls.device")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        handler.addFilter(MaskSecretsFilter())  # no stream password in a journal
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


def _warn_resize() -> None:
    from .doctor import resize_warning

    warning = resize_warning()
    if warning:
        err_console.print(warning, markup=False, highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def run(
    model: Annotated[Path | None, typer.Option(help="The .tflite model (labels and spec embedded, or labels.txt beside it).")] = None,
    source: Annotated[str, typer.Option(help=SOURCE_HELP)] = "0",
    headless: Annotated[bool, typer.Option(help="No window: print results (and write --jsonl).")] = False,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many classified frames.")] = None,
    jsonl: Annotated[Path | None, typer.Option(help="Append one JSON object per classified frame here, line by line.")] = None,
    jsonl_max_mb: Annotated[float, typer.Option(help="Rotate --jsonl (gzip) before it passes this many MiB; 0: never.")] = 0.0,
    jsonl_keep: Annotated[int, typer.Option(help="With --jsonl-max-mb: how many rotated files to keep.")] = 10,
    top_k: Annotated[int, typer.Option(help="Report the K most probable labels.")] = 1,
    threshold: Annotated[float, typer.Option(help="Report 'unknown' when the top score is below this.")] = 0.0,
    smooth: Annotated[int, typer.Option(help="Average probabilities over the last N frames.")] = 1,
    num_threads: Annotated[int, typer.Option(help="Interpreter threads (1 leaves a core for capture).")] = 1,
    edgetpu: Annotated[bool, typer.Option(help="Run on a Coral Edge TPU (use the *_edgetpu.tflite model).")] = False,
    device: Annotated[str, typer.Option(help="Which Edge TPU, with --edgetpu: usb:0, pci:0, ...")] = EDGETPU_DEVICE,
    labels: Annotated[Path | None, typer.Option(help="A labels file to use instead of the model's.")] = None,
    stats_every: Annotated[float, typer.Option(help="Seconds between stats lines (0: none).")] = 5.0,
    quiet: Annotated[bool, typer.Option(help="Do not print each result; stats lines only.")] = False,
    realtime: Annotated[bool, typer.Option(help="Play a video file at its recorded frame rate (a folder at 30 fps), as a camera would.")] = False,
    save_frames: Annotated[Path | None, typer.Option(help="Keep sampled frames here (PNG, model input, prediction) for 'edgecls field replay'.")] = None,
    save_every: Annotated[int, typer.Option(help="With --save-frames: keep every N-th classified frame.")] = 10,
    capture_size: Annotated[str, typer.Option(
        metavar="WxH", help="Frame size to ask of a camera or picamera2 (smaller: less to decode and resize).")] = CAPTURE_SIZE,
    decode_threads: Annotated[int, typer.Option(help=DECODE_THREADS_HELP)] = 1,
    serve: Annotated[str | None, typer.Option(
        metavar="[HOST:]PORT",
        help="Serve a live preview page, /stream, /status and /metrics (host 127.0.0.1 unless given).")] = None,
    serve_token: Annotated[str | None, typer.Option(
        envvar="EDGECLS_SERVE_TOKEN", show_envvar=True, show_default=False,
        help="Require this token on every --serve route (?token= or Authorization: Bearer).")] = None,
    input_mean: Annotated[float | None, typer.Option(help=INPUT_MEAN_HELP)] = None,
    input_std: Annotated[float | None, typer.Option(help=INPUT_STD_HELP)] = None,
    mqtt: Annotated[str | None, typer.Option(
        metavar="URL", help="Publish results, health and take commands over MQTT: mqtt://HOST[:PORT] or mqtts://.")] = None,
    device_id: Annotated[str | None, typer.Option(help="This device's name in MQTT topics (default: the hostname).")] = None,
    mqtt_prefix: Annotated[str, typer.Option(help="First level of every MQTT topic.")] = "edgecls",
    mqtt_credentials: Annotated[Path | None, typer.Option(
        envvar="EDGECLS_MQTT_CREDENTIALS", show_envvar=True,
        help="File with 'user:password' on its first line (or $EDGECLS_MQTT_USERNAME/$EDGECLS_MQTT_PASSWORD).")] = None,
    mqtt_ca: Annotated[Path | None, typer.Option(help="CA certificate (PEM) to verify the broker; implies TLS.")] = None,
    mqtt_cert: Annotated[Path | None, typer.Option(help="Client certificate (PEM) for TLS, with --mqtt-key.")] = None,
    mqtt_key: Annotated[Path | None, typer.Option(help="Client key (PEM) for --mqtt-cert.")] = None,
    mqtt_spool: Annotated[Path | None, typer.Option(
        help="Event spool (sqlite) kept while the broker is away (default: $STATE_DIRECTORY or ~/.local/state/edgecls/).")] = None,
    mqtt_state_every: Annotated[float, typer.Option(help="Seconds between retained state messages (also sent on every label change).")] = 30.0,
    ha_discovery_prefix: Annotated[str, typer.Option(help="Home Assistant discovery prefix ('' : no discovery).")] = "homeassistant",
    bundle: Annotated[Path | None, typer.Option(help="Field bundle for the MQTT command cmd/field-check.")] = None,
    store: Annotated[Path | None, typer.Option(help="Serve the current model of this model store (instead of --model).")] = None,
    trust: Annotated[list[Path] | None, typer.Option(help="With --store: a public key packages must be signed by (repeat for several).")] = None,
    inbox: Annotated[Path | None, typer.Option(help="With --store: take update packages (*.edgecls) dropped into this folder.")] = None,
    probation: Annotated[float, typer.Option(help="Seconds a new model is watched (errors, fps, a crash) before it is confirmed.")] = 30.0,
    capture: Annotated[Path | None, typer.Option(help="Keep the frames the --capture-rule rules catch here, for review.")] = None,
    capture_rule: Annotated[list[str] | None, typer.Option(
        help="low-score:S, margin:M, label:NAME, flip or every:N; repeat or comma-join. Default: low-score:0.6,margin:0.2.")] = None,
    capture_rate: Annotated[str, typer.Option(help="Caps on captures per minute, hour, day.")] = "10/min,200/hour,2000/day",
    capture_quota: Annotated[float, typer.Option(help="MB the capture folder may hold; the oldest captures are evicted.")] = 200.0,
    drift: Annotated[bool, typer.Option("--drift/--no-drift", help="Watch input and output statistics against the model's baseline.")] = True,
) -> None:
    """Classify camera frames live (or every frame of a video file or folder)."""
    from .loop import run as run_classifier
    from .options import RunOptions
    from .sources import parse_capture_size

    _setup_logging()
    if (model is None) == (store is None):
        from edgecls.errors import DataError

        raise DataError("give --model FILE.tflite or --store DIR (a model store), not both and not neither")
    _warn_resize()
    summary = run_classifier(RunOptions(
        store=store, trust=tuple(trust or ()), inbox=inbox, probation_s=probation,
        capture_size=parse_capture_size(capture_size), decode_threads=decode_threads,
        save_frames=save_frames, save_every=save_every,
        model=model or Path(), source=source, headless=headless, max_frames=max_frames, jsonl=jsonl, top_k=top_k,
        threshold=threshold, smooth=smooth, num_threads=num_threads, edgetpu=edgetpu, device=device,
        labels=labels, stats_every_s=stats_every, quiet=quiet, serve=serve, serve_token=serve_token,
        realtime=realtime, input_mean=input_mean, input_std=input_std,
        jsonl_max_mb=jsonl_max_mb, jsonl_keep=jsonl_keep,
        mqtt=mqtt, device_id=device_id, mqtt_prefix=mqtt_prefix, mqtt_credentials=mqtt_credentials, mqtt_ca=mqtt_ca,
        mqtt_cert=mqtt_cert, mqtt_key=mqtt_key, mqtt_spool=mqtt_spool, mqtt_state_every_s=mqtt_state_every,
        ha_discovery_prefix=ha_discovery_prefix, bundle=bundle,
        capture=capture, capture_rate=capture_rate, capture_quota_mb=capture_quota, drift=drift,
        **({"capture_rules": tuple(capture_rule)} if capture_rule else {}),
    ))
    err_console.print(
        f"done: {summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} fps, "
        f"{1e3 * summary.cpu_seconds / max(summary.frames, 1):.2f} ms CPU a frame), "
        f"{summary.dropped} dropped, {summary.reconnects} reconnects; stopped by {summary.stopped_by}",
        highlight=False, soft_wrap=True,
    )


@app.command()
@handle_errors
def bench(
    model: Annotated[Path, typer.Option(help="The .tflite model to measure.")],
    source: Annotated[str | None, typer.Option(help=SOURCE_HELP + f" Default: a synthetic frame in memory (--capture-size, {CAPTURE_SIZE}).")] = None,
    frames: Annotated[int, typer.Option(help="Frames to measure (after warm-up).")] = 500,
    warmup: Annotated[int, typer.Option(help="Frames run first and not counted.")] = 20,
    num_threads: Annotated[int, typer.Option(help="Interpreter threads.")] = 1,
    edgetpu: Annotated[bool, typer.Option(help="Run on a Coral Edge TPU.")] = False,
    device: Annotated[str, typer.Option(help="Which Edge TPU, with --edgetpu.")] = EDGETPU_DEVICE,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here.")] = None,
    capture_size: Annotated[str, typer.Option(
        metavar="WxH", help="Frame size to ask of a camera; without --source, the synthetic frame's size.")] = CAPTURE_SIZE,
    decode_threads: Annotated[int, typer.Option(help=DECODE_THREADS_HELP)] = 1,
    input_mean: Annotated[float | None, typer.Option(help=INPUT_MEAN_HELP)] = None,
    input_std: Annotated[float | None, typer.Option(help=INPUT_STD_HELP)] = None,
) -> None:
    """Per-stage latency (median, p99), frames/s and XNNPACK-delegated partitions."""
    from rich.table import Table

    from edgecls.fsutil import atomic_write_json

    from .bench import BenchOptions, run_bench
    from .sources import parse_capture_size

    _warn_resize()
    report = run_bench(BenchOptions(model=model, source=source, frames=frames, warmup=warmup,
                                    num_threads=num_threads, edgetpu=edgetpu, device=device,
                                    capture_size=parse_capture_size(capture_size), decode_threads=decode_threads,
                                    input_mean=input_mean, input_std=input_std))
    table = Table(title=f"{model.name} on {report.backend} ({report.runtime}), source {report.source}")
    table.add_column("stage")
    table.add_column("median ms", justify="right")
    table.add_column("p99 ms", justify="right")
    for stage in report.stages:
        table.add_row(stage.name, f"{stage.median_ms:.3f}", f"{stage.p99_ms:.3f}")
    out_console.print(table)
    out_console.print(
        f"{report.frames} frames, {report.fps:.1f} frames/s; delegated partitions: {report.delegated_partitions} "
        f"of {report.ops} nodes ({'XNNPACK runs the graph' if report.delegated_partitions > 0 else 'NO delegate: reference kernels'})",
        highlight=False,
    )
    if json_out is not None:
        atomic_write_json(json_out, report.to_dict())


@app.command()
@handle_errors
def doctor(
    model: Annotated[Path | None, typer.Option(help="Also check that this model loads and matches its labels.")] = None,
) -> None:
    """Report the runtime, Edge TPU delegate, cameras, picamera2 and what to fix."""
    from .doctor import diagnose

    report = diagnose(model)
    for check in report.checks:
        mark = ("ok  ", "green") if check.ok else (("--  ", "yellow") if not check.required else ("FAIL", "red"))
        out_console.print(styled(mark[0], mark[1], f"{check.name}: {check.detail}"), highlight=False, soft_wrap=True)
        if not check.ok and check.fix:
            out_console.print(f"      fix: {check.fix}", highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


from . import update_cli  # noqa: E402, F401  (registers 'edgecls store' and 'edgecls rollback')
