"""The ops and tensors of a .tflite, read from the flatbuffer itself (no interpreter, no TF).

An interpreter's op list mixes in delegate partitions (XNNPACK's ``DELEGATE``); the op
list, the Edge TPU check and the runtime-compatibility notes need the graph as stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecls.errors import ModelError

_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string",
               6: "bool", 7: "int16", 9: "int8", 10: "float64", 16: "uint32", 17: "uint16"}


@dataclass(frozen=True)
class GraphTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    is_constant: bool


@dataclass(frozen=True)
class GraphOp:
    """One operator: builtin name, op version and its non-optional input/output tensors."""

    index: int
    name: str
    version: int
    inputs: tuple[GraphTensor, ...]
    outputs: tuple[GraphTensor, ...]


def _op_name(code: object) -> str:
    from ai_edge_litert import schema_py_generated as schema

    builtin = max(int(code.deprecatedBuiltinCode), int(code.builtinCode))  # type: ignore[attr-defined]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode  # type: ignore[attr-defined]
        return f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}"
    return names.get(builtin, f"BUILTIN_{builtin}")


def read_graph(model_bytes: bytes, source: str = "model") -> list[GraphOp]:
    """The first subgraph's operators in execution order."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model_bytes, 0))
        graph = model.subgraphs[0]
    except Exception as err:  # a foreign or truncated file fails anywhere in the parser
        raise ModelError(f"{source} is not a readable TFLite flatbuffer ({type(err).__name__}): re-convert it") from err
    buffers = model.buffers or []

    def tensor(i: int) -> GraphTensor:
        t = graph.tensors[i]
        buf = buffers[t.buffer] if 0 < t.buffer < len(buffers) else None
        const = buf is not None and buf.data is not None and len(buf.data) > 0
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        sig = tuple(int(d) for d in t.shapeSignature) if t.shapeSignature is not None else shape
        return GraphTensor(name, _TYPE_NAMES.get(int(t.type), f"type{t.type}"), shape, sig, const)

    ops = []
    for k, op in enumerate(graph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        ins = tuple(tensor(int(i)) for i in np.asarray(op.inputs if op.inputs is not None else []) if i >= 0)
        outs = tuple(tensor(int(i)) for i in np.asarray(op.outputs if op.outputs is not None else []) if i >= 0)
        ops.append(GraphOp(k, _op_name(code), int(code.version), ins, outs))
    return ops


def op_table(ops: list[GraphOp]) -> list[tuple[str, int]]:
    """(op name, version) per operator, in order."""
    return [(op.name, op.version) for op in ops]
