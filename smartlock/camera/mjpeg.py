"""The MJPEG wire format, for the camera and the engine: building the parts we send, parsing any camera's.

A part is ``--FRAME``, headers, a blank line, the JPEG and CRLF, as in the seed's picamera server. Each
part also carries ``X-Timestamp`` (unix seconds at capture) so a consumer can tell when a frame was taken;
OpenCV and browsers ignore the extra header; a camera with a token also signs each part (X-Sequence,
X-Stream-Id, X-Frame-Signature: ``smartlock.camera.signing``). The parser keeps every part's headers
(lower-cased names).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

from smartlock.errors import CameraError

BOUNDARY = "FRAME"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
MAX_PART_BYTES = 16 * 2**20  # a part larger than this is refused, not buffered: no camera frame is that big
MAX_HEADER_BYTES = 64 * 2**10
JPEG_SOI = b"\xff\xd8"
JPEG_EOI = b"\xff\xd9"

Part = tuple[dict[str, str], bytes]

# why a stream is not MJPEG we can use (``BadStream.reason``)
TOO_LARGE = "part-too-large"  # a part announced or ran past the size limit
NO_BOUNDARY = "no-boundary"  # bytes that never reached a boundary line
BAD_HEADER = "bad-header"  # a part header over MAX_HEADER_BYTES


class BadStream(CameraError):
    """The bytes are not a multipart stream within the limits; ``reason`` says which limit, for counts."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def format_timestamp(timestamp: float) -> str:
    """X-Timestamp as the camera writes it (and signs it): unix seconds with six decimals."""
    return f"{timestamp:.6f}"


def build_part(jpeg: bytes, timestamp: float, headers: Mapping[str, str] | None = None) -> bytes:
    """One multipart part, built once per frame and sent as-is to every client; ``headers`` (the frame
    signature, see ``smartlock.camera.signing``) are added after X-Timestamp."""
    extra = "".join(
        f"{name}: {value}\r\n" for name, value in (headers or {}).items() if name.lower() != "x-timestamp"
    )
    head = (
        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
        f"X-Timestamp: {format_timestamp(timestamp)}\r\n{extra}\r\n"
    )
    return head.encode("latin-1") + jpeg + b"\r\n"


def header_param(value: str, name: str) -> str | None:
    """A parameter of a header value, e.g. the boundary of a multipart Content-Type."""
    match = re.search(rf"{name}\s*=\s*(\"[^\"]*\"|[^;\s]+)", value, re.IGNORECASE)
    return match.group(1).strip('"') if match else None


def boundary_of(content_type: str) -> str | None:
    """The boundary of a ``multipart/...`` Content-Type (a leading ``--`` dropped); None for other types."""
    if not content_type.strip().lower().startswith("multipart/"):
        return None
    boundary = (header_param(content_type, "boundary") or "").removeprefix("--")
    return boundary or None


