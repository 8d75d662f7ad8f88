"""Bytes for the API tests: small synthetic images and the bad inputs the API must refuse with a 4xx."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def solid_jpeg(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid, tiny PNG whose header declares width x height RGB pixels (a decompression bomb: the
    compressed rows of zeros would inflate to 30 GB if anyone decoded them)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * width)
    data = b"".join(rows.compress(row) for _ in range(8)) + rows.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def truncated(data: bytes) -> bytes:
    """The first half of an encoded image (a JPEG cut off mid-scan)."""
    return data[: len(data) // 2]


def multipart_stream(field: str, filename: str, size: int, boundary: str = "smartlockXYZ"):
    """A multipart body of ``size`` bytes of payload, yielded in 1 MiB chunks: httpx sends a generator
    with chunked transfer encoding, i.e. without Content-Length."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    sent = 0
    while sent < size:
        step = min(2**20, size - sent)
        yield b"\xff" * step
        sent += step
    yield f"\r\n--{boundary}--\r\n".encode()
