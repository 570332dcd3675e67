"""``edgecls store install|status`` and ``edgecls rollback``: the model store by hand."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from edgecls.cli import app, handle_errors, out_console

store_app = typer.Typer(no_args_is_help=True, help="The device's model store (see 'edgecls run --store').")
app.add_typer(store_app, name="store")

#: Seconds ``edgecls rollback`` waits for a live process to answer its request.
ROLLBACK_WAIT_S = 15.0


@store_app.command("install")
@handle_errors
def install(
    package: Annotated[Path, typer.Argument(help="The NAME.edgecls to install.")],
    store: Annotated[Path, typer.Option(help="The model store folder.")],
    trust: Annotated[list[Path], typer.Option(help="A trusted public key (NAME.pub); repeat for several.")],
) -> None:
    """First model of a device (or one while it is stopped): verify, field check, make current."""
    from edgecls.errors import EdgeclsError, ModelError
    from edgecls.package import load_public_keys

    from .options import RunOptions
    from .store import ModelStore
    from .update import check_stored

    keys = load_public_keys(trust)
    model_store = ModelStore(store)
    info, tmp = model_store.unpack(package, keys)
    stored = model_store.commit_folder(info, tmp)
    try:
        loaded, check_s, _ = check_stored(RunOptions(model=stored.model), stored)
    except EdgeclsError as err:
        model_store.log("refused", package=package.name, reason=str(err))
        model_store.prune()
        raise ModelError(f"refused {package.name}: {err}") from err
    loaded.backend.close()
    model_store.make_current(stored.sha256, probation_s=None)
    model_store.log("installed", model=stored.sha256, version=stored.version, package=package.name)
    model_store.prune()
    out_console.print(f"installed {stored.short} in {store} (field check passed in {check_s:.2f} s)", highlight=False)


@store_app.command("status")
@handle_errors
def status(store: Annotated[Path, typer.Option(help="The model store folder.")]) -> None:
    """The current, previous and older models, the probation, and the last history records."""
    from .store import ModelStore

    model_store = ModelStore(store)
    state = model_store.state()
    for role, sha in (("current", state.current), ("previous", state.previous),
                      *(("older", s) for s in state.older)):
        if sha:
            out_console.print(f"{role}: {model_store.get(sha).short}", highlight=False)
    if state.probation:
        out_console.print(f"on probation since {time.ctime(state.probation.started)}", highlight=False)
    for record in model_store.history()[-10:]:
        out_console.print(" ".join(f"{k}={v}" for k, v in record.items()), highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def rollback(store: Annotated[Path, typer.Option(help="The model store folder.")]) -> None:
    """Put the previous model back: in a live 'edgecls run --store' between two frames, else in the store."""
    import os

    from edgecls.errors import ModelError

    from .inbox import ROLLBACK_REQUEST
    from .store import ModelStore

    model_store = ModelStore(store)
    lock = model_store.hold()
    if lock is not None:
        try:
            stored = model_store.rollback("by hand ('edgecls rollback')")
        finally:
            os.close(lock)
        out_console.print(f"rolled back: {store} now serves {stored.short} (from the next start)", highlight=False)
        return
    before = model_store.state().current
    (model_store.root / ROLLBACK_REQUEST).write_text("rollback\n")
    deadline = time.monotonic() + ROLLBACK_WAIT_S
    while time.monotonic() < deadline and (model_store.root / ROLLBACK_REQUEST).exists():
        time.sleep(0.1)
    time.sleep(0.3)
    after = model_store.state().current
    if after == before:
        raise ModelError(f"the live process on {store} did not roll back within {ROLLBACK_WAIT_S:.0f} s: see its log")
    out_console.print(f"rolled back: the live process now runs {model_store.get(after).short}", highlight=False)  # type: ignore[arg-type]
