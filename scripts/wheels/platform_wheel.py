"""Turn edgecls's pure wheel into one platform's wheel, and check a built wheel.

    platform_wheel.py make PURE_WHEEL KERNEL PLATFORM_TAG OUTDIR
    platform_wheel.py check WHEEL

``make`` adds the cross-compiled resize kernel as ``edgecls/_area.so`` and retags the
wheel ``py3-none-PLATFORM_TAG`` with the ``wheel`` tool's own unpack/pack, which rewrites
RECORD and names the file from the tags. The kernel has no Python.h and is loaded with
ctypes, so one file per platform serves every Python 3; ``_area.so`` (no ABI suffix) is
a name every CPython's import machinery finds, which is how ``edgecls.preprocess`` looks
for it.

``check`` is the gate before a wheel reaches dist/. A Linux wheel must hold exactly one
kernel, and ``auditwheel show`` must find the wheel's own architecture and a glibc no newer
than its manylinux tag promises: a kernel built
for another architecture makes auditwheel refuse the wheel ("... is not consistent with
..." or an architecture error), and that refusal fails the check. macOS wheels cannot be
audited by auditwheel (Linux only); their Mach-O header is read instead (CPU type and
minimum macOS), which is all that can be checked without a Mac.
"""

from __future__ import annotations

import argparse
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

KERNEL_NAME = "edgecls/_area.so"
#: Mach-O CPU types by the architecture a macOS platform tag ends with.
MACHO_CPU = {"arm64": 0x0100000C, "x86_64": 0x01000007}
LC_BUILD_VERSION = 0x32


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def make(pure: Path, kernel: Path, tag: str, outdir: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        proc = _run(sys.executable, "-m", "wheel", "unpack", "-d", tmp, str(pure))
        if proc.returncode:
            raise SystemExit(f"platform_wheel: error: cannot unpack {pure.name}: {proc.stderr.strip()}")
        (root,) = Path(tmp).iterdir()
        shutil.copy(kernel, root / KERNEL_NAME)
        (wheel_file,) = root.glob("*.dist-info/WHEEL")
        lines = [ln for ln in wheel_file.read_text().splitlines() if ln.strip() and not ln.startswith(("Tag:", "Root-Is-Purelib:"))]
        lines += ["Root-Is-Purelib: false", f"Tag: py3-none-{tag}"]
        wheel_file.write_text("\n".join(lines) + "\n")
        outdir.mkdir(parents=True, exist_ok=True)
        proc = _run(sys.executable, "-m", "wheel", "pack", "-d", str(outdir), str(root))
        if proc.returncode:
            raise SystemExit(f"platform_wheel: error: cannot pack the {tag} wheel: {proc.stderr.strip()}")
    (made,) = outdir.glob(f"edgecls-*-py3-none-{tag}.whl")
    return made


def _wheel_tag(wheel: Path) -> str:
    return wheel.name[: -len(".whl")].split("-")[-1]


def _macho(data: bytes) -> tuple[int, str]:
    """(CPU type, minimum macOS) of a thin 64-bit Mach-O file."""
    magic, cpu, _, _, ncmds = struct.unpack_from("<IiiII", data, 0)
    if magic != 0xFEEDFACF:
        raise ValueError(f"not a 64-bit little-endian Mach-O file (magic {magic:#x})")
    off = 32
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, off)
        if cmd == LC_BUILD_VERSION:
            minos = struct.unpack_from("<I", data, off + 12)[0]
            return cpu & 0xFFFFFFFF, f"{minos >> 16}.{(minos >> 8) & 0xFF}"
        off += size
    return cpu & 0xFFFFFFFF, "?"


def check(wheel: Path) -> str:
    """One line describing a good wheel; SystemExit naming the fault otherwise."""
    tag = _wheel_tag(wheel)
    with zipfile.ZipFile(wheel) as zf:
        kernels = [n for n in zf.namelist() if re.fullmatch(r"edgecls/_area[^/]*\.(so|dylib|pyd)", n)]
        if kernels != [KERNEL_NAME]:
            raise SystemExit(f"platform_wheel: error: {wheel.name} must hold exactly {KERNEL_NAME}, holds {kernels}")
        kernel = zf.read(KERNEL_NAME)
    if tag.startswith("manylinux"):
        proc = _run(sys.executable, "-m", "auditwheel", "show", str(wheel))
        text = " ".join((proc.stdout + proc.stderr).split())
        print(proc.stdout.strip() or proc.stderr.strip())
        found = re.search(r'consistent with the following platform tag: "manylinux_(\d+)_(\d+)_(\w+)"', text)
        want = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", tag)
        # auditwheel names the oldest glibc the kernel needs; the tag may promise a newer one.
        if proc.returncode or not found or not want or found[3] != want[3] or \
                (int(found[1]), int(found[2])) > (int(want[1]), int(want[2])):
            raise SystemExit(f"platform_wheel: error: auditwheel does not accept {wheel.name} as {tag} "
                             f"(exit {proc.returncode}): {text[:300]}")
        return f"{wheel.name}: auditwheel finds manylinux_{found[1]}_{found[2]}_{found[3]}, within its tag {tag}"
    if tag.startswith("macosx_"):
        arch = next((a for a in MACHO_CPU if tag.endswith(a)), None)
        want_os = ".".join(tag.split("_")[1:3])
        try:
            cpu, minos = _macho(kernel)
        except (ValueError, struct.error) as err:
            raise SystemExit(f"platform_wheel: error: {wheel.name}: {KERNEL_NAME}: {err}") from None
        if arch is None or cpu != MACHO_CPU[arch] or minos != want_os:
            raise SystemExit(f"platform_wheel: error: {wheel.name}: the kernel is Mach-O CPU {cpu:#x}, macOS {minos}; "
                             f"the tag says {tag}")
        return f"{wheel.name}: Mach-O {arch}, minimum macOS {minos} (not auditable here: auditwheel is Linux-only)"
    raise SystemExit(f"platform_wheel: error: {wheel.name}: no check for platform tag {tag}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("pure", type=Path)
    m.add_argument("kernel", type=Path)
    m.add_argument("tag")
    m.add_argument("outdir", type=Path)
    c = sub.add_parser("check")
    c.add_argument("wheel", type=Path)
    args = parser.parse_args()
    if args.cmd == "make":
        print(make(args.pure, args.kernel, args.tag, args.outdir))
    else:
        print(check(args.wheel))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
