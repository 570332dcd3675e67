"""What a deployed ``.tflite`` carries about itself, read without TensorFlow.

Conversion appends a zip of associated files to the flatbuffer (the TFLite metadata
convention: ``unzip -l model.tflite`` lists them, and the TFLITE_METADATA entry names
``labels.txt`` as the output's TENSOR_AXIS_LABELS). Two members matter to edgecls:

- ``labels.txt``: one label a line, line number = class index.
- ``edgecls.json``: the :class:`~edgecls.spec.ModelSpec` including its quantization.

Readers use :func:`read_embedded`; zipfile finds the archive from the end of the file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from edgecls.errors import ModelError
from edgecls.labels import parse_labels
from edgecls.spec import ModelSpec

EMBEDDED_SPEC = "edgecls.json"
EMBEDDED_LABELS = "labels.txt"
#: Every TFLite flatbuffer has this file identifier at byte offset 4.
TFLITE_IDENTIFIER = b"TFL3"


def check_tflite(path: Path) -> bytes:
    """Read a model file and refuse what is not a TFLite flatbuffer; return its bytes."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model {path} does not exist: give the path of a .tflite file")
    if not path.is_file():
        raise ModelError(f"model {path} is not a file: give the path of a .tflite file")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(f"{path} is not a TFLite model (no TFL3 identifier): convert one with 'edgecls convert'")
    return data


def read_embedded(path: Path) -> tuple[ModelSpec | None, tuple[str, ...] | None]:
    """The spec and labels embedded in a .tflite, or None for each that is absent."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            spec = (
                ModelSpec.from_json(zf.read(EMBEDDED_SPEC).decode("utf-8"), f"{path}:{EMBEDDED_SPEC}")
                if EMBEDDED_SPEC in names else None
            )
            labels = (
                parse_labels(zf.read(EMBEDDED_LABELS).decode("utf-8"), f"{path}:{EMBEDDED_LABELS}")
                if EMBEDDED_LABELS in names else None
            )
    except zipfile.BadZipFile:
        return None, None
    except OSError as err:
        raise ModelError(f"cannot read {path}: {err.strerror}") from err
    return spec, labels
