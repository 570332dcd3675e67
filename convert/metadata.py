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
reader is :mod:`edgecls.tflite_metadata` (the device reads the normalisation with it).
"""

from __future__ import annotations

import io
import zipfile

import flatbuffers
import numpy as np

from edgecls.artifact import EMBEDDED_LABELS, EMBEDDED_SPEC
from edgecls.spec import ModelSpec

# the schema's enums and vtable slots, shared with the reader
from edgecls.tflite_metadata import COLOR_RGB as _COLOR_RGB
from edgecls.tflite_metadata import CONTENT_FEATURE as _CONTENT_FEATURE
from edgecls.tflite_metadata import CONTENT_IMAGE as _CONTENT_IMAGE
from edgecls.tflite_metadata import DESCRIPTIONS as _DESCRIPTIONS
from edgecls.tflite_metadata import FILE_SLOTS as _FILE
from edgecls.tflite_metadata import METADATA_IDENTIFIER, METADATA_NAME, MIN_PARSER_VERSION
from edgecls.tflite_metadata import MODEL_SLOTS as _MODEL
from edgecls.tflite_metadata import PROCESS_NORMALIZATION as _PROCESS_NORMALIZATION
from edgecls.tflite_metadata import SUBGRAPH_SLOTS as _SUBGRAPH
from edgecls.tflite_metadata import TENSOR_AXIS_LABELS as _TENSOR_AXIS_LABELS
from edgecls.tflite_metadata import TENSOR_SLOTS as _TENSOR


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


def build_model_metadata(spec: ModelSpec, *, name: str, version: str,
                         normalization: tuple[float, float] = (0.0, 1.0)) -> bytes:
    """The ModelMetadata flatbuffer for an edgecls classifier. ``normalization`` (mean, std)
    is the identity for edgecls models; another value describes a model that expects
    ``(pixel - mean) / std``, as Model Maker writes it (the tests make such models)."""
    b = flatbuffers.Builder(1024)
    head = ("sigmoid, exported as two values [1 - p, p]: one probability per label" if spec.head == "sigmoid"
            else "softmax: one probability per label")
    # Input: raw RGB pixels 0..255; the 1/255 rescaling is inside the graph, so the
    # out-of-graph normalisation is the identity (mean 0, std 1).
    image = _tensor(
        b, name="image",
        description=(f"{spec.input_size}x{spec.input_size} RGB, raw pixel values 0..255, resized with "
                     f"edgecls {spec.resize}; read the quantization from the tensor"),
        content=_content(b, spec.input_size), stats=_stats(b, 0.0, 255.0),
        process_units=_normalization(b, *normalization),
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
