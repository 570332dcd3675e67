"""Print the device-side requirements of edgecls for one runtime, one a line, from pyproject.toml.

scripts/check-aarch64 downloads aarch64 wheels for exactly these (the project's own
dependencies plus one extra) and keys its wheel cache on this output, so a changed
requirement downloads afresh. Runs on the host (Python >= 3.11 for tomllib).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tomllib

#: check-aarch64's --runtime -> the pyproject extra that brings that interpreter.
RUNTIME_EXTRAS = {"litert": "device", "tflite-runtime": "legacy"}


def requirements(pyproject: Path, runtime: str, python: str) -> list[str]:
    """The requirements with their markers settled for the device (Linux, aarch64, ``python``).

    ``pip download --platform`` evaluates markers on the machine it runs on, so a marker
    such as Bookworm's ``numpy<2; platform_machine == 'aarch64'`` would be dropped on the
    x86 host and then missing offline in the chroot: evaluate them here, for the device.
    """
    from packaging.requirements import Requirement

    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extra = RUNTIME_EXTRAS[runtime]
    device = {"platform_machine": "aarch64", "platform_system": "Linux", "sys_platform": "linux",
              "os_name": "posix", "python_version": python, "python_full_version": f"{python}.0",
              "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    out = []
    for line in [*project["dependencies"], *project["optional-dependencies"][extra]]:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(device):
            req.marker = None
            out.append(str(req))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("runtime", choices=sorted(RUNTIME_EXTRAS))
    parser.add_argument("--extra", action="store_true", help="print only the extra's name")
    parser.add_argument("--python", default="3.11", help="the device's Python (major.minor) for markers")
    args = parser.parse_args()
    if args.extra:
        print(RUNTIME_EXTRAS[args.runtime])
    else:
        sys.stdout.write("".join(f"{r}\n" for r in requirements(args.pyproject, args.runtime, args.python)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
