"""The one import site of a TFLite interpreter: ai-edge-litert, else tflite-runtime.

Every other module asks :func:`runtime` for the Interpreter class and ``load_delegate``,
so the fallback order lives here and nowhere else (frigate copies it into three files).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from edgecls.errors import MissingDependencyError


@dataclass(frozen=True)
class Runtime:
    """An interpreter package: its distribution name and version, and the two entry points."""

    name: str
    version: str
    interpreter: Callable[..., Any]
    load_delegate: Callable[..., Any]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def runtime() -> Runtime:
    """The interpreter package to use; raises MissingDependencyError naming the extra."""
    try:
        from ai_edge_litert import interpreter as litert

        return Runtime("ai-edge-litert", _version("ai-edge-litert"), litert.Interpreter, litert.load_delegate)
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as tflite  # type: ignore[import-not-found]

        return Runtime("tflite-runtime", _version("tflite-runtime"), tflite.Interpreter, tflite.load_delegate)
    except ImportError as err:
        raise MissingDependencyError("ai_edge_litert", "device", "the device runtime") from err
