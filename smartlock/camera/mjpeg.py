"""The MJPEG wire format: building the parts we send, parsing the parts an upstream camera sends.

A part is ``--FRAME``, headers, a blank line, the JPEG and CRLF, as in the seed's picamera server. Each
part also carries ``X-Timestamp`` (unix seconds at capture) so a consumer can tell when a frame was taken;
OpenCV and browsers ignore the extra header.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator

from smartlock.errors import CameraError

BOUNDARY = "FRAME"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
MAX_PART_BYTES = 32 * 2**20  # an upstream part larger than this is refused, not buffered
JPEG_SOI = b"\xff\xd8"


def build_part(jpeg: bytes, timestamp: float) -> bytes:
    """One multipart part, built once per frame and sent as-is to every client."""
    head = b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\nX-Timestamp: %.6f\r\n\r\n" % (
        BOUNDARY.encode(),
        len(jpeg),
        timestamp,
    )
    return head + jpeg + b"\r\n"


def header_param(value: str, name: str) -> str | None:
    """A parameter of a header value, e.g. the boundary of a multipart Content-Type."""
    match = re.search(rf"{name}\s*=\s*(\"[^\"]*\"|[^;\s]+)", value, re.IGNORECASE)
    return match.group(1).strip('"') if match else None


def iter_multipart(chunks: Iterable[bytes], boundary: str) -> Iterator[tuple[dict[str, str], bytes]]:
    """Split a multipart/x-mixed-replace byte stream into (headers, body) parts.

    Uses Content-Length when a part has one; otherwise the body runs to the next boundary. Cameras
    disagree on whether the delimiter line is ``--BOUNDARY`` or just ``BOUNDARY``, so both are found.
    """
    marker = boundary.encode("latin-1")
    if marker.startswith(b"--"):
        marker = marker.lstrip(b"-") or marker
    buffer = bytearray()
    source = iter(chunks)

    def fill() -> None:
        for chunk in source:
            if chunk:
                buffer.extend(chunk)
                return
        raise CameraError("the upstream stream ended")

    while True:
        while (start := buffer.find(marker)) < 0:
            del buffer[: max(0, len(buffer) - len(marker))]
            fill()
        del buffer[: start + len(marker)]
        while len(buffer) < 2:
            fill()
        if buffer.startswith(b"--"):
            raise CameraError("the upstream stream ended")
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > 65536:
                raise CameraError("the upstream stream sent a part header of more than 64 KiB")
            fill()
        headers: dict[str, str] = {}
        for line in bytes(buffer[:end]).decode("latin-1").split("\r\n"):
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip().lower()] = value.strip()
        del buffer[: end + 4]
        length = headers.get("content-length", "")
        if length.isdigit():
            size = int(length)
            if size > MAX_PART_BYTES:
                raise CameraError(f"the upstream stream sent a part of {size} bytes")
            while len(buffer) < size:
                fill()
            body = bytes(buffer[:size])
            del buffer[:size]
        else:
            while (stop := buffer.find(marker)) < 0:
                if len(buffer) > MAX_PART_BYTES:
                    raise CameraError("the upstream stream sent a part without an end")
                fill()
            body = bytes(buffer[:stop]).rstrip(b"-").rstrip(b"\r\n")
            del buffer[:stop]
        yield headers, body


def part_timestamp(headers: dict[str, str]) -> float:
    """An upstream smartlock camera's capture time (kept along a relay chain), else the time of arrival."""
    try:
        stamp = float(headers.get("x-timestamp", ""))
    except ValueError:
        return time.time()
    return stamp if 1e9 < stamp < 1e11 else time.time()


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, without decoding it; None if there is none."""
    if not data.startswith(JPEG_SOI):
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None
