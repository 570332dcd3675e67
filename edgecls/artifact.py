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
import zlib
from pathlib import Path

from edgecls.errors import ModelError
from edgecls.labels import parse_labels
from edgecls.spec import ModelSpec

EMBEDDED_SPEC = "edgecls.json"
EMBEDDED_LABELS = "labels.txt"
#: Every TFLite flatbuffer has this file identifier at byte offset 4.
TFLITE_IDENTIFIER = b"TFL3"
#: The largest embedded labels.txt or edgecls.json read (a hostile artifact could declare gigabytes).
MAX_EMBEDDED_BYTES = 4 << 20


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
    """The spec and labels embedded in a .tflite, or None for each that is absent.

    The labels come from the spec's JSON list when there is one (unambiguous: "0 cent" stays
    "0 cent"); the embedded labels.txt is read as plain lines only (never the ``id label``
    form) and must agree with the spec. Embedded files that exist but cannot be read
    (a broken archive, text that is not UTF-8) are refused: a caller must not fall back to
    some labels.txt lying beside the model, which may be stale.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            spec = (
                ModelSpec.from_json(_member_text(zf, EMBEDDED_SPEC, path), f"{path}:{EMBEDDED_SPEC}")
                if EMBEDDED_SPEC in names else None
            )
            labels = (
                parse_labels(_member_text(zf, EMBEDDED_LABELS, path), f"{path}:{EMBEDDED_LABELS}", id_form=False)
                if EMBEDDED_LABELS in names else None
            )
    except zipfile.BadZipFile as err:
        if _has_archive_marks(path):
            raise ModelError(f"{path} carries embedded files but they are corrupt ({err}): convert it again") from err
        return None, None
    except OSError as err:
        raise ModelError(f"cannot read {path}: {err.strerror}") from err
    if spec is not None:
        if labels is not None and labels != tuple(label.strip() for label in spec.labels):
            raise ModelError(f"{path}: its embedded {EMBEDDED_LABELS} and {EMBEDDED_SPEC} name different labels: convert it again")
        labels = spec.labels
    return spec, labels


def _member_text(zf: zipfile.ZipFile, name: str, path: Path) -> str:
    size = zf.getinfo(name).file_size
    if size > MAX_EMBEDDED_BYTES:
        raise ModelError(f"{path}: the embedded {name} is {size:,} bytes, over {MAX_EMBEDDED_BYTES:,}: not an edgecls artifact")
    try:
        with zf.open(name) as fh:
            data = fh.read(MAX_EMBEDDED_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as err:
        raise ModelError(f"{path}: the embedded {name} is corrupt ({err}): convert it again") from err
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ModelError(f"{path}: the embedded {name} is not UTF-8 text (byte {err.start}): convert it again") from err


def _has_archive_marks(path: Path) -> bool:
    """True when the file holds zip headers although zipfile cannot open it: embedded files, broken."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    return b"PK\x05\x06" in data[-(1 << 16) - 22:] or (b"PK\x03\x04" in data and EMBEDDED_SPEC.encode() in data)
