"""The one place a .tflite is loaded and run: ai-edge-litert, else tflite-runtime.

Host parity, the conversion checks, the field bundle export, the device's CPU and Edge TPU
backends and the field check all run a model through :class:`LiteRTModel`, so a host
figure comes from the same load, thread setting, invoke and tensor read as the device's
(the tensors themselves are described, fed and read by :mod:`edgecls.tensorio`).
``tests/test_litert.py`` fails if any other module builds an interpreter.

The runtime packages are imported inside :func:`runtime` only: neither imports TensorFlow,
and the core stays importable without either.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgecls.errors import MissingDependencyError, ModelError
from edgecls.quiet import Captured, captured
from edgecls.tensorio import TensorInfo, input_info, output_info


@dataclass(frozen=True)
class Runtime:
    """An interpreter package: its distribution name and version, the two entry points, and
    the op resolver that runs TFLite's builtin kernels only (no default XNNPACK delegate)."""

    name: str
    version: str
    interpreter: Callable[..., Any]
    load_delegate: Callable[..., Any]
    builtin_kernels: Any


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _ai_edge_litert() -> Runtime:
    from ai_edge_litert import interpreter as litert

    return Runtime("ai-edge-litert", _version("ai-edge-litert"), litert.Interpreter, litert.load_delegate,
                   litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def _tflite_runtime() -> Runtime:
    from tflite_runtime import interpreter as tflite  # type: ignore[import-not-found]

    return Runtime("tflite-runtime", _version("tflite-runtime"), tflite.Interpreter, tflite.load_delegate,
                   tflite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


#: Interpreter packages by distribution name, in the order :func:`runtime` tries them.
RUNTIMES: dict[str, Callable[[], Runtime]] = {"ai-edge-litert": _ai_edge_litert, "tflite-runtime": _tflite_runtime}


@functools.cache
def runtime(name: str | None = None) -> Runtime:
    """The named interpreter package, or the first one installed; raises
    MissingDependencyError naming the extra."""
    for candidate in (name,) if name else tuple(RUNTIMES):
        try:
            return RUNTIMES[candidate]()
        except ImportError:
            continue
    if name == "tflite-runtime":
        raise MissingDependencyError("tflite_runtime", "legacy", "running a .tflite with tflite-runtime")
    raise MissingDependencyError("ai_edge_litert", "device", "running a .tflite")


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


def _explain_load_error(where: str, err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "edgetpu-custom-op" in str(err):
        return f"{where} is compiled for the Edge TPU: run it with --edgetpu, or use the CPU model"
    return f"{where} cannot be loaded by the interpreter ({text}): it is truncated or corrupt; convert it again"


class LiteRTModel:
    """One loaded single-input, single-output .tflite: ``invoke`` takes the input tensor
    (encoded by :mod:`edgecls.tensorio`) and returns the raw output tensor.

    model: a file or the model's bytes. threads: CPU threads. delegates: loaded delegates
    (the Edge TPU's). builtin_kernels: TFLite's builtin kernels only, no default XNNPACK
    delegate: what tflite-runtime 2.14 runs int8 graphs on (XNNPACK's int8 kernels round a
    few outputs differently). rt: the runtime package (default: :func:`runtime`).
    """

    def __init__(self, model: Path | bytes, threads: int = 1, *, delegates: list[Any] | None = None,
                 builtin_kernels: bool = False, rt: Runtime | None = None) -> None:
        rt = rt or runtime()
        self.runtime = rt
        where = "model bytes" if isinstance(model, bytes) else str(model)
        source = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
        extra = {"experimental_op_resolver_type": rt.builtin_kernels} if builtin_kernels else {}
        try:
            with native_stderr_captured() as native:
                self.interpreter = rt.interpreter(**source, num_threads=threads,
                                                  experimental_delegates=delegates or None, **extra)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ModelError(_explain_load_error(where, err)) from err
        #: What the interpreter printed while loading (the XNNPACK line, warnings), kept for doctor/bench.
        self.load_log = "\n".join(native.lines())
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"{where} has {len(inputs)} inputs and {len(outputs)} outputs: an edgecls classifier has one of each"
            )
        self.input: TensorInfo = input_info(self.interpreter)
        self.output: TensorInfo = output_info(self.interpreter)
        self._in = int(inputs[0]["index"])
        self._out = int(outputs[0]["index"])

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Set the input tensor, invoke, return the raw output (``get_tensor`` returns a copy)."""
        self.interpreter.set_tensor(self._in, tensor)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out)  # type: ignore[no-any-return]

    def delegated_partitions(self) -> int:
        """How many parts of the graph a delegate (XNNPACK, Edge TPU) actually runs.

        The "Created TensorFlow Lite XNNPACK delegate" log line proves nothing: count the
        DELEGATE nodes in the execution plan instead (-1: the runtime does not say).
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
