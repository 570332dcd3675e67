"""labels.txt: one label a line, line number = class index; the ``id label`` form is read too."""

from __future__ import annotations

import re
from pathlib import Path

from edgecls.errors import SpecError
from edgecls.fsutil import atomic_write_text

_ID_LABEL = re.compile(r"^\s*(\d+)[\s:,]+(.+?)\s*$")


def parse_labels(text: str, source: str = "labels") -> tuple[str, ...]:
    """Parse plain (one a line) or ``id label`` labels; blank lines are ignored."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise SpecError(f"{source} has no labels: write one label a line")
    matches = [_ID_LABEL.match(line) for line in lines]
    if all(matches):
        pairs = {int(m.group(1)): m.group(2) for m in matches if m}
        if sorted(pairs) != list(range(len(pairs))) or len(pairs) != len(lines):
            raise SpecError(f"{source}: ids must be 0..{len(lines) - 1}, each once; got {sorted(pairs)}")
        return tuple(pairs[i] for i in range(len(pairs)))
    if len(set(lines)) != len(lines):
        raise SpecError(f"{source} repeats a label: each class needs its own name")
    return tuple(lines)


def read_labels(path: Path) -> tuple[str, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(f"cannot read labels file {path}: {err.strerror}") from err
    return parse_labels(text, str(path))


def labels_text(labels: tuple[str, ...] | list[str]) -> str:
    return "".join(f"{label}\n" for label in labels)


def write_labels(path: Path, labels: tuple[str, ...] | list[str]) -> None:
    atomic_write_text(path, labels_text(labels))
