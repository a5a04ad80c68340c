"""Solid-colour PNG images written with the standard library only, for requests that carry images."""

from __future__ import annotations

import struct
import zlib


def solid_png(color: tuple[int, int, int], size: int = 64) -> bytes:
    """A solid PNG (zlib + the PNG chunk format)."""
    raw = b"".join(b"\x00" + bytes(color) * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
