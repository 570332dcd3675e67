"""The exception tree. Library code raises these; only the CLI turns them into one line and an exit code.

    EdgeclsError                 anything the user can fix; the message says how
    ├── DataError                an image folder, image file or dataset is unusable
    ├── ModelError               a model file or run folder is missing, corrupt or foreign
    ├── SpecError                a model spec or labels file does not agree with the model
    ├── OutputError              an output path cannot be written (or exists without --force)
    ├── SourceError              a camera, video, stream or folder source cannot be opened
    ├── BackendError             no usable interpreter, or a delegate (Edge TPU) is missing
    └── MissingDependencyError   an optional extra is not installed; names the pip command
"""

from __future__ import annotations


class EdgeclsError(Exception):
    """Base class: a user-fixable problem. ``str(err)`` is the one line the CLI prints."""

    exit_code = 2


class DataError(EdgeclsError):
    pass


class ModelError(EdgeclsError):
    pass


class SpecError(EdgeclsError):
    pass


class OutputError(EdgeclsError):
    pass


class SourceError(EdgeclsError):
    pass


class BackendError(EdgeclsError):
    pass


class MissingDependencyError(EdgeclsError):
    """Raised when an optional extra is needed; the message names the install command."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{module}' module, which is not installed: "
            f'pip install "edgecls[{extra}]"'
        )
        self.module = module
        self.extra = extra
