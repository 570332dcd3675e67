"""How the bench scripts name a path in the markdown they print for BENCHMARKS.md: relative
to the repository (``.bench/run``), never an absolute path of the machine that ran them."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shown(path: Path | str) -> str:
    """``path`` relative to the repository, or just its name when it lies outside."""
    resolved = Path(path).resolve()
    return resolved.relative_to(REPO).as_posix() if resolved.is_relative_to(REPO) else resolved.name
