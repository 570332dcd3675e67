"""Host parity and the device run one interpreter wrapper: edgecls.litert.LiteRTModel.

Two proofs: the host's TFLiteModel and the device's classifier hold the same class and
give the same bits on the same images; and no module but edgecls/litert.py builds an
interpreter (the scan below, shown to fail on a module that does).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from edgecls.convert.runner import TFLiteModel
from edgecls.device.backends import LiteRTBackend
from edgecls.device.loop import open_classifier
from edgecls.device.options import RunOptions
from edgecls.images import load_model_input
from edgecls.litert import LiteRTModel

ROOT = Path(__file__).resolve().parent.parent
#: The interpreter modules (ai_edge_litert's flatbuffer schema and tools are not one).
INTERPRETER_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
#: Modules that may import an interpreter module, and why (everything else goes through LiteRTModel).
ALLOWED = {
    "edgecls/litert.py": "the wrapper itself",
    "scripts/bench_device.py": "its bare invoke() is the baseline the wrapper is measured against",
    "scripts/aarch64/probe.py": "falls back to a bare interpreter where edgecls is not installed",
}


def builds_interpreter(source: str) -> list[str]:
    """What in ``source`` imports an interpreter module or calls ``*.interpreter(...)``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [f"{node.module}.{a.name}" for a in node.names] + [node.module or ""]
                 if isinstance(node, ast.ImportFrom) else [])
        found += [f"line {node.lineno}: import {n}" for n in names if n in INTERPRETER_MODULES]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("interpreter", "Interpreter"):
            found.append(f"line {node.lineno}: calls .{node.func.attr}()")
    return found


def test_no_other_module_builds_an_interpreter() -> None:
    offenders = {}
    for folder in ("edgecls", "convert", "device", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name not in ALLOWED and (hits := builds_interpreter(path.read_text(encoding="utf-8"))):
                offenders[name] = hits
    assert offenders == {}, "build interpreters through edgecls.litert.LiteRTModel"


def test_the_scan_finds_an_interpreter_built_by_hand() -> None:
    own = "def f(p):\n    from ai_edge_litert.interpreter import Interpreter\n    return Interpreter(model_path=p)\n"
    via_runtime = "from edgecls.litert import runtime\nx = runtime().interpreter(model_path='m')\n"
    assert builds_interpreter(own) == ["line 2: import ai_edge_litert.interpreter"]
    assert builds_interpreter("from tflite_runtime import interpreter\n") == ["line 1: import tflite_runtime.interpreter"]
    assert builds_interpreter("from ai_edge_litert import schema_py_generated\n") == []
    assert builds_interpreter(via_runtime) == ["line 2: calls .interpreter()"]
    assert builds_interpreter("from edgecls.litert import LiteRTModel\nm = LiteRTModel(b'')\n") == []


def test_host_parity_and_the_device_classifier_run_one_wrapper(int8_model: Path, demo_data: Path) -> None:
    host = TFLiteModel(int8_model, "sigmoid", 2)
    _, backend, classifier = open_classifier(RunOptions(model=int8_model))
    try:
        assert type(host.runner) is LiteRTModel
        assert isinstance(backend, LiteRTBackend) and isinstance(backend, LiteRTModel)
        # the device adds options and a name, nothing on the path of a frame
        assert LiteRTBackend.invoke is LiteRTModel.invoke
        images = [load_model_input(p) for p in sorted((demo_data / "test").rglob("*.png"))[:24]]
        host_raw = np.stack([host.raw(img) for img in images])
        device_raw = np.stack([classifier.invoke(img) for img in images])
        assert host_raw.dtype == device_raw.dtype == np.uint8
        np.testing.assert_array_equal(host_raw, device_raw)
        assert len(np.unique(host_raw)) > 1, "the images must not all give one output"
    finally:
        backend.close()
