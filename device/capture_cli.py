"""``edgecls collect`` and ``edgecls field import``: the ends of the field-learning loop.

Registered by :mod:`.cli`; nothing here imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgecls.cli import app, err_console, handle_errors, out_console

from .field_cli import field_app


@app.command()
@handle_errors
def collect(
    label: Annotated[str, typer.Option(help="The class being collected: frames go to OUT/LABEL/.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The dataset folder (one subfolder per class, as 'edgecls train' reads).")],
    source: Annotated[str, typer.Option(help="Camera index, /dev/videoN, file, folder, URL, GStreamer pipeline or 'picamera2'.")] = "0",
    count: Annotated[int | None, typer.Option(help="Stop after saving this many images.")] = None,
    every: Annotated[float, typer.Option(help="At least this many seconds between saves.")] = 0.0,
    serve: Annotated[str | None, typer.Option(metavar="[HOST:]PORT", help="Show the label and count on a preview page.")] = None,
    serve_token: Annotated[str | None, typer.Option(envvar="EDGECLS_SERVE_TOKEN", show_default=False,
                                                    help="Require this token on every --serve route.")] = None,
) -> None:
    """Save camera frames (originals, never resized) as training images of one class."""
    from .cli import _setup_logging
    from .collect import CollectOptions
    from .collect import collect as run_collect

    _setup_logging()
    result = run_collect(CollectOptions(source=source, label=label, out=out, count=count, every_s=every,
                                        serve=serve, serve_token=serve_token))
    out_console.print(f"saved {result.saved} images to {result.folder} ({result.duplicates} near-duplicates skipped, "
                      f"{result.frames} frames read)", highlight=False, soft_wrap=True)


@field_app.command("import")
@handle_errors
def import_(
    capture_dir: Annotated[Path, typer.Argument(help="A folder written by 'edgecls run --capture'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Review folder to create: one folder per predicted label, index.csv.")],
    labels: Annotated[Path | None, typer.Option(help="Refuse captures whose model had other labels than this labels file.")] = None,
    model: Annotated[Path | None, typer.Option(help="Refuse captures whose model had other labels than this .tflite.")] = None,
    force: Annotated[bool, typer.Option(help="Replace a non-empty review folder.")] = False,
) -> None:
    """Lay captures out for review: one folder per predicted label, score and rule in the names, a CSV index."""
    from edgecls.labels import read_labels

    from .capture_import import import_captures
    from .model import read_model_info

    expected = read_labels(labels) if labels is not None else (read_model_info(model).labels if model is not None else None)
    result = import_captures(capture_dir, out, labels=expected, force=force)
    per = ", ".join(f"{k} {v}" for k, v in sorted(result.per_label.items()))
    out_console.print(f"imported {result.count} captures into {result.out} ({per}); index {result.out / 'index.csv'}",
                      highlight=False, soft_wrap=True)
    if result.incomplete:
        err_console.print(f"note: {result.incomplete} incomplete capture(s) skipped", highlight=False)
    out_console.print(f"review them (move wrong ones to the right folder), then: edgecls train DATA --extra-data {result.out} ...",
                      highlight=False, soft_wrap=True)
