"""``edgecls convert`` and ``edgecls parity``: parse options, call one library function, print.

Tables go to stdout, except with ``--json -`` (JSON on stdout, the table on stderr).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgecls.cli import app, err_console, handle_errors, out_console, styled
from edgecls.errors import BackendError, DataError

from . import field_cli  # noqa: F401  (registers 'field export' and 'field replay')
from .export import DEFAULT_CALIBRATION, DYNAMIC_RUNTIME_NOTE, MODES, ExportResult
from .parity import MAX_ACCURACY_DROP, MIN_TOP1_AGREEMENT, ParityReport

if TYPE_CHECKING:
    from edgecls.folders import LoadedImages

TARGETS = ("cpu", "edgetpu")


def _print_wide(console: Console, table: Table, width: int = 160) -> None:
    """Tables of many figures: print at least ``width`` columns wide, even when piped
    (rich assumes 80 then, and would squash every number into an ellipsis)."""
    wide = Console(file=console.file, width=max(console.width, width), force_terminal=console.is_terminal,
                   no_color=console.no_color, highlight=False, markup=False)
    wide.print(table)


def _quant(q: dict[str, object]) -> str:
    if not q.get("scale"):
        return str(q.get("dtype"))
    return f"{q['dtype']} (scale {q['scale']:.6g}, zero point {q['zero_point']})"


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f}"


def parity_table(report: ParityReport) -> Table:
    """Ultralytics-benchmark style: one row per variant, float first as the reference."""
    t = Table(title=f"parity on {report.data}: {report.count} images, float accuracy {report.float_accuracy:.2%}  "
                    f"(pass: top-1 agreement >= {report.thresholds.min_top1_agreement:.1%}, "
                    f"accuracy drop <= {report.thresholds.max_accuracy_drop * 100:.2f} pp)")
    for name in ("variant", "status", "size MB", "accuracy", "Δ acc pp", "top-1 agree", "mean |Δp|",
                 "max |Δp|", "per-class Δ acc pp", "invoke ms"):
        t.add_column(name, justify="left" if name in ("variant", "status", "per-class Δ acc pp") else "right")
    t.add_row("keras float", "ref", "", f"{report.float_accuracy:.2%}", "", "", "", "", "", "")
    for v in report.variants:
        per_class = " ".join(f"{k} {d * 100:+.2f}" for k, d in v.per_class_accuracy_change.items())
        t.add_row(v.name, "pass" if v.passed else "FAIL", _mb(v.size_bytes), f"{v.accuracy:.2%}",
                  f"{v.accuracy_change * 100:+.2f}", f"{v.top1_agreement:.2%}", f"{v.mean_abs_prob_diff:.4f}",
                  f"{v.max_abs_prob_diff:.4f}", per_class, f"{v.latency_ms:.3f}")
    return t


def _finish_parity(report: ParityReport, json_out: str | None) -> None:
    from edgecls.fsutil import atomic_write_text

    console: Console = err_console if json_out == "-" else out_console
    _print_wide(console, parity_table(report))
    if json_out == "-":
        typer.echo(report.to_json(), nl=False)
    elif json_out:
        atomic_write_text(Path(json_out), report.to_json())
    if not report.passed:
        err_console.print(styled("parity failed:", "bold red", '; '.join(report.failures())), highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _print_export(result: ExportResult) -> None:
    out_console.print(f"wrote {result.path} ({result.size_bytes:,} bytes, {result.mode})", highlight=False, soft_wrap=True)
    out_console.print(f"  input {_quant(result.input)}; output {_quant(result.output)}", highlight=False, soft_wrap=True)
    out_console.print(f"  ops: {' '.join(result.ops)}", highlight=False, soft_wrap=True)
    from edgecls.drift import read_baseline

    # After a failed parity check the artifact was not kept: nothing to read the baseline from.
    kept = result.path.exists()
    drift = ", baseline.json (drift baseline)" if kept and read_baseline(result.path) is not None else ""
    out_console.print(f"  embedded: labels.txt, edgecls.json{drift} (TFLite metadata names labels.txt); "
                      "labels.txt beside it" + (f"; calibrated on {result.calibration_count} images"
                                                  if result.calibration_count else ""), highlight=False, soft_wrap=True)


def _edgetpu(result: ExportResult) -> None:
    from .edgetpu import check_readiness, compile_edgetpu

    readiness = check_readiness(result.path.read_bytes(), str(result.path))
    t = Table(title=f"Edge TPU readiness of {result.path.name}")
    for col in ("#", "op", "verdict"):
        t.add_column(col)
    for op in readiness.ops:
        t.add_row(str(op.index), op.op, "TPU" if op.ok else "CPU: " + "; ".join(op.problems))
    _print_wide(out_console, t)
    out_console.print(readiness.verdict(), highlight=False, soft_wrap=True)
    if not readiness.ready:
        err_console.print(styled("error:", "bold red", "the int8 graph does not meet the Edge TPU's requirements (table above)"))
        raise typer.Exit(1)
    target = result.path.with_name(f"{result.path.stem}_edgetpu.tflite")
    try:
        path, summary, _ = compile_edgetpu(result.path, target)
    except BackendError as err:
        err_console.print(styled("note:", "yellow", str(err)), highlight=False, soft_wrap=True)
        return
    out_console.print(f"compiled {path}: {summary.tpu_ops} of {summary.total_ops} ops on the Edge TPU, "
                      f"{summary.cpu_ops} on the CPU ({summary.subgraphs} TPU subgraph(s))", highlight=False, soft_wrap=True)
    if summary.cpu_ops:
        for name, count, status in summary.operators:
            if not status.startswith("Mapped to Edge TPU"):
                out_console.print(f"  {name} x{count}: {status}", highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def convert(
    run_dir: Annotated[Path, typer.Argument(help="Run folder from 'edgecls train'.")],
    quantize: Annotated[str, typer.Option(help=f"One of {', '.join(MODES)}. int8 is full-integer.")] = "int8",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (default RUN_DIR/model_<mode>.tflite).")] = None,
    io_dtype: Annotated[str, typer.Option(help="int8 mode: input/output type, uint8 (raw pixels in) or int8.")] = "uint8",
    calibration: Annotated[int, typer.Option(help="int8 mode: calibration images, stratified over classes.")] = DEFAULT_CALIBRATION,
    data: Annotated[Path | None, typer.Option(help="Calibration folder (default: the run's training folder).")] = None,
    target: Annotated[str, typer.Option(help="cpu, or edgetpu: check the int8 graph and compile it if edgetpu_compiler is installed.")] = "cpu",
    val_data: Annotated[Path | None, typer.Option(help="int8 mode: folder for the closing parity check (default: the run's validation data).")] = None,
    parity_check: Annotated[bool, typer.Option("--parity/--no-parity", help="int8 mode: finish with a parity check against float.")] = True,
) -> None:
    """Convert a trained run to a self-describing .tflite (labels and input spec inside)."""
    from .export import check_options, check_output_path, convert_run, default_output

    check_options(quantize, io_dtype, calibration)
    if target not in TARGETS:
        raise DataError(f"unknown --target {target!r}: use one of {', '.join(TARGETS)}")
    if target == "edgetpu" and quantize != "int8":
        raise DataError(f"--target edgetpu needs --quantize int8 (got {quantize}): the Edge TPU runs only 8-bit graphs")
    if quantize == "dynamic":
        err_console.print(styled("note:", "yellow", DYNAMIC_RUNTIME_NOTE), highlight=False, soft_wrap=True)
    final = Path(out) if out is not None else default_output(run_dir, quantize)
    check_output_path(final)  # before anything slow, and naming the path the user gave
    loaded: LoadedImages | None = None
    where: str | None = None
    report: ParityReport | None = None
    if quantize == "int8" and parity_check:
        from edgecls.evaluate import load_labelled
        from edgecls.model import SPEC_FILE
        from edgecls.spec import load_spec

        from .export import check_run_dir
        from .parity import validation_data

        check_run_dir(run_dir)
        spec = load_spec(Path(run_dir) / SPEC_FILE)
        if val_data is not None:
            loaded, where = load_labelled(val_data, spec, what="validation folder"), str(val_data)
        else:
            found = validation_data(run_dir, spec)
            if found is None:
                err_console.print(styled("note:", "yellow", "the run records no validation data: pass --val-data DIR for the parity check"))
            else:
                loaded, where = found
    # With a parity check, the artifact is staged under a hidden name and takes its real name
    # only once it passes: a failed check leaves the previous good artifact in place.
    staged = staged_artifact(final) if loaded is not None else final
    try:
        with err_console.status(f"converting {run_dir} ({quantize}) ..."):
            result = convert_run(run_dir, quantize, staged, io_dtype=io_dtype, calibration=calibration, data_dir=data)
        if loaded is not None:
            from .parity import parity

            with err_console.status("checking parity against the float model ..."):
                report = parity(run_dir, variants=[str(staged)], data=loaded, convert_missing=False)
            report = replace(report, data=where or report.data, variants=tuple(
                replace(v, name=str(final), path=str(final)) for v in report.variants))
            if report.passed:
                os.replace(staged, final)
            result = replace(result, path=final)
    finally:
        if staged != final:
            staged.unlink(missing_ok=True)
    _print_export(result)
    if report is not None and not report.passed:
        kept = f"the previous {final} is left in place" if final.exists() else f"{final} was not written"
        err_console.print(styled("note:", "yellow", f"{kept}: the converted model failed its parity check"),
                          highlight=False, soft_wrap=True)
        _finish_parity(report, None)
    if target == "edgetpu":
        _edgetpu(result)
    if report is not None:
        _finish_parity(report, None)


def staged_artifact(final: Path) -> Path:
    """A hidden name beside ``final`` for an artifact not yet checked (removed by the next run if killed)."""
    from edgecls.fsutil import clean_stale_staging, staging_name

    clean_stale_staging(final.absolute().parent)
    return final.with_name(f"{staging_name('convert')}.{final.name}")


@app.command("parity")
@handle_errors
def parity_command(
    run_dir: Annotated[Path, typer.Argument(help="Run folder from 'edgecls train'.")],
    data: Annotated[Path, typer.Option(help="Folder with one subfolder per class (a subset of the run's labels).")],
    variants: Annotated[str, typer.Option(help="Comma-separated modes or .tflite paths; a missing RUN_DIR/model_<mode>.tflite is converted first.")] = ",".join(MODES),
    json_out: Annotated[str | None, typer.Option("--json", help="Write the report as JSON to this file ('-' for stdout).")] = None,
    min_agreement: Annotated[float, typer.Option(help="Pass threshold: top-1 agreement with float (0..1).")] = MIN_TOP1_AGREEMENT,
    max_drop: Annotated[float, typer.Option(help="Pass threshold: accuracy drop against float, as a fraction (0.01 = 1 pp).")] = MAX_ACCURACY_DROP,
    diagnose: Annotated[bool, typer.Option(help="Also run TensorFlow's quantization debugger on the int8 conversion and list the worst layers.")] = False,
) -> None:
    """Run the float model and each TFLite variant on the same images; exit 1 if a variant fails."""
    from .export import default_output
    from .parity import Thresholds, parse_variants
    from .parity import parity as run_parity

    names = parse_variants(variants)
    thresholds = Thresholds(min_agreement, max_drop)
    thresholds.validate()
    for name in names:
        if not name.endswith(".tflite") and not default_output(run_dir, name).exists():
            err_console.print(f"note: {default_output(run_dir, name)} does not exist: converting it first",
                              highlight=False, soft_wrap=True)
    with err_console.status("running float and TFLite variants ..."):
        report = run_parity(run_dir, data, names, thresholds=thresholds)
    if diagnose:
        _diagnose(run_dir, data, report, err_console if json_out == "-" else out_console)
    _finish_parity(report, json_out)


def _diagnose(run_dir: Path, data: Path, report: ParityReport, console: Console) -> None:
    from edgecls.evaluate import load_labelled
    from edgecls.model import SPEC_FILE
    from edgecls.spec import load_spec

    from .diagnose import ROUNDING_RMSE_STEPS, diagnose

    loaded = load_labelled(data, load_spec(Path(run_dir) / SPEC_FILE), what="parity data")
    with err_console.status("running the quantization debugger ..."):
        layers = diagnose(run_dir, loaded.x)
    t = Table(title=f"largest quantization error per layer (int8; rounding alone is {ROUNDING_RMSE_STEPS:.2f} steps)")
    for col in ("layer", "op", "RMSE / scale (steps)", "max |error|", "likely fix"):
        t.add_column(col)
    for e in layers:
        t.add_row(e.layer, e.op, f"{e.rmse_over_scale:.2f}", f"{e.max_abs_error:.4g}", e.advice())
    _print_wide(console, t)
    if report.passed:
        console.print("parity passed; the table is for reference", highlight=False, soft_wrap=True)


from . import package_cli  # noqa: E402, F401  (registers 'package make', the default of 'edgecls package')
