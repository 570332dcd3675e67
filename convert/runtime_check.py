"""Run a .tflite on a batch of inputs with one named runtime; a stand-alone script.

It imports neither edgecls nor TensorFlow, so it runs in a bare device venv such as the
tflite-runtime 2.14 one (numpy<2)::

    python runtime_check.py tflite_runtime model.tflite inputs.npy outputs.npy

Runtimes: ``tflite_runtime``, ``ai_edge_litert`` (its defaults, XNNPACK included) and
``ai_edge_litert_builtin`` (TFLite's builtin kernels only, no default delegate). XNNPACK's
int8 kernels round differently from the builtin ones (an output may move by a step or
two); tflite-runtime 2.14's XNNPACK takes no int8 graph, so the builtin kernels are the
like-for-like comparison.

``inputs.npy`` holds N input tensors exactly as the model takes them (already quantized);
``outputs.npy`` gets the N raw output tensors, so two runtimes can be compared bit for bit.
On a load failure it prints one line ``load failed: ...`` on stderr and exits 3.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

RUNTIMES = ("tflite_runtime", "ai_edge_litert", "ai_edge_litert_builtin")


def make_interpreter(runtime: str, model: str) -> object:
    if runtime == "tflite_runtime":
        from tflite_runtime.interpreter import Interpreter

        return Interpreter(model_path=model, num_threads=1)
    if runtime in ("ai_edge_litert", "ai_edge_litert_builtin"):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        kind = (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if runtime.endswith("builtin")
                else OpResolverType.AUTO)
        return Interpreter(model_path=model, num_threads=1, experimental_op_resolver_type=kind)
    raise SystemExit(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")


def run(runtime: str, model: str, inputs: np.ndarray) -> np.ndarray:
    interp: Any = make_interpreter(runtime, model)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    results = []
    for x in inputs:
        interp.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interp.invoke()
        results.append(np.array(interp.get_tensor(out["index"])))
    return np.stack(results)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    runtime, model, inputs, outputs = argv
    try:
        result = run(runtime, model, np.load(inputs))
    except (ValueError, RuntimeError) as err:
        print(f"load failed: {' '.join(str(err).split())}", file=sys.stderr)
        return 3
    np.save(outputs, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
