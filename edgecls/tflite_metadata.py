"""Reading standard TFLite metadata without TensorFlow or tflite-support: flatbuffers only.

The ecosystem's convention (tflite-support's MetadataPopulator; Model Maker, MediaPipe and
edgecls write it) puts a ``ModelMetadata`` flatbuffer (``metadata_schema.fbs``, identifier
``M001``) in a model buffer named by a ``TFLITE_METADATA`` entry. This core module reads
what host and device both need: the input's normalisation (``NormalizationOptions`` in
its process units: ``(pixel - mean) / std``) and, for the conversion self-checks, a
summary. The writer is :mod:`edgecls.convert.metadata`; both share the slot tables below.

A model file crosses a device boundary, so it is hostile: every offset is bounds-checked
by the parser, and anything unreadable is reported as "no metadata", never a traceback.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import flatbuffers
from flatbuffers import number_types as N
from flatbuffers.table import Table

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"

# metadata_schema.fbs enums
TENSOR_AXIS_LABELS = 2
DESCRIPTIONS = 1
COLOR_RGB = 1
CONTENT_FEATURE, CONTENT_IMAGE = 1, 2
PROCESS_NORMALIZATION = 1

# vtable slots (field index in declaration order) of the metadata tables
MODEL_SLOTS = {"name": 0, "description": 1, "version": 2, "subgraph_metadata": 3, "author": 4,
               "license": 5, "associated_files": 6, "min_parser_version": 7}
SUBGRAPH_SLOTS = {"name": 0, "description": 1, "input_tensor_metadata": 2, "output_tensor_metadata": 3}
TENSOR_SLOTS = {"name": 0, "description": 1, "content": 3, "process_units": 4, "stats": 5,
                "associated_files": 6}
FILE_SLOTS = {"name": 0, "description": 1, "type": 2}
# schema.fbs (the model itself): Model.buffers = 4, Model.metadata = 6; Metadata {name, buffer};
# Buffer {data, offset, size} (offset/size: data stored after the flatbuffer, models > 2 GB)
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6

_PARSE_ERRORS = (struct.error, IndexError, ValueError, UnicodeDecodeError, TypeError)


def _root(buf: bytes | bytearray) -> Table:
    data = bytearray(buf)
    return Table(data, N.UOffsetTFlags.py_type(flatbuffers.encode.Get(N.UOffsetTFlags.packer_type, data, 0)))


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


def _floats(t: Table, slot: int) -> list[float]:
    off = _field(t, slot)
    if not off:
        return []
    start, n = t.Vector(off), t.VectorLen(off)
    return [float(flatbuffers.encode.Get(N.Float32Flags.packer_type, t.Bytes, start + 4 * i)) for i in range(n)]


def find_metadata(model_bytes: bytes) -> bytes | None:
    """The TFLITE_METADATA buffer of a model, or None (also for an unreadable flatbuffer)."""
    try:
        model = _root(model_bytes)
        buffers = _field(model, _MODEL_BUFFERS)
        for entry in _vec(model, _MODEL_METADATA):
            if _str(entry, 0) != METADATA_NAME:
                continue
            index = int(entry.GetSlot(6, 0, N.Uint32Flags))
            if not buffers or index >= model.VectorLen(buffers):
                return None
            buf = Table(model.Bytes, model.Indirect(model.Vector(buffers) + 4 * index))
            off = _field(buf, 0)
            if off:
                start, n = buf.Vector(off), buf.VectorLen(off)
                return bytes(buf.Bytes[start:start + n])
            offset, size = int(buf.GetSlot(6, 0, N.Uint64Flags)), int(buf.GetSlot(8, 0, N.Uint64Flags))
            return bytes(model_bytes[offset:offset + size]) if offset > 1 and size else None
    except _PARSE_ERRORS:
        return None
    return None


def read_normalization(model_bytes: bytes) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The first input's ``NormalizationOptions`` (mean, std per channel or one value), or None."""
    meta = find_metadata(model_bytes)
    if meta is None or meta[4:8] != METADATA_IDENTIFIER:
        return None
    try:
        subgraphs = _vec(_root(meta), MODEL_SLOTS["subgraph_metadata"])
        inputs = _vec(subgraphs[0], SUBGRAPH_SLOTS["input_tensor_metadata"]) if subgraphs else []
        units = _vec(inputs[0], TENSOR_SLOTS["process_units"]) if inputs else []
        for unit in units:
            if int(unit.GetSlot(4, 0, N.Uint8Flags)) != PROCESS_NORMALIZATION:
                continue
            options = _sub(unit, 1)
            if options is None:
                return None
            mean, std = _floats(options, 0), _floats(options, 1)
            return (tuple(mean), tuple(std)) if mean and std else None
    except _PARSE_ERRORS:
        return None
    return None


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


def read_metadata(buf: bytes) -> MetadataSummary:
    """Parse the fields edgecls writes, following the schema's slots (a minimal reader)."""
    if buf[4:8] != METADATA_IDENTIFIER:
        raise ValueError("not a TFLite ModelMetadata flatbuffer (no M001 identifier)")
    root = _root(buf)
    subgraph = _vec(root, MODEL_SLOTS["subgraph_metadata"])[0]
    inp = _vec(subgraph, SUBGRAPH_SLOTS["input_tensor_metadata"])[0]
    out = _vec(subgraph, SUBGRAPH_SLOTS["output_tensor_metadata"])[0]
    size = None
    content = _sub(inp, TENSOR_SLOTS["content"])
    if content is not None and content.GetSlot(4, 0, N.Uint8Flags) == CONTENT_IMAGE:
        props = _sub(content, 1)
        dims = _sub(props, 1) if props is not None else None
        size = int(dims.GetSlot(4, 0, N.Uint32Flags)) if dims is not None else None
    files = tuple((_str(f, FILE_SLOTS["name"]), int(f.GetSlot(4 + 2 * FILE_SLOTS["type"], 0, N.Int8Flags)))
                  for f in _vec(out, TENSOR_SLOTS["associated_files"]))
    return MetadataSummary(
        name=_str(root, MODEL_SLOTS["name"]), min_parser_version=_str(root, MODEL_SLOTS["min_parser_version"]),
        input_name=_str(inp, TENSOR_SLOTS["name"]), input_image_size=size,
        output_name=_str(out, TENSOR_SLOTS["name"]), output_label_files=files,
        model_files=tuple(_str(f, FILE_SLOTS["name"]) for f in _vec(root, MODEL_SLOTS["associated_files"])),
    )
