"""Interpreter backends behind one small protocol, and the registry that names them.

A backend takes the model's input tensor in the dtype the interpreter wants and returns
the raw output tensor; quantization and heads are the classifier's business
(:mod:`.classify`), so a new accelerator only has to run a tensor.

    BACKENDS = {"cpu": LiteRT on the CPU (XNNPACK), "edgetpu": LiteRT + libedgetpu}
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgecls.errors import BackendError
from edgecls.litert import LiteRTModel, runtime
from edgecls.tensorio import TensorInfo as TensorInfo  # the one tensor description (re-exported)

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


class LiteRTBackend(LiteRTModel):
    """The core's :class:`~edgecls.litert.LiteRTModel` under the device's options and a name.

    Host parity and the conversion checks run the same class, so the device adds only
    its options and delegates here, nothing of its own on the path of a frame.
    """

    def __init__(self, model: Path, options: BackendOptions, delegates: list[Any] | None = None, name: str = "cpu") -> None:
        self.name = name
        super().__init__(model, options.num_threads, delegates=delegates)


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
