"""TFLite metadata and associated files, written without the tflite-support package.

The ecosystem's convention (tflite-support's MetadataPopulator) has two parts, and we
write both so that generic tools and our own device both understand the artifact:

1. A ``ModelMetadata`` flatbuffer (``metadata_schema.fbs``, file identifier ``M001``) in
   one of the model's buffers, named by a ``TFLITE_METADATA`` entry of the model. It names
   ``labels.txt`` as the output tensor's TENSOR_AXIS_LABELS file and describes the input
   as an RGB image of the model's size.
2. A zip of the associated files appended to the flatbuffer: ``unzip -l model.tflite``
   lists them, and :func:`edgecls.artifact.read_embedded` reads them without TensorFlow.

The builder below follows the field order (vtable slots) of the public schema; the
reader at the end exists so the tests can check what we wrote.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import flatbuffers
import numpy as np
from flatbuffers import number_types as N
from flatbuffers.table import Table

from edgecls.artifact import EMBEDDED_LABELS, EMBEDDED_SPEC
from edgecls.spec import ModelSpec

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"

# metadata_schema.fbs enums
_TENSOR_AXIS_LABELS = 2
_DESCRIPTIONS = 1
_COLOR_RGB = 1
_CONTENT_FEATURE, _CONTENT_IMAGE = 1, 2
_PROCESS_NORMALIZATION = 1

# vtable slots (field index in declaration order) of the tables we write
_MODEL = {"name": 0, "description": 1, "version": 2, "subgraph_metadata": 3, "author": 4,
          "license": 5, "associated_files": 6, "min_parser_version": 7}
_SUBGRAPH = {"name": 0, "description": 1, "input_tensor_metadata": 2, "output_tensor_metadata": 3}
_TENSOR = {"name": 0, "description": 1, "content": 3, "process_units": 4, "stats": 5,
           "associated_files": 6}
_FILE = {"name": 0, "description": 1, "type": 2}


def _offsets(b: flatbuffers.Builder, items: list[int]) -> int:
    b.StartVector(4, len(items), 4)
    for off in reversed(items):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _floats(b: flatbuffers.Builder, values: list[float]) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype=np.float32))


def _associated_file(b: flatbuffers.Builder, name: str, description: str, kind: int) -> int:
    n, d = b.CreateString(name), b.CreateString(description)
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(_FILE["name"], n, 0)
    b.PrependUOffsetTRelativeSlot(_FILE["description"], d, 0)
    b.PrependInt8Slot(_FILE["type"], kind, 0)
    return b.EndObject()


def _stats(b: flatbuffers.Builder, lo: float, hi: float) -> int:
    mx, mn = _floats(b, [hi]), _floats(b, [lo])
    b.StartObject(2)
    b.PrependUOffsetTRelativeSlot(0, mx, 0)
    b.PrependUOffsetTRelativeSlot(1, mn, 0)
    return b.EndObject()


def _content(b: flatbuffers.Builder, image_size: int | None) -> int:
    if image_size is None:  # FeatureProperties {}
        b.StartObject(0)
        props, kind = b.EndObject(), _CONTENT_FEATURE
    else:  # ImageProperties { color_space, default_size: ImageSize { width, height } }
        b.StartObject(2)
        b.PrependUint32Slot(0, image_size, 0)
        b.PrependUint32Slot(1, image_size, 0)
        size = b.EndObject()
        b.StartObject(2)
        b.PrependInt8Slot(0, _COLOR_RGB, 0)
        b.PrependUOffsetTRelativeSlot(1, size, 0)
        props, kind = b.EndObject(), _CONTENT_IMAGE
    b.StartObject(3)  # Content { content_properties_type, content_properties, range }
    b.PrependUint8Slot(0, kind, 0)
    b.PrependUOffsetTRelativeSlot(1, props, 0)
    return b.EndObject()


def _normalization(b: flatbuffers.Builder, mean: float, std: float) -> int:
    m, s = _floats(b, [mean]), _floats(b, [std])
    b.StartObject(2)
    b.PrependUOffsetTRelativeSlot(0, m, 0)
    b.PrependUOffsetTRelativeSlot(1, s, 0)
    opts = b.EndObject()
    b.StartObject(2)  # ProcessUnit { options_type, options }
    b.PrependUint8Slot(0, _PROCESS_NORMALIZATION, 0)
    b.PrependUOffsetTRelativeSlot(1, opts, 0)
    return _offsets(b, [b.EndObject()])


def _tensor(b: flatbuffers.Builder, *, name: str, description: str, content: int, stats: int,
            process_units: int | None = None, files: int | None = None) -> int:
    n, d = b.CreateString(name), b.CreateString(description)
    b.StartObject(7)
    b.PrependUOffsetTRelativeSlot(_TENSOR["name"], n, 0)
    b.PrependUOffsetTRelativeSlot(_TENSOR["description"], d, 0)
    b.PrependUOffsetTRelativeSlot(_TENSOR["content"], content, 0)
    if process_units is not None:
        b.PrependUOffsetTRelativeSlot(_TENSOR["process_units"], process_units, 0)
    b.PrependUOffsetTRelativeSlot(_TENSOR["stats"], stats, 0)
    if files is not None:
        b.PrependUOffsetTRelativeSlot(_TENSOR["associated_files"], files, 0)
    return b.EndObject()


def build_model_metadata(spec: ModelSpec, *, name: str, version: str) -> bytes:
    """The ModelMetadata flatbuffer for an edgecls classifier."""
    b = flatbuffers.Builder(1024)
    head = ("sigmoid: one value, the probability of the second label" if spec.head == "sigmoid"
            else "softmax: one probability per label")
    # Input: raw RGB pixels 0..255; the 1/255 rescaling is inside the graph, so the
    # out-of-graph normalisation is the identity (mean 0, std 1).
    image = _tensor(
        b, name="image",
        description=(f"{spec.input_size}x{spec.input_size} RGB, raw pixel values 0..255, resized with "
                     f"edgecls {spec.resize}; read the quantization from the tensor"),
        content=_content(b, spec.input_size), stats=_stats(b, 0.0, 255.0),
        process_units=_normalization(b, 0.0, 1.0),
    )
    labels = _offsets(b, [_associated_file(b, EMBEDDED_LABELS, "class labels, one a line",
                                           _TENSOR_AXIS_LABELS)])
    prob = _tensor(b, name="probability", description=head, content=_content(b, None),
                   stats=_stats(b, 0.0, 1.0), files=labels)
    inputs, outputs = _offsets(b, [image]), _offsets(b, [prob])
    sg_name = b.CreateString("main")
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(_SUBGRAPH["name"], sg_name, 0)
    b.PrependUOffsetTRelativeSlot(_SUBGRAPH["input_tensor_metadata"], inputs, 0)
    b.PrependUOffsetTRelativeSlot(_SUBGRAPH["output_tensor_metadata"], outputs, 0)
    subgraphs = _offsets(b, [b.EndObject()])
    spec_file = _offsets(b, [_associated_file(b, EMBEDDED_SPEC, "edgecls model spec: input size, colour "
                                              "order, resize method, quantization", _DESCRIPTIONS)])
    strings = {k: b.CreateString(v) for k, v in {
        "name": name, "description": f"edgecls image classifier ({', '.join(spec.labels)})",
        "version": version, "author": "edgecls", "min_parser_version": MIN_PARSER_VERSION}.items()}
    b.StartObject(8)
    for key, off in strings.items():
        b.PrependUOffsetTRelativeSlot(_MODEL[key], off, 0)
    b.PrependUOffsetTRelativeSlot(_MODEL["subgraph_metadata"], subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(_MODEL["associated_files"], spec_file, 0)
    b.Finish(b.EndObject(), file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def insert_metadata(model_bytes: bytes, metadata: bytes) -> bytes:
    """Add ``metadata`` as a buffer named TFLITE_METADATA (replacing any earlier one)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != METADATA_NAME] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _name(value: str | bytes | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def append_files(model_bytes: bytes, files: dict[str, bytes]) -> bytes:
    """Append a zip holding ``files`` to the flatbuffer (interpreters ignore trailing bytes)."""
    stream = io.BytesIO(model_bytes)
    with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # reproducible bytes
            zf.writestr(info, data)
    return stream.getvalue()


# ----- reading back (tests and `edgecls convert` self-checks) -----

@dataclass(frozen=True)
class MetadataSummary:
    """What a metadata reader sees: model name and the output tensor's label file."""

    name: str
    min_parser_version: str
    input_name: str
    input_image_size: int | None
    output_name: str
    output_label_files: tuple[tuple[str, int], ...]
    model_files: tuple[str, ...]


def find_metadata(model_bytes: bytes) -> bytes | None:
    """The TFLITE_METADATA buffer of a model, or None."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(model_bytes, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry is not None and _name(entry.Name()) == METADATA_NAME:
            buf = model.Buffers(entry.Buffer())
            return bytes(buf.DataAsNumpy().tobytes()) if buf is not None else None
    return None


def _field(t: Table, slot: int) -> int:
    return int(t.Offset(4 + 2 * slot))


def _str(t: Table, slot: int) -> str:
    off = _field(t, slot)
    return t.String(off + t.Pos).decode() if off else ""


def _sub(t: Table, slot: int) -> Table | None:
    off = _field(t, slot)
    return Table(t.Bytes, t.Indirect(off + t.Pos)) if off else None


def _vec(t: Table, slot: int) -> list[Table]:
    off = _field(t, slot)
    if not off:
        return []
    start, n = t.Vector(off), t.VectorLen(off)
    return [Table(t.Bytes, t.Indirect(start + 4 * i)) for i in range(n)]


def read_metadata(buf: bytes) -> MetadataSummary:
    """Parse the fields we write, following the schema's slots (a minimal reader)."""
    if buf[4:8] != METADATA_IDENTIFIER:
        raise ValueError("not a TFLite ModelMetadata flatbuffer (no M001 identifier)")
    root = Table(bytearray(buf), N.UOffsetTFlags.py_type(flatbuffers.encode.Get(N.UOffsetTFlags.packer_type, buf, 0)))
    subgraph = _vec(root, _MODEL["subgraph_metadata"])[0]
    inp = _vec(subgraph, _SUBGRAPH["input_tensor_metadata"])[0]
    out = _vec(subgraph, _SUBGRAPH["output_tensor_metadata"])[0]
    size = None
    content = _sub(inp, _TENSOR["content"])
    if content is not None and content.GetSlot(4, 0, N.Uint8Flags) == _CONTENT_IMAGE:
        props = _sub(content, 1)
        dims = _sub(props, 1) if props is not None else None
        size = int(dims.GetSlot(4, 0, N.Uint32Flags)) if dims is not None else None
    files = tuple((_str(f, _FILE["name"]), int(f.GetSlot(4 + 2 * _FILE["type"], 0, N.Int8Flags)))
                  for f in _vec(out, _TENSOR["associated_files"]))
    return MetadataSummary(
        name=_str(root, _MODEL["name"]), min_parser_version=_str(root, _MODEL["min_parser_version"]),
        input_name=_str(inp, _TENSOR["name"]), input_image_size=size,
        output_name=_str(out, _TENSOR["name"]), output_label_files=files,
        model_files=tuple(_str(f, _FILE["name"]) for f in _vec(root, _MODEL["associated_files"])),
    )
