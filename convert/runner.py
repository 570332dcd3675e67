"""Run a .tflite on the host: batches in, probabilities out.

The model is loaded and invoked by :class:`edgecls.litert.LiteRTModel`, the class the
device backends are, and its tensors are fed and read by :mod:`edgecls.tensorio`, so a
host parity figure is a figure of the device's interpreter wrapper and arithmetic.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgecls.artifact import check_tflite
from edgecls.errors import SpecError
from edgecls.heads import probabilities
from edgecls.litert import LiteRTModel
from edgecls.tensorio import dequantize, make_input_encoder


class TFLiteModel:
    """One loaded .tflite: ``predict`` maps uint8 RGB images to class probabilities."""

    def __init__(self, path: Path, head: str, num_labels: int, threads: int = 1, *,
                 builtin_kernels: bool = False) -> None:
        self.path = Path(path)
        check_tflite(self.path)
        self.head = head
        #: The loaded model, the device backends' class.
        self.runner = LiteRTModel(self.path, threads, builtin_kernels=builtin_kernels)
        self.input, self.output = self.runner.input, self.runner.output
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
        return self.runner.invoke(self._encode(image))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 -> (N, K) probabilities."""
        outs = [self.dequantize_output(self.raw(img)).reshape(-1) for img in images]
        return probabilities(np.stack(outs) if outs else np.zeros((0, 1)), self.head)

    def time_invoke(self, image: np.ndarray, repeats: int) -> list[float]:
        """Seconds per ``invoke()`` (input set once), for latency figures."""
        self.runner.invoke(self.quantize_input(image))
        interp = self.runner.interpreter
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            interp.invoke()
            times.append(time.perf_counter() - t0)
        return times
