"""Image dimensions from a file's first bytes, before anything is decoded.

Why by hand: a 151 KB PNG can declare 30000x30000 pixels, and OpenCV allocates the full
2.7 GB (6 GB peak) before it looks at a single compressed byte; its own guard
(``OPENCV_IO_MAX_IMAGE_PIXELS``) is read once per process and defaults to 2^30. Pillow
would do this but is not a device dependency, and the small ``imagesize`` package reads
no BMP. Every format of :data:`edgecls.images.IMAGE_EXTENSIONS` keeps its size in a fixed
header (JPEG in its first SOF segment), so about 80 lines cover them all.
"""

from __future__ import annotations

import struct

#: Bytes read to find the size: enough for a JPEG whose EXIF block precedes the SOF segment.
HEAD_BYTES = 256 * 1024

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) declared by an image header, or None when it cannot be told."""
    try:
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            w, h = struct.unpack(">II", head[16:24])
            return w, h
        if head[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", head[6:10])
            return w, h
        if head[:2] == b"BM":
            header_size = struct.unpack("<I", head[14:18])[0]
            if header_size == 12:
                w, h = struct.unpack("<HH", head[18:22])
                return w, h
            w, h = struct.unpack("<ii", head[18:26])
            return abs(w), abs(h)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp(head)
        if head[:2] == b"\xff\xd8":
            return _jpeg(head)
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(head)
        if head[:1] == b"P" and head[1:2] in b"123456":
            return _netpbm(head)
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _webp(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        b = head[21:25]
        w = 1 + (((b[1] & 0x3F) << 8) | b[0])
        h = 1 + (((b[3] & 0x0F) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        return w, h
    if chunk == b"VP8X":
        w = 1 + int.from_bytes(head[24:27], "little")
        h = 1 + int.from_bytes(head[27:30], "little")
        return w, h
    return None


def _jpeg(head: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", head[i + 2:i + 4])[0]
        if marker in _SOF:
            h, w = struct.unpack(">HH", head[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def _tiff(head: bytes) -> tuple[int, int] | None:
    endian = "<" if head[:2] == b"II" else ">"
    offset = struct.unpack(endian + "I", head[4:8])[0]
    count = struct.unpack(endian + "H", head[offset:offset + 2])[0]
    found: dict[int, int] = {}
    for k in range(count):
        entry = head[offset + 2 + 12 * k: offset + 14 + 12 * k]
        tag, kind = struct.unpack(endian + "HH", entry[:4])
        if tag in (256, 257):
            found[tag] = struct.unpack(endian + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _netpbm(head: bytes) -> tuple[int, int] | None:
    fields: list[int] = []
    for line in head[2:2048].split(b"\n"):
        line = line.split(b"#")[0]
        fields.extend(int(x) for x in line.split())
        if len(fields) >= 2:
            return fields[0], fields[1]
    return None
