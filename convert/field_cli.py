"""``edgecls field export`` and ``edgecls field replay``: the host side of field parity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from edgecls.cli import err_console, field_app, handle_errors, out_console

from .field_export import DEFAULT_COUNT


@field_app.command("export")
@handle_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run folder from 'edgecls train' (converted with 'edgecls convert').")],
    data: Annotated[Path, typer.Option(help="Folder with one subfolder per class to draw reference images from.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle to write: a folder, or a single .tar or .zip.")],
    model: Annotated[Path | None, typer.Option(help="The int8 .tflite to deploy (default RUN_DIR/model_int8.tflite).")] = None,
    count: Annotated[int, typer.Option(help="Reference images, stratified by class (a quarter at the decision boundary).")] = DEFAULT_COUNT,
    seed: Annotated[int, typer.Option(help="Seed of the random part of the selection.")] = 0,
    force: Annotated[bool, typer.Option(help="Replace an existing bundle.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write what was exported as JSON here.")] = None,
) -> None:
    """Write a self-contained field bundle: originals, exact tensors, float and host int8 outputs, hash, tolerances."""
    from .field_export import field_export

    with err_console.status("running the float and int8 models on the data ..."):
        result = field_export(run_dir, data, out, model=model, count=count, seed=seed, force=force)
    classes = ", ".join(f"{k} {v}" for k, v in result.per_class.items())
    out_console.print(f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB): {result.count} images ({classes}), "
                      f"{result.boundary} at the decision boundary", highlight=False, soft_wrap=True)
    out_console.print(f"  model {result.model.name} sha256 {result.model_sha256}"
                      + (f"; Edge TPU model sha256 {result.edgetpu_sha256}" if result.edgetpu_sha256 else ""),
                      highlight=False, soft_wrap=True)
    out_console.print(f"  host int8 top-1 agreement with float on the bundle: {result.host_top1_agreement:.2%}",
                      highlight=False)
    out_console.print(f"  on the device: edgecls field check --model {result.model.name} --bundle {result.path.name}",
                      highlight=False, soft_wrap=True)
    if json_out is not None:
        from edgecls.fsutil import atomic_write_json

        atomic_write_json(json_out, result.to_dict())


@field_app.command("replay")
@handle_errors
def replay(
    run_dir: Annotated[Path, typer.Argument(help="Run folder the device's model was converted from.")],
    frames: Annotated[Path, typer.Option(help="Folder written by 'edgecls run --save-frames'.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here.")] = None,
    train_data: Annotated[Path | None, typer.Option(help="Training folder for the input statistics (default: the run's).")] = None,
) -> None:
    """Score saved field frames with the float model: quantization drift and domain drift, reported apart."""
    from edgecls.fsutil import atomic_write_json

    from .field_replay import field_replay

    with err_console.status("scoring the saved frames with the float model ..."):
        report = field_replay(run_dir, frames, train_data=train_data)
    out_console.print(f"{report.count} frames ({report.image_size}) from {frames}; tensors reproduced from the "
                      f"originals: {report.tensors_reproduced} of {report.count}"
                      + (f"; {len(report.incomplete)} incomplete frame(s) skipped" if report.incomplete else ""),
                      highlight=False, soft_wrap=True)
    q = Table(title=f"quantization drift: device vs float on field frames (pass: agreement >= {report.min_agreement:.0%}, "
                    f"or at most {report.allowed_flips} flip)")
    for col in ("class (float)", "frames", "agreement", "mean |Δp|"):
        q.add_column(col, justify="left" if col.startswith("class") else "right")
    for c in report.per_class:
        q.add_row(c.label, str(c.frames), f"{c.agreement:.2%}" if c.frames else "-", f"{c.mean_abs_prob_diff:.4f}" if c.frames else "-")
    q.add_row("all", str(report.count), f"{report.agreement:.2%}", f"{report.mean_abs_prob_diff:.4f}")
    out_console.print(q)
    d = Table(title=f"domain drift: field frames ({report.scenes} distinct scenes) vs training data "
                    f"({report.train_count} images of {report.train_dir})")
    for col in ("statistic", "training", "field", "distance", "limit", "status"):
        d.add_column(col, justify="left" if col == "statistic" else "right")
    for s in report.statistics:
        d.add_row(s.name, s.train, s.field, f"{s.distance:.3f}", f"{s.limit:.3f}", "ok" if s.ok else Text("DRIFT", style="bold red"))
    out_console.print(d)
    out_console.print(f"quantization drift: {report.quantization_verdict}", highlight=False, soft_wrap=True)
    out_console.print(f"domain drift: {report.domain_verdict}", highlight=False, soft_wrap=True)
    if json_out is not None:
        atomic_write_json(json_out, report.to_dict())
    if not report.passed:
        raise typer.Exit(1)
