"""Interpreter backends behind one small protocol, and the registry that names them.

A backend takes the model's input tensor in the dtype the interpreter wants and returns
the raw output tensor; quantization and heads are the classifier's business
(:mod:`.classify`), so a new accelerator only has to run a tensor.

    BACKENDS = {"cpu": LiteRT on the CPU (XNNPACK), "edgetpu": LiteRT + libedgetpu}
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgecls.errors import BackendError, ModelError
from edgecls.quiet import Captured, captured
from edgecls.tensorio import TensorInfo as TensorInfo  # the one tensor description (re-exported)
from edgecls.tensorio import input_info, output_info

from .litert import runtime
from .options import EDGETPU_DEVICE

EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_REMEDY = (
    "install libedgetpu1-std from Coral's apt repository "
    "(https://coral.ai/docs/accelerator/get-started/#runtime) and plug in the USB Accelerator"
)


@dataclass(frozen=True)
class BackendOptions:
    """num_threads: CPU threads for the interpreter (1 leaves a core to capture on a Pi).
    device: the Edge TPU to use ("usb:0", "pci:0", ...)."""

    num_threads: int = 1
    device: str = EDGETPU_DEVICE


class Backend(Protocol):
    name: str
    input: TensorInfo
    output: TensorInfo

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run the model on one input tensor (batch of 1); return the raw output tensor."""
        ...

    def delegated_partitions(self) -> int:
        """Parts of the graph a delegate (XNNPACK, Edge TPU) runs; 0 = builtin kernels, -1 = unknown."""
        ...

    def close(self) -> None: ...


class LiteRTBackend:
    """ai-edge-litert (or tflite-runtime) interpreter, optionally with delegates."""

    def __init__(self, model: Path, options: BackendOptions, delegates: list[Any] | None = None, name: str = "cpu") -> None:
        rt = runtime()
        self.name = name
        self.runtime = rt
        try:
            with native_stderr_captured() as native:
                self.interpreter = rt.interpreter(
                    model_path=str(model), num_threads=options.num_threads, experimental_delegates=delegates or None
                )
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ModelError(_explain_load_error(model, err)) from err
        #: What the interpreter printed while loading (the XNNPACK line, warnings), kept for doctor/bench.
        self.load_log = "\n".join(native.lines())
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"{model} has {len(inputs)} inputs and {len(outputs)} outputs: an edgecls classifier has one of each"
            )
        self.input = input_info(self.interpreter)
        self.output = output_info(self.interpreter)
        self._in = int(inputs[0]["index"])
        self._out = int(outputs[0]["index"])

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._in, tensor)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out)

    def delegated_partitions(self) -> int:
        """How many parts of the graph a delegate (XNNPACK, Edge TPU) actually runs.

        The "Created TensorFlow Lite XNNPACK delegate" log line proves nothing: count the
        DELEGATE nodes in the execution plan instead.
        """
        try:
            ops = self.interpreter._get_ops_details()
        except AttributeError:
            return -1
        return sum(1 for op in ops if op.get("op_name") == "DELEGATE")

    def op_count(self) -> int:
        try:
            return len(self.interpreter._get_ops_details())
        except AttributeError:
            return -1

    def close(self) -> None:
        self.interpreter = None


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[Captured]:
    """:func:`edgecls.quiet.captured` on fd 2 for an interpreter load (the "Created
    TensorFlow Lite XNNPACK delegate" INFO line, load errors), so a bad model gives one line,
    not three. After a successful load, lines other than INFO are passed on to stderr."""
    with captured((2,)) as native:
        yield native
    keep = [line for line in native.lines() if not line.startswith("INFO:")]
    if keep:
        sys.stderr.write("\n".join(keep) + "\n")


def _explain_load_error(model: Path, err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "edgetpu-custom-op" in str(err):
        return f"{model} is compiled for the Edge TPU: run it with --edgetpu, or use the CPU model"
    return f"{model} cannot be loaded by the interpreter ({text}): it is truncated or corrupt; convert it again"


def load_edgetpu_delegate(device: str) -> Any:
    """Load libedgetpu's delegate or raise a BackendError that says what to install.

    ``load_delegate`` raises OSError (not the ValueError its docstring names) when the
    library is missing, and the half-built Delegate then prints a traceback from its
    ``__del__``; swallow that one so the user sees a single line.
    """
    rt = runtime()
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None
    message = ""
    try:
        return rt.load_delegate(EDGETPU_LIBRARY, {"device": device})
    except (OSError, ValueError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    finally:
        gc.collect()
        sys.unraisablehook = hook
    raise BackendError(f"the Edge TPU delegate ({EDGETPU_LIBRARY}, device {device}) is not available ({message}): {EDGETPU_REMEDY}")


def open_cpu(model: Path, options: BackendOptions) -> Backend:
    return LiteRTBackend(model, options, name="cpu")


def open_edgetpu(model: Path, options: BackendOptions) -> Backend:
    delegate = load_edgetpu_delegate(options.device)
    return LiteRTBackend(model, options, [delegate], name=f"edgetpu ({options.device})")


BackendFactory = Callable[[Path, BackendOptions], Backend]

#: Backends by name. A new accelerator adds one entry and one function.
BACKENDS: dict[str, BackendFactory] = {"cpu": open_cpu, "edgetpu": open_edgetpu}


def open_backend(name: str, model: Path, options: BackendOptions) -> Backend:
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}: use one of {', '.join(BACKENDS)}") from None
    return factory(model, options)
