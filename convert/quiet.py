"""Keep native libraries' chatter off the terminal: TF, the converter and LiteRT all write
straight to file descriptors 1 and 2, past Python's sys.stdout and sys.stderr.

A command printing JSON on stdout must stay clean, and an error must be one line, so
the noisy calls run inside :func:`captured`, which hands back what was said for an
error message.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import IO


@contextlib.contextmanager
def captured(fds: tuple[int, ...] = (1, 2)) -> Iterator[IO[bytes]]:
    """Point ``fds`` at a temp file (and silence Python warnings) for the block; yield the file."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        try:
            yield sink
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)


def said(sink: IO[bytes]) -> list[str]:
    """The non-blank lines written into a :func:`captured` file."""
    sink.seek(0)
    return [line for line in sink.read().decode("utf-8", "replace").splitlines() if line.strip()]
