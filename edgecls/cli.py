"""The ``edgecls`` command. Each command parses options and calls one library function.

Heavy modules are imported inside the commands: ``edgecls --help`` and every device
command run without TensorFlow. Library errors (:mod:`edgecls.errors`) become one line on
stderr and a non-zero exit; nothing here prints a traceback for a user mistake.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from edgecls import __version__
from edgecls.errors import EdgeclsError
from edgecls.redact import mask_secrets
from edgecls.train import (  # its defaults are the CLI's (numpy only: TF loads in train())
    DEFAULT_MAX_EPOCHS,
    DEFAULT_PATIENCE,
    TrainOptions,
)

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="edgecls",
    help="Train a small image classifier, quantize it for a Pi or Coral, and prove it still works there.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# markup=False: a message is printed as written. Rich markup would eat square brackets in
# user values ('pip install "edgecls[serve]"' printed as 'pip install "edgecls"', a class
# folder "photos [old]" as "photos "); colour goes through :func:`styled` instead.
#: ``edgecls field ...``, assembled here once: ``field check`` registers from the device
#: package, ``field export`` and ``field replay`` from convert, neither importing the other.
field_app = typer.Typer(
    name="field", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Field parity: bundle reference images on the host, check the device against them, replay live frames.",
)
app.add_typer(field_app)
err_console = Console(stderr=True, markup=False)
out_console = Console(markup=False)


def styled(prefix: str, style: str, message: str = "") -> Text:
    """``prefix`` in ``style``, then ``message`` verbatim (credentials masked): colour without markup."""
    return Text.assemble((prefix, style), (" " + mask_secrets(message)) if message else "")


def fail(message: str, code: int = 2) -> None:
    err_console.print(styled("error:", "bold red", message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


#: Set by :func:`_note_interrupt` when Ctrl-C arrives during a command.
_interrupted = threading.Event()


def _note_interrupt(signum: int, frame: Any) -> None:
    """Python's own SIGINT behaviour (raise KeyboardInterrupt), remembered. A library that
    calls back into Python from C++ can turn that KeyboardInterrupt into another error on its
    way out (TensorFlow's converter once gave "'NoneType' object is not callable"); the flag
    lets :func:`handle_errors` still report it as the interrupt it was."""
    _interrupted.set()
    raise KeyboardInterrupt


def handle_errors(fn: F) -> F:
    """Turn library errors and Ctrl-C into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _interrupted.clear()
        # Only where SIGINT still has Python's default handler, in the main thread: a command
        # that installs its own (``run``'s stop-after-this-frame) replaces this one inside.
        note = (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        if note:
            signal.signal(signal.SIGINT, _note_interrupt)
        try:
            return fn(*args, **kwargs)
        except EdgeclsError as err:
            fail(str(err), err.exit_code)
        except OSError as err:
            # A full disk, a read-only or vanished mount met mid-work: outputs are staged and
            # renamed, so nothing partial was kept; say what and where in one line.
            fail(os_error_line(err), 1)
        except KeyboardInterrupt:
            fail("interrupted: nothing partial was written", 130)
        except Exception:
            if _interrupted.is_set():  # the interrupt, disguised by the library it went through
                fail("interrupted: nothing partial was written", 130)
            raise
        finally:
            if note:
                signal.signal(signal.SIGINT, signal.default_int_handler)
        return None

    return wrapper  # type: ignore[return-value]


def os_error_line(err: OSError) -> str:
    """One line for an OSError that reached the CLI: what, where, and the fix."""
    where = f" {err.filename}" if err.filename else ""
    fix = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space (disk quota)",
           errno.EROFS: "choose a writable location", errno.EACCES: "choose a writable location",
           errno.EIO: "check the disk"}.get(err.errno or 0, "check the path")
    verb = "cannot write" if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else "failed"
    return f"{verb}{where}: {err.strerror or err}; {fix} and run again (nothing partial was kept)"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgecls {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """edgecls: a folder of labelled images to a live classifier on a Pi or Coral."""


def _quiet_tensorflow() -> None:
    """Import TensorFlow with its load-time native log lines (absl, oneDNN) kept off the terminal."""
    from edgecls.model import import_tensorflow_quietly

    import_tensorflow_quietly()


@app.command("demo-data")
@handle_errors
def demo_data(
    out_dir: Annotated[Path, typer.Argument(help="Folder to create, with train/, val/ and test/ splits.")],
    classes: Annotated[int, typer.Option(help="Number of classes (2 to 6). 2 is binary, like the article.")] = 2,
    seed: Annotated[int, typer.Option(help="The same seed gives the same files.")] = 0,
    train_per_class: Annotated[int, typer.Option(help="Training images per class.")] = 3000,
    test_per_class: Annotated[int, typer.Option(help="Test images per class.")] = 400,
    force: Annotated[bool, typer.Option(help="Replace OUT_DIR if it exists.")] = False,
    val_per_class: Annotated[int | None, typer.Option(
        help="Validation images per class (val/, for choosing the best epoch); default: as many as test, 0: none.")] = None,
) -> None:
    """Write the built-in dataset: shapes in clutter, one subfolder per class."""
    from edgecls.demo_data import DemoDataOptions, generate

    counts = generate(out_dir, DemoDataOptions(classes, train_per_class, test_per_class, seed, val_per_class), force=force)
    val = f", {counts['val']} validation" if "val" in counts else ""
    out_console.print(f"wrote {counts['train']} training{val} and {counts['test']} test images to {out_dir}")


@app.command("demo-video")
@handle_errors
def demo_video(
    out: Annotated[Path, typer.Argument(help="The .avi to write (MJPG, 640x480); OUT.truth.json gets each frame's class.")],
    classes: Annotated[int, typer.Option(help="Number of classes to cycle through (2 to 6).")] = 2,
    seconds: Annotated[float, typer.Option(help="Length of the clip.")] = 20.0,
    fps: Annotated[int, typer.Option(help="Frames per second.")] = 30,
    seed: Annotated[int, typer.Option(help="The same seed gives the same clip.")] = 0,
) -> None:
    """Write a camera-like video of the built-in classes, the class changing every 2 s."""
    from edgecls.demo_data import DemoVideoOptions, generate_video

    truths = generate_video(out, DemoVideoOptions(classes=classes, seconds=seconds, fps=fps, seed=seed))
    out_console.print(f"wrote {len(truths)} frames to {out} (truth per frame in {out}.truth.json)")


@app.command()
@handle_errors
def train(
    data_dir: Annotated[Path, typer.Argument(help="Folder with one subfolder of images per class.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to create (model, labels, spec, history, curves).")],
    epochs: Annotated[int | None, typer.Option(help="Exactly this many passes (the article: --epochs 5). Default: until validation stops improving.")] = None,
    patience: Annotated[int, typer.Option(help="Without --epochs: stop after this many epochs without a better validation accuracy.")] = DEFAULT_PATIENCE,
    max_epochs: Annotated[int, typer.Option(help="Without --epochs: the most epochs to run.")] = DEFAULT_MAX_EPOCHS,
    val_dir: Annotated[Path | None, typer.Option(help="Separate validation folder with the same classes.")] = None,
    val_split: Annotated[float, typer.Option(help="Fraction held out for validation when no --val-dir.")] = TrainOptions.val_split,
    seed: Annotated[int, typer.Option(help="Seed for split, shuffling, augmentation and weights.")] = TrainOptions.seed,
    force: Annotated[bool, typer.Option(help="Replace a non-empty run folder.")] = False,
    extra_data: Annotated[list[Path] | None, typer.Option(
        help="Reviewed class folders (e.g. 'edgecls field import') added to the training images; repeatable.")] = None,
) -> None:
    """Train the article's CNN (64x64x3, two conv blocks, Dense(128)) on DATA_DIR."""
    from edgecls.train import train as run_train

    _quiet_tensorflow()

    fixed = epochs is not None
    result = run_train(data_dir, out, TrainOptions(epochs=epochs if epochs is not None else max_epochs,
                                                   patience=0 if fixed else patience,
                                                   val_dir=val_dir, val_split=val_split, seed=seed, force=force,
                                                   extra_data=tuple(extra_data or ())), err_console)
    out_console.print(
        f"{result.epochs_run} epochs run; best epoch {result.best_epoch}: validation accuracy "
        f"{result.best_val_accuracy:.2%}; run folder {result.run_dir}"
    )


@app.command()
@handle_errors
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run folder from 'edgecls train'.")],
    data: Annotated[Path, typer.Option(help="Folder with one subfolder per class to evaluate on.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here.")] = None,
) -> None:
    """Accuracy, per-class precision and recall, and a confusion matrix (table and confusion.png)."""
    from edgecls.evaluate import evaluate as run_evaluate
    from edgecls.fsutil import atomic_write_json

    _quiet_tensorflow()

    report, _ = run_evaluate(run_dir, data)
    table = Table(title=f"{run_dir} on {data}: accuracy {report.accuracy:.2%} ({report.count} images)")
    table.add_column("class")
    table.add_column("precision", justify="right")
    table.add_column("recall", justify="right")
    for label in report.labels:
        table.add_column(f"-> {label}", justify="right")
    for i, label in enumerate(report.labels):
        table.add_row(label, f"{report.precision[i]:.3f}", f"{report.recall[i]:.3f}", *map(str, report.confusion[i]))
    out_console.print(table)
    out_console.print(f"confusion matrix image: {Path(run_dir) / 'confusion.png'}")
    if json_out is not None:
        atomic_write_json(json_out, report.to_dict())


def _register_subcommands() -> None:
    """Commands of edgecls.convert and edgecls.device register themselves on ``app``."""
    import importlib

    import edgecls.package_cli  # noqa: F401  (keygen, package verify: host and device)

    for module in ("edgecls.convert.cli", "edgecls.device.cli", "edgecls.fleet_cli"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _register_subcommands()
    app(prog_name="edgecls")

