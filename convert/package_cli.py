"""``edgecls package RUN_DIR --out NAME.edgecls [--key NAME.key]`` (host: needs TensorFlow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgecls.cli import err_console, handle_errors, out_console
from edgecls.package_cli import package_app

from .field_export import DEFAULT_COUNT


@package_app.command("make")
@handle_errors
def make(
    run_dir: Annotated[Path, typer.Argument(help="Run folder from 'edgecls train' (converted if it is not yet).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The package to write: NAME.edgecls.")],
    quantize: Annotated[str, typer.Option(help="The model variant to ship (int8: its field bundle needs it).")] = "int8",
    key: Annotated[Path | None, typer.Option(help="Sign with this private key (NAME.key from 'edgecls keygen'); devices refuse unsigned packages.")] = None,
    data: Annotated[Path | None, typer.Option(help="Folder (one subfolder per class) for the field bundle (default: the run's validation folder).")] = None,
    version: Annotated[str | None, typer.Option(help="Version string in the manifest (default RUN-NAME-<UTC time>).")] = None,
    count: Annotated[int, typer.Option(help="Reference images in the field bundle.")] = DEFAULT_COUNT,
    force: Annotated[bool, typer.Option(help="Replace an existing package.")] = False,
) -> None:
    """Write one update package: model, field bundle, manifest (hashes, labels, input spec), signature."""
    from .package import make_package

    with err_console.status(f"packaging {run_dir} ..."):
        result = make_package(run_dir, out, quantize=quantize, key=key, data=data, version=version, count=count,
                              force=force)
    info = result.info
    out_console.print(f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB): version {info.version}, "
                      f"model sha256 {info.model_sha256}, labels {', '.join(info.labels)}, "
                      + (f"signed by key {info.key_id}" if result.signed else "UNSIGNED (devices will refuse it)"),
                      highlight=False, soft_wrap=True)
