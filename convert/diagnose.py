"""Why an int8 model disagrees with float: TensorFlow's quantization debugger, per layer.

The debugger runs the float and the quantized graph side by side on the same images and
measures each quantized tensor's error. We rank layers by RMSE divided by the tensor's
quantization step (scale): a layer that only suffers rounding sits near 1/sqrt(12) = 0.29
steps; several steps means its calibrated range is wrong for these images.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecls.model import SPEC_FILE, load_keras_model
from edgecls.quiet import captured
from edgecls.spec import load_spec

from .export import DEFAULT_CALIBRATION, calibration_images, static_twin

#: Pure rounding error of a uniform quantizer, in steps: 1/sqrt(12).
ROUNDING_RMSE_STEPS = 1.0 / math.sqrt(12.0)
#: Above this many steps a layer's error is more than rounding: name it in the advice.
SUSPECT_RMSE_STEPS = 1.0
#: Images the debugger runs (it is slow: float and quantized graphs, every tensor dumped).
DEBUG_IMAGES = 100


@dataclass(frozen=True)
class LayerError:
    op: str
    tensor: str
    rmse_over_scale: float
    max_abs_error: float
    scale: float

    @property
    def layer(self) -> str:
        """The Keras layer name inside the converter's fused tensor name, when it has one."""
        m = re.search(r"/([A-Za-z0-9]+?)(?:_\d+)?/", self.tensor)
        return m.group(1) if m else self.tensor.split(";")[0]

    def advice(self) -> str:
        if self.rmse_over_scale <= SUSPECT_RMSE_STEPS:
            return "rounding only: nothing to fix here"
        if self.op == "QUANTIZE" or self.layer == "conv1":
            return "input range: calibrate on images like the deployment's (--data DIR, more --calibration)"
        return ("range does not fit these images: more or better calibration data (--calibration 1000, "
                "--data with deployment-like images), or keep this layer in float (the float16 variant "
                "keeps all of them)")


def diagnose(run_dir: Path, debug_x: np.ndarray, *, data_dir: Path | None = None,
             calibration: int = DEFAULT_CALIBRATION, top: int = 5) -> list[LayerError]:
    """The ``top`` layers with the largest quantization error on ``debug_x`` (uint8 images)."""
    import tensorflow as tf

    spec = load_spec(Path(run_dir) / SPEC_FILE)
    # the trained layers only: [1 - p, p] has no weights, and its ops would crowd the list
    twin = static_twin(load_keras_model(run_dir), spec, two_output_sigmoid=False)
    samples = calibration_images(spec, data_dir, calibration)
    debug = debug_x[:DEBUG_IMAGES]

    def representative() -> Iterator[list[np.ndarray]]:
        for img in samples:
            yield [img[None].astype(np.float32)]

    def debug_dataset() -> Iterator[list[np.ndarray]]:
        for img in debug:
            yield [img[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(twin)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    with captured():
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=debug_dataset)
        debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = list(csv.DictReader(io.StringIO(dump.getvalue())))
    layers = []
    for row in rows:
        scale = float(row.get("scale") or 0.0)
        mse = float(row.get("mean_squared_error") or 0.0)
        if scale <= 0.0:
            continue
        layers.append(LayerError(op=row.get("op_name", "?"), tensor=row.get("tensor_name", "?"),
                                 rmse_over_scale=math.sqrt(mse) / scale,
                                 max_abs_error=float(row.get("max_abs_error") or 0.0), scale=scale))
    layers.sort(key=lambda e: e.rmse_over_scale, reverse=True)
    return layers[:top]
