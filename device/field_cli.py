"""``edgecls field check`` (device side), on the group :data:`edgecls.cli.field_app`.

The host commands (``field export``, ``field replay``) add themselves to the same group from
:mod:`edgecls.convert.field_cli`. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from edgecls.cli import err_console, field_app, handle_errors, out_console, styled

from .options import EDGETPU_DEVICE


@field_app.command("check")
@handle_errors
def check(
    model: Annotated[Path, typer.Option(help="The .tflite on the device (the *_edgetpu.tflite with --edgetpu).")],
    bundle: Annotated[Path, typer.Option(help="The bundle from 'edgecls field export' (folder, .tar or .zip).")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here.")] = None,
    edgetpu: Annotated[bool, typer.Option(help="Run on the Coral Edge TPU (raw outputs within the bundle's stated step).")] = False,
    device: Annotated[str, typer.Option(help="Which Edge TPU, with --edgetpu: usb:0, pci:0, ...")] = EDGETPU_DEVICE,
    num_threads: Annotated[int, typer.Option(help="Interpreter threads.")] = 1,
) -> None:
    """Check this device against a bundle: model hash, runtime, agreement with float, preprocessing."""
    from edgecls.fsutil import atomic_write_json

    from .field import field_check

    report = field_check(model, bundle, edgetpu=edgetpu, device=device, num_threads=num_threads)
    table = Table(title=f"field check: {model.name} on {report.backend}, {report.count} reference images from {bundle}")
    for col in ("check", "figure", "limit", "status", "detail"):
        table.add_column(col, justify="left", overflow="fold")
    for row in report.rows:
        table.add_row(row.name, row.figure, row.limit, "pass" if row.passed else Text("FAIL", style="bold red"), row.detail)
    out_console.print(table, width=max(out_console.width, 160))
    if json_out is not None:
        atomic_write_json(json_out, report.to_dict())
    if not report.passed:
        err_console.print(styled("field check failed:", "bold red", '; '.join(report.failures())), highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    out_console.print(f"field check passed: the device reproduces the host on {report.count} reference images",
                      highlight=False)
