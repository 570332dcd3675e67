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


def requirements(pyproject: Path, runtime: str) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extra = RUNTIME_EXTRAS[runtime]
    return [*project["dependencies"], *project["optional-dependencies"][extra]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("runtime", choices=sorted(RUNTIME_EXTRAS))
    parser.add_argument("--extra", action="store_true", help="print only the extra's name")
    args = parser.parse_args()
    if args.extra:
        print(RUNTIME_EXTRAS[args.runtime])
    else:
        sys.stdout.write("".join(f"{r}\n" for r in requirements(args.pyproject, args.runtime)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
