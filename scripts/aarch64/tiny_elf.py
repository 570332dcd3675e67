"""Write the smallest static aarch64 Linux program: it exits with status 42, nothing else.

scripts/check-aarch64 runs it (chrooted into an empty folder, as debootstrap's second stage
will run the rootfs's own binaries) to prove the kernel hands aarch64 binaries to qemu before
several minutes of debootstrap depend on it. Written by hand, 132 bytes, so proving
emulation needs no cross-compiler and no download.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

BASE = 0x400000
CODE = struct.pack("<3I",
                   0xD2800540,  # movz x0, #42
                   0xD2800BA8,  # movz x8, #93 (exit)
                   0xD4000001)  # svc #0
EHDR, PHDR = 64, 56


def tiny_elf() -> bytes:
    size = EHDR + PHDR + len(CODE)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, version 1, SysV
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 183, 1, BASE + EHDR + PHDR, EHDR, 0, 0,
                                 EHDR, PHDR, 1, 64, 0, 0)  # ET_EXEC, EM_AARCH64, one PT_LOAD
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, 0x1000)  # R+X
    return header + program + CODE


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.write_bytes(tiny_elf())
    out.chmod(0o755)
