"""``edgecls keygen`` and ``edgecls package verify``: the parts of update packages that need
no TensorFlow (host and device alike). ``edgecls package RUN_DIR`` (making one) is added to
the same group by ``edgecls.convert.package_cli``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from edgecls.cli import app, handle_errors, out_console


class _MakeByDefault(TyperGroup):
    """``edgecls package RUN_DIR ...`` means ``edgecls package make RUN_DIR ...``; ``verify``
    stays a subcommand (the parser would otherwise read RUN_DIR as a command name)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["make", *args]
        return super().parse_args(ctx, args)


package_app = typer.Typer(cls=_MakeByDefault, no_args_is_help=True,
                          help="Make (RUN_DIR ... --out NAME.edgecls) or verify signed update packages.")
app.add_typer(package_app, name="package")


@app.command()
@handle_errors
def keygen(
    out: Annotated[Path, typer.Option("--out", "-o", help="Writes OUT.key (private, keep it on the host) and OUT.pub (give it to devices).")],
    force: Annotated[bool, typer.Option(help="Replace an existing key pair.")] = False,
) -> None:
    """Make an Ed25519 key pair for signing update packages."""
    from edgecls.package import keygen as make_keys

    private, public = make_keys(out, force=force)
    out_console.print(f"wrote {private} (private: sign with --key {private}) and {public} "
                      f"(public: give devices --trust {public.name})", highlight=False, soft_wrap=True)


@package_app.command("verify")
@handle_errors
def verify(
    package: Annotated[Path, typer.Argument(help="The NAME.edgecls to check.")],
    trust: Annotated[list[Path], typer.Option(help="A trusted public key (NAME.pub); repeat for several.")],
) -> None:
    """Check the signature against the trusted keys, every member's sha256, and the layout."""
    from edgecls.package import verify_package

    info = verify_package(package, trust)
    out_console.print(f"ok: {package} version {info.version}, model sha256 {info.model_sha256}, "
                      f"labels {', '.join(info.labels)}, input {info.input_size}x{info.input_size}, "
                      f"signed by key {info.key_id}, made {info.created} from {info.source_run}",
                      highlight=False, soft_wrap=True)