class MultipartParser:
    """Splits a multipart/x-mixed-replace byte stream into (headers, body) parts, however it is chunked.

    Uses Content-Length when a part has one; otherwise the body runs to the next boundary line. Cameras
    disagree on whether the delimiter line is ``--BOUNDARY`` or just ``BOUNDARY`` (and some declare
    ``boundary=--B``), so a line of dashes followed by the boundary counts. ``next_part`` returns None
    when the stream ends (``truncated`` then says whether it ended inside a part); a part over
    ``max_part_bytes``, or that many bytes without a boundary line, is a ``BadStream`` (a CameraError),
    so the buffer never holds much more than ``max_part_bytes`` plus one chunk.
    """

    def __init__(self, chunks: Iterable[bytes], boundary: str, max_part_bytes: int = MAX_PART_BYTES) -> None:
        self._chunks = iter(chunks)
        self.max_part_bytes = max_part_bytes
        self.truncated = False  # the bytes ran out inside a part (its header or body)
        marker = boundary.encode("latin-1")
        self._marker = marker.lstrip(b"-") or marker
        # A body without Content-Length ends at a line break before a delimiter or closing line.
        self._body_end = re.compile(rb"\r?\n-*" + re.escape(self._marker) + rb"(?:--|[ \t]*\r?\n)")
        self._buffer = bytearray()
        self._line_bytes = 0  # what the last line took from the stream, its line break included

    def __iter__(self) -> Iterator[Part]:
        while (part := self.next_part()) is not None:
            yield part

    def next_part(self) -> Part | None:
        """The next part, or None at the closing boundary or when the bytes run out."""
        if not self._skip_to_delimiter():
            return None
        headers = self._read_headers()
        if headers is None:
            self.truncated = True
            return None
        length = headers.get("content-length", "")
        if length.isdigit():
            size = int(length)
            if size > self.max_part_bytes:
                raise BadStream(TOO_LARGE, f"the stream announced a part of {size} bytes "
                                           f"(at most {self.max_part_bytes})")
            body = self._read_exact(size)
        else:
            body = self._read_to_boundary()
        if body is None:
            self.truncated = True
            return None
        return headers, body

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._buffer += chunk
                return True
        return False

    def _read_line(self, limit: int) -> bytes | None:
        """One line without its CR LF; None at the end of the stream."""
        searched = 0
        while (end := self._buffer.find(b"\n", searched)) < 0:
            searched = len(self._buffer)
            if searched > limit:
                raise BadStream(NO_BOUNDARY, f"the stream sent a line of more than {limit} bytes: not MJPEG")
            if not self._fill():
                return None
        line = bytes(self._buffer[:end]).rstrip(b"\r")
        del self._buffer[: end + 1]
        self._line_bytes = end + 1
        return line

    def _skip_to_delimiter(self) -> bool:
        """Drop the preamble or the blank line between parts; False at the closing line or the end.
        More than ``max_part_bytes`` of lines without a delimiter is a BadStream: it is not MJPEG."""
        skipped = 0
        while True:
            line = self._read_line(self.max_part_bytes - skipped)
            if line is None:
                return False
            skipped += self._line_bytes
            if skipped > self.max_part_bytes:
                raise BadStream(NO_BOUNDARY, f"no boundary line in {self.max_part_bytes} bytes: not MJPEG")
            rest = line.lstrip(b"-")
            if rest.startswith(self._marker):
                tail = rest[len(self._marker) :]
                if tail.startswith(b"--"):
                    return False
                if not tail.strip():
                    return True

    def _read_headers(self) -> dict[str, str] | None:
        headers: dict[str, str] = {}
        size = 0
        while line := self._read_line(MAX_HEADER_BYTES):
            size += len(line)
            if size > MAX_HEADER_BYTES:
                raise BadStream(BAD_HEADER, f"the stream sent a part header over {MAX_HEADER_BYTES} bytes")
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return None if line is None else headers

    def _read_exact(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if not self._fill():
                return None
        body = bytes(self._buffer[:size])
        del self._buffer[:size]
        return body

    def _read_to_boundary(self) -> bytes | None:
        start = 0
        while (match := self._body_end.search(self._buffer, start)) is None:
            if len(self._buffer) > self.max_part_bytes:
                raise BadStream(TOO_LARGE, f"a part without an end in {self.max_part_bytes} bytes")
            start = max(0, len(self._buffer) - len(self._marker) - 64)  # a delimiter may straddle chunks
            if not self._fill():
                return None
        body = bytes(self._buffer[: match.start()])
        del self._buffer[: match.start()]  # the delimiter line stays for the next part
        return body


def iter_multipart(chunks: Iterable[bytes], boundary: str) -> Iterator[Part]:
    """The parts of an upstream stream that should never end: its end is a CameraError."""
    yield from MultipartParser(chunks, boundary)
    raise CameraError("the upstream stream ended")


def parse_timestamp(value: str | None) -> float | None:
    """X-Timestamp as epoch seconds: a number of seconds or an ISO 8601 date-time; None if neither."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def part_timestamp(headers: dict[str, str]) -> float:
    """An upstream camera's capture time (kept along a relay chain) when sane, else the time of arrival."""
    stamp = parse_timestamp(headers.get("x-timestamp"))
    return stamp if stamp is not None and 1e9 < stamp < 1e11 else time.time()


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
