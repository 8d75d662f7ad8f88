"""The MJPEG wire format: parts we build, parts we parse (however the bytes are chunked), JPEG sizes."""

from __future__ import annotations

import pytest

from smartlock.camera.mjpeg import (
    MAX_PART_BYTES,
    MultipartParser,
    boundary_of,
    build_part,
    header_param,
    iter_multipart,
    jpeg_size,
    part_timestamp,
)
from smartlock.errors import CameraError
from smartlock.logs import redact_url
from tests.camera.media import jpeg_bytes, solid_image


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_part_is_the_seed_format_plus_a_capture_timestamp() -> None:
    part = build_part(b"\xff\xd8JPEG\xff\xd9", 1712345678.25)
    assert part == (
        b"--FRAME\r\nContent-Type: image/jpeg\r\nContent-Length: 8\r\nX-Timestamp: 1712345678.250000\r\n\r\n"
        b"\xff\xd8JPEG\xff\xd9\r\n"
    )


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 100_000])
def test_parts_survive_any_chunking(chunk_size: int) -> None:
    jpegs = [jpeg_bytes(solid_image((i * 40, 0, 0))) for i in range(4)]
    stream = b"".join(build_part(j, 1_700_000_000 + i) for i, j in enumerate(jpegs))
    parts = iter_multipart(chunked(stream, chunk_size), "FRAME")
    got = [next(parts) for _ in jpegs]
    assert [body for _, body in got] == jpegs
    assert [part_timestamp(h) for h, _ in got] == [1_700_000_000 + i for i in range(4)]
    with pytest.raises(CameraError, match="ended"):
        next(parts)


def test_parts_without_content_length_and_with_a_dashed_boundary_parameter() -> None:
    # Some IP cameras declare boundary=--myboundary and then write "--myboundary" lines, no lengths.
    jpegs = [jpeg_bytes(solid_image((0, i * 50, 0))) for i in range(3)]
    stream = b"".join(b"--myboundary\r\nContent-Type: image/jpeg\r\n\r\n" + j + b"\r\n" for j in jpegs)
    stream += b"--myboundary--\r\n"
    parts = iter_multipart(chunked(stream, 333), "--myboundary")
    assert [next(parts)[1] for _ in jpegs] == jpegs
    with pytest.raises(CameraError, match="ended"):
        next(parts)


def test_an_absurd_part_length_is_refused_not_buffered() -> None:
    stream = b"--FRAME\r\nContent-Type: image/jpeg\r\nContent-Length: 999999999999\r\n\r\n\xff\xd8"
    with pytest.raises(CameraError, match="part of"):
        next(iter_multipart([stream], "FRAME"))


def test_timestamps_from_upstream_are_kept_only_when_sane() -> None:
    assert part_timestamp({"x-timestamp": "1712345678.5"}) == 1712345678.5
    assert part_timestamp({"x-timestamp": "12"}) > 1e9  # nonsense: replaced by the arrival time
    assert part_timestamp({"x-timestamp": "soon"}) > 1e9
    assert part_timestamp({}) > 1e9


def test_jpeg_size_reads_the_frame_header() -> None:
    assert jpeg_size(jpeg_bytes(solid_image((1, 2, 3), size=(321, 123)))) == (321, 123)
    assert jpeg_size(b"not a jpeg") is None
    assert jpeg_size(b"\xff\xd8\xff") is None


def test_header_param_and_url_redaction() -> None:
    assert header_param("multipart/x-mixed-replace; boundary=FRAME", "boundary") == "FRAME"
    assert header_param('multipart/x-mixed-replace;boundary="a b"', "boundary") == "a b"
    assert header_param("image/jpeg", "boundary") is None
    redacted = redact_url("http://admin:hunter2@cam.local/stream.mjpg?token=s3cret&x=1")
    assert "hunter2" not in redacted and "s3cret" not in redacted
    assert redacted.startswith("http://admin:***@cam.local/stream.mjpg?") and "x=1" in redacted


@pytest.mark.parametrize("declared", ["FRAME", "--FRAME"])
@pytest.mark.parametrize("written", [b"--FRAME", b"FRAME", b"----FRAME"])
def test_every_way_cameras_write_the_delimiter_is_understood(declared: str, written: bytes) -> None:
    jpegs = [jpeg_bytes(solid_image((0, 0, i * 60))) for i in range(3)]
    stream = b"".join(written + b"\r\nContent-Type: image/jpeg\r\n\r\n" + j + b"\r\n" for j in jpegs)
    stream += written + b"--\r\n"
    boundary = boundary_of(f"multipart/x-mixed-replace; boundary={declared}")
    assert boundary == "FRAME"
    assert [body for _, body in MultipartParser(chunked(stream, 500), declared)] == jpegs


def test_a_boundary_inside_a_line_of_the_body_does_not_end_it() -> None:
    body = b"\xff\xd8 text --FRAME mid-line\r\n--FRAMED is not it either\xff\xd9"
    stream = b"--FRAME\nX-Timestamp: 1700000000\n\n" + body + b"\r\n--FRAME--\r\n"  # LF-only headers too
    [(headers, got)] = list(MultipartParser(chunked(stream, 3), "FRAME"))
    assert got == body and part_timestamp(headers) == 1_700_000_000


def test_one_size_cap_for_every_reader() -> None:
    endless = [b"--FRAME\r\n\r\n"] + [b"y" * 2**20] * (MAX_PART_BYTES // 2**20 + 2)
    with pytest.raises(CameraError, match="without an end"):
        next(iter_multipart(endless, "FRAME"))
