"""Run a .tflite on the host with ai-edge-litert: batches in, probabilities out.

The tensors are fed and read by :mod:`edgecls.tensorio`, the code the device runs, so a
host parity figure is a figure of the device's arithmetic.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecls.artifact import check_tflite
from edgecls.errors import MissingDependencyError, ModelError, SpecError
from edgecls.heads import probabilities
from edgecls.quiet import captured
from edgecls.tensorio import (
    TensorInfo,
    dequantize,
    input_info,
    make_input_encoder,
    output_info,
    run_raw,
)


def litert_interpreter(model: Path | bytes, threads: int = 1, *, builtin_kernels: bool = False) -> Any:
    """An allocated ai-edge-litert interpreter for a model file or bytes.

    ``builtin_kernels`` runs TFLite's builtin kernels only (no default XNNPACK delegate):
    what tflite-runtime 2.14 runs int8 graphs on. XNNPACK's int8 kernels round a few
    outputs differently, so a reference for such devices must come from these.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as err:
        raise MissingDependencyError("ai_edge_litert", "device", "running a .tflite") from err
    extra: dict[str, Any] = (
        {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES} if builtin_kernels else {}
    )
    # LiteRT logs "Created TensorFlow Lite XNNPACK delegate" and its load errors on fd 2
    failure: Exception | None = None
    with captured((2,)):
        try:
            if isinstance(model, bytes):
                interp = Interpreter(model_content=model, num_threads=threads, **extra)
            else:
                interp = Interpreter(model_path=str(model), num_threads=threads, **extra)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            failure = exc
    if failure is not None:
        where = "model bytes" if isinstance(model, bytes) else str(model)
        text = str(failure).strip()
        first = text.splitlines()[0] if text else type(failure).__name__
        raise ModelError(f"{where} does not load in ai-edge-litert ({first}): re-convert it with 'edgecls convert'") from failure
    return interp


def io_info(interp: Any) -> tuple[TensorInfo, TensorInfo]:
    return input_info(interp), output_info(interp)


class TFLiteModel:
    """One loaded .tflite: ``predict`` maps uint8 RGB images to class probabilities."""

    def __init__(self, path: Path, head: str, num_labels: int, threads: int = 1, *,
                 builtin_kernels: bool = False) -> None:
        self.path = Path(path)
        check_tflite(self.path)
        self.head = head
        self.interp = litert_interpreter(self.path, threads, builtin_kernels=builtin_kernels)
        self.input, self.output = io_info(self.interp)
        self._in = int(self.interp.get_input_details()[0]["index"])
        self._out = int(self.interp.get_output_details()[0]["index"])
        self._encode = make_input_encoder(self.input)
        want = 1 if head == "sigmoid" else num_labels
        got = int(np.prod(self.output.shape[1:])) if len(self.output.shape) > 1 else int(np.prod(self.output.shape))
        if got != want and not (head == "sigmoid" and got == num_labels):  # a converted sigmoid gives [1-p, p]
            raise SpecError(
                f"{self.path} has {got} output value(s) but the labels need {want} ({head} head, "
                f"{num_labels} labels): use the labels the model was converted with"
            )

    def quantize_input(self, image: np.ndarray) -> np.ndarray:
        """One uint8 RGB image -> the input tensor (batch 1), as the device encodes it."""
        return self._encode(image)

    def dequantize_output(self, raw: np.ndarray) -> np.ndarray:
        return dequantize(raw, self.output)

    def raw(self, image: np.ndarray) -> np.ndarray:
        """The output tensor as the runtime returns it (for exact cross-runtime comparison)."""
        return run_raw(self.interp, self._encode(image), self._in, self._out)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 -> (N, K) probabilities."""
        outs = [self.dequantize_output(self.raw(img)).reshape(-1) for img in images]
        return probabilities(np.stack(outs) if outs else np.zeros((0, 1)), self.head)

    def time_invoke(self, image: np.ndarray, repeats: int) -> list[float]:
        """Seconds per ``invoke()`` (input set once), for latency figures."""
        self.interp.set_tensor(self._in, self.quantize_input(image))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.interp.invoke()
            times.append(time.perf_counter() - t0)
        return times
