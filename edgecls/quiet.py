"""Keep native libraries' chatter off the terminal: TF, the converter and LiteRT all write
straight to file descriptors 1 and 2, past Python's sys.stdout and sys.stderr.

A command printing JSON on stdout must stay clean, and an error must be one line, so
the noisy calls run inside :func:`captured`, which hands back what was said for an
error message. The one capture helper of host and device (the device loads its
interpreter inside it too).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import IO


def _flush_c_stdio() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


class Captured:
    """What a :func:`captured` block wrote, from native code (fds) and from Python."""

    def __init__(self, sink: IO[bytes] | None) -> None:
        self.sink = sink
        self.text = io.StringIO()
        self.native = ""

    def _read_sink(self) -> None:
        if self.sink is not None:
            self.sink.seek(0)
            self.native = self.sink.read().decode("utf-8", "replace")

    def lines(self) -> list[str]:
        """Non-blank lines written so far (readable during and after the block)."""
        if self.sink is not None and not self.sink.closed:
            self._read_sink()
        return [line for line in (self.native + self.text.getvalue()).splitlines() if line.strip()]


@contextlib.contextmanager
def captured(fds: tuple[int, ...] = (1, 2)) -> Iterator[Captured]:
    """Point ``fds`` (and the matching sys streams) at a sink for the block, warnings off.

    The sys streams are swapped too because a test runner or an embedding program may
    have replaced them with objects that do not write to the file descriptors.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = {fd: os.dup(fd) for fd in fds}
    except (OSError, ValueError):  # no such descriptor (a daemon without stderr): nothing to keep off
        yield Captured(None)
        return
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = Captured(sink)
        streams = contextlib.ExitStack()
        if 1 in fds:
            streams.enter_context(contextlib.redirect_stdout(result.text))
        if 2 in fds:
            streams.enter_context(contextlib.redirect_stderr(result.text))
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        try:
            with streams:
                yield result
        finally:
            _flush_c_stdio()  # C++ code may still hold buffered output for the sink
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            result._read_sink()
