"""Run a .tflite on a batch of inputs with one named runtime; a stand-alone script.

It needs numpy and the edgecls core (no extras, no TensorFlow), found beside this file
whether it sits in a checkout or in site-packages, so it runs in a bare device venv such
as the tflite-runtime 2.14 one (numpy<2)::

    python runtime_check.py tflite_runtime model.tflite inputs.npy outputs.npy

The model runs through :class:`edgecls.litert.LiteRTModel`, the class the device backends
and host parity use, with the runtime named: ``tflite_runtime``, ``ai_edge_litert`` (its
defaults, XNNPACK included) and ``ai_edge_litert_builtin`` (TFLite's builtin kernels
only, no default delegate). XNNPACK's int8 kernels round differently from the builtin ones
(an output may move by a step or two); tflite-runtime 2.14's XNNPACK takes no int8 graph,
so the builtin kernels are the like-for-like comparison.

``inputs.npy`` holds N input tensors exactly as the model takes them (already quantized);
``outputs.npy`` gets the N raw output tensors, so two runtimes can be compared bit for bit.
On a load failure it prints one line ``load failed: ...`` on stderr and exits 3.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

#: Runtime names of this script -> (the core's runtime name, builtin kernels only).
RUNTIMES = {"tflite_runtime": ("tflite-runtime", False), "ai_edge_litert": ("ai-edge-litert", False),
            "ai_edge_litert_builtin": ("ai-edge-litert", True)}


def _find_core() -> None:
    """Put the folder holding the edgecls core on sys.path (repo root, or site-packages)."""
    for folder in Path(__file__).resolve().parents:
        if (folder / "edgecls" / "litert.py").is_file():
            sys.path.insert(0, str(folder))
            return


def run(runtime: str, model: str, inputs: np.ndarray) -> np.ndarray:
    if runtime not in RUNTIMES:
        raise SystemExit(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    from edgecls.litert import LiteRTModel
    from edgecls.litert import runtime as load_runtime

    name, builtin = RUNTIMES[runtime]
    loaded = LiteRTModel(Path(model), builtin_kernels=builtin, rt=load_runtime(name))
    return np.stack([loaded.invoke(x.astype(loaded.input.dtype)) for x in inputs])


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    runtime, model, inputs, outputs = argv
    _find_core()
    from edgecls.errors import EdgeclsError

    try:
        result = run(runtime, model, np.load(inputs))
    except EdgeclsError as err:  # the core's ModelError or MissingDependencyError
        print(f"load failed: {' '.join(str(err).split())}", file=sys.stderr)
        return 3
    np.save(outputs, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
