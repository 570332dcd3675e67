"""labels.txt: one label a line, line number = class index; the ``id label`` form is read too.

A class folder's name is its label verbatim, so a label may itself look like ``id label``
("0 cent", "1 cent"). Three rules keep that from ever being misread:

- The spec (``spec.json``, and ``edgecls.json`` inside an artifact) stores labels as a JSON
  list; every edgecls reader takes them from there, never from a labels.txt.
- The ``id label`` form is read only from a plain labels.txt given by the user (or lying
  beside a model that carries none), only when the ids are exactly 0..N-1, and only when
  the labels it yields are distinct; otherwise each line is a label, verbatim.
- :func:`write_labels` writes the plain form when it reads back unchanged, else the
  ``id label`` form (``0 0 cent``), which does.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgecls.errors import SpecError
from edgecls.fsutil import atomic_write_text

_ID_LABEL = re.compile(r"^\s*(\d+)[\s:,]+(.+?)\s*$")


def parse_labels(text: str, source: str = "labels", *, id_form: bool = True) -> tuple[str, ...]:
    """Parse plain (one a line) or, with ``id_form``, ``id label`` labels; blank lines are ignored."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise SpecError(f"{source} has no labels: write one label a line")
    if id_form:
        matches = [_ID_LABEL.match(line) for line in lines]
        if all(matches):
            pairs = {int(m.group(1)): m.group(2) for m in matches if m}
            if sorted(pairs) == list(range(len(lines))) and len(set(pairs.values())) == len(lines):
                return tuple(pairs[i] for i in range(len(lines)))
    if len(set(lines)) != len(lines):
        dup = next(line for line in lines if lines.count(line) > 1)
        raise SpecError(f"{source} repeats the label {dup!r}: each class needs its own name")
    return tuple(lines)


def read_labels(path: Path) -> tuple[str, ...]:
    """A labels file the user gave (``--labels``) or one beside a model that carries none."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise SpecError(f"cannot read labels file {path}: {err.strerror}") from err
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise SpecError(f"labels file {path} is not UTF-8 text (byte {err.start}): save it as UTF-8") from err
    return parse_labels(text, str(path))


def labels_text(labels: tuple[str, ...] | list[str]) -> str:
    """The plain form, one label a line: what TFLite metadata readers (MediaPipe) expect."""
    return "".join(f"{label}\n" for label in labels)


def unambiguous_labels_text(labels: tuple[str, ...] | list[str]) -> str:
    """The plain form if it reads back unchanged, else the ``id label`` form."""
    plain = labels_text(labels)
    try:
        if parse_labels(plain) == tuple(labels):
            return plain
    except SpecError:
        pass
    return "".join(f"{i} {label}\n" for i, label in enumerate(labels))


def check_label(name: str, where: str) -> None:
    """Refuse a class name that no labels file can hold (empty, or with a line break)."""
    if not name.strip() or any(c in name for c in "\r\n"):
        raise SpecError(f"class folder {where!r} cannot be a label (empty or has a line break): rename the folder")


def write_labels(path: Path, labels: tuple[str, ...] | list[str]) -> None:
    atomic_write_text(path, unambiguous_labels_text(labels))
