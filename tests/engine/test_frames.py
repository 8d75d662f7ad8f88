"""Reading camera streams: the multipart parser, MJPEG over real HTTP, video files, reconnecting."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from smartlock.camera.mjpeg import MultipartParser, boundary_of, parse_timestamp
from smartlock.engine.access import stream_opener
from smartlock.engine.frames import (
    LatestFrameReader,
    MjpegStream,
    NotMultipart,
    OpenCVStream,
    StreamOpener,
    open_stream,
)
from smartlock.engine.vision import encode_jpeg_bgr
from smartlock.errors import CameraError
from tests.camera.rogue import VARIANTS, RogueCamera
from tests.support import uvicorn_server, wait_for


def solid(value: int, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    return np.full((*shape, 3), value, dtype=np.uint8)


def multipart(parts: list[tuple[dict[str, str], bytes]], boundary: str = "FRAME",
              close: bool = True) -> bytes:
    out = b"preamble to ignore\r\n"
    for headers, body in parts:
        out += f"--{boundary}\r\n".encode()
        out += b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n" + body + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    return iter([data[i : i + size] for i in range(0, len(data), size)])


@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
@pytest.mark.parametrize("with_length", [True, False])
def test_parser_splits_parts_whatever_the_chunking(chunk_size: int, with_length: bool) -> None:
    bodies = [b"\xff\xd8first\r\n--FRAM not a boundary", b"", b"third\xff\xd9"]
    parts = []
    for index, body in enumerate(bodies):
        headers = {"Content-Type": "image/jpeg", "X-Timestamp": str(100 + index)}
        if with_length:
            headers["Content-Length"] = str(len(body))
        parts.append((headers, body))
    parser = MultipartParser(chunked(multipart(parts), chunk_size), "FRAME")
    got = []
    while (part := parser.next_part()) is not None:
        got.append(part)
    assert [body for _, body in got] == bodies
    assert [headers["x-timestamp"] for headers, _ in got] == ["100", "101", "102"]


def test_parser_stops_at_a_truncated_stream() -> None:
    data = multipart([({"Content-Length": "100"}, b"x" * 100)], close=False)[:-30]
    assert MultipartParser(chunked(data, 10), "FRAME").next_part() is None


def test_parser_refuses_an_endless_part() -> None:
    endless = iter([b"--FRAME\r\n\r\n"] + [b"y" * 2**20] * 20)
    with pytest.raises(CameraError):
        MultipartParser(endless, "FRAME").next_part()


@pytest.mark.parametrize(("value", "expected"), [
    ("1700000000.25", 1700000000.25),
    ("2023-11-14T22:13:20.250000+00:00", 1700000000.25),
    ("2023-11-14T22:13:20.25Z", 1700000000.25),
    ("yesterday", None), ("", None), (None, None),
])
def test_parse_timestamp(value: str | None, expected: float | None) -> None:
    assert parse_timestamp(value) == expected


def test_boundary_of() -> None:
    assert boundary_of("multipart/x-mixed-replace; boundary=FRAME") == "FRAME"
    assert boundary_of('multipart/x-mixed-replace;boundary="--frame"') == "frame"
    assert boundary_of("image/jpeg") is None


def mjpeg_app(frames: int, period: float = 0.02, drop_after: int | None = None):
    """A small MJPEG server: ``frames`` solid frames whose gray level is the frame index."""
    from fastapi import FastAPI, Header
    from fastapi.responses import JSONResponse, StreamingResponse

    app = FastAPI()
    app.state.connections = 0

    @app.get("/stream.mjpg")
    def stream(authorization: str | None = Header(None)) -> StreamingResponse:
        app.state.connections += 1
        app.state.authorization = authorization

        def generate() -> Iterator[bytes]:
            count = frames if drop_after is None else drop_after
            for index in range(count):
                jpeg = encode_jpeg_bgr(solid(index * 10 % 250))
                yield (b"--FRAME\r\nContent-Type: image/jpeg\r\n"
                       + f"Content-Length: {len(jpeg)}\r\nX-Timestamp: {time.time():.6f}\r\n\r\n".encode()
                       + jpeg + b"\r\n")
                time.sleep(period)

        return StreamingResponse(generate(), media_type="multipart/x-mixed-replace; boundary=FRAME")

    @app.get("/status")
    def status() -> JSONResponse:
        return JSONResponse({"ok": True})

    return app


def test_mjpeg_stream_over_real_http_keeps_capture_times() -> None:
    with uvicorn_server(mjpeg_app(frames=5)) as base:
        stream = MjpegStream(f"{base}/stream.mjpg")
        try:
            got = []
            while (item := stream.read()) is not None:
                got.append(item)
        finally:
            stream.close()
    assert len(got) == 5
    levels = [int(image.mean().round()) for image, _ in got]
    assert levels == pytest.approx([0, 10, 20, 30, 40], abs=2)
    assert all(abs(captured - time.time()) < 30 for _, captured in got)


def test_open_stream_sends_the_headers_it_is_given() -> None:
    app = mjpeg_app(frames=1)
    with uvicorn_server(app) as base:
        stream = open_stream(f"{base}/stream.mjpg", headers={"Authorization": "Bearer t0ken"})
        try:
            assert stream.read() is not None
        finally:
            stream.close()
    assert app.state.authorization == "Bearer t0ken"


def test_open_stream_refuses_what_is_not_a_stream() -> None:
    with uvicorn_server(mjpeg_app(frames=1)) as base:
        with pytest.raises(NotMultipart):
            MjpegStream(f"{base}/status")
        with pytest.raises(CameraError):
            MjpegStream(f"{base}/missing")
        with pytest.raises(CameraError):  # neither MJPEG nor anything OpenCV can open
            open_stream(f"{base}/status", timeout=2)


def test_reader_keeps_only_the_newest_frame_and_reconnects_after_a_drop() -> None:
    app = mjpeg_app(frames=0, drop_after=3, period=0.05)
    with uvicorn_server(app) as base:
        reader = LatestFrameReader(f"{base}/stream.mjpg", backoff=(0.05, 0.2)).start()
        try:
            seen = []
            seq = 0
            deadline = time.monotonic() + 20
            while len(seen) < 8 and time.monotonic() < deadline:
                frame = reader.wait_newer(seq, timeout=1.0)
                if frame is not None:
                    seen.append(frame)
                    seq = frame.seq
        finally:
            reader.stop()
    assert len(seen) == 8
    assert [f.seq for f in seen] == sorted({f.seq for f in seen})  # strictly newer each time
    assert reader.connections >= 3 and app.state.connections >= 3  # the server hung up after 3 frames
    assert all(frame.captured is not None for frame in seen)


def test_reader_backs_off_while_the_camera_is_away_then_recovers() -> None:
    attempts: list[float] = []

    class OneFrame:
        """One frame, then nothing until the reader closes it (as a camera that froze)."""

        def __init__(self) -> None:
            self.sent = False
            self.closed = threading.Event()

        def read(self):
            if self.sent:
                self.closed.wait(30)
                return None
            self.sent = True
            return solid(7), 123.0

        def close(self) -> None:
            self.closed.set()

    def opener(url: str):
        attempts.append(time.monotonic())
        if len(attempts) <= 4:
            raise CameraError("connection refused")
        return OneFrame()

    reader = LatestFrameReader("http://camera.invalid/stream.mjpg", opener=opener, backoff=(0.02, 0.08))
    with reader:
        frame = reader.wait_newer(0, timeout=5)
    assert frame is not None and frame.captured == 123.0
    gaps = np.diff(attempts[:5])
    # Exponential backoff: 0.02 s doubling up to the 0.08 s cap. Only lower bounds are checked: a busy
    # machine makes the pauses longer (comparing two of them was flaky there), never shorter.
    assert all(gap >= 0.95 * pause for gap, pause in zip(gaps, [0.02, 0.04, 0.08, 0.08], strict=True)), gaps
    assert reader.latest() is frame


def test_reader_stop_unblocks_waiters() -> None:
    reader = LatestFrameReader("x", opener=lambda url: (_ for _ in ()).throw(CameraError("no")),
                               backoff=(0.05, 0.05)).start()
    result: list[object] = []
    waiter = threading.Thread(target=lambda: result.append(reader.wait_newer(0, timeout=30)))
    waiter.start()
    wait_for(lambda: reader.slot.waiting == 1, what="the waiter to block")
    reader.stop()
    waiter.join(5)
    assert not waiter.is_alive() and result == [None]


def write_video(path: Path, levels: list[int], fps: float = 25.0) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for level in levels:
        writer.write(solid(level))
    writer.release()


def test_opencv_stream_reads_a_video_file_at_its_own_pace(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_video(path, [0, 60, 120, 180, 240], fps=10)
    stream = OpenCVStream(str(path))
    start = time.monotonic()
    levels = []
    while (item := stream.read()) is not None:
        levels.append(int(item[0].mean().round()))
        assert item[1] is None
    elapsed = time.monotonic() - start
    stream.close()
    assert levels == pytest.approx([0, 60, 120, 180, 240], abs=6)
    assert elapsed >= 0.35  # 5 frames at 10 fps, not as fast as the disk allows


def test_opencv_stream_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CameraError):
        OpenCVStream(str(tmp_path / "missing.mp4"))


# -- signed frames ---------------------------------------------------------------------------------

TOKEN = "the-camera-token"
DROP_REASON = {"unsigned": "unsigned", "wrong-key": "bad-signature", "stale": "stale", "replayed": "replayed"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_reader_holding_the_token_hands_on_no_frame_from_a_rogue_server(
    variant: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    wall = encode_jpeg_bgr(solid(20))
    rogue = RogueCamera(encode_jpeg_bgr(solid(200)), variant, camera_token=TOKEN, decoy=wall)
    with uvicorn_server(rogue.app, health_path="/health") as base:
        url = f"{base}/stream.mjpg"
        with LatestFrameReader(url, opener=stream_opener(url, TOKEN)) as reader:
            assert reader.rejected is not None
            wait_for(lambda: reader.rejected.total >= 20, what="20 dropped frames")
            latest = reader.latest()
    reason = DROP_REASON[variant]
    assert reader.rejected.counts[reason] == reader.rejected.total >= 20
    # the reader proved it holds the token without handing it to whoever answered the URL
    assert rogue.authorizations and all(a.startswith("Smartlock-Proof t=") for a in rogue.authorizations)
    assert not any(TOKEN in a for a in rogue.authorizations)
    assert rogue.sent >= 20
    if variant == "replayed":  # only the genuine decoy (an empty wall) got through
        assert latest is not None and latest.seq == 1
        assert int(latest.image.mean().round()) == pytest.approx(20, abs=3)
    else:
        assert latest is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("Dropping frames" in message for message in warnings) == 1, warnings
    assert not any("NOT authenticated" in message for message in warnings)


def test_a_reconnect_cannot_replay_frames_already_seen() -> None:
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    from smartlock.camera.mjpeg import CONTENT_TYPE, build_part
    from smartlock.camera.signing import FrameGate, FrameSigner

    signer = FrameSigner(TOKEN)
    recorded: list[bytes] = []
    app = FastAPI()

    @app.get("/stream.mjpg")
    def stream() -> StreamingResponse:
        if not recorded:  # the first connection gets genuine frames; every later one the same again
            for index in range(1, 4):
                jpeg, now = encode_jpeg_bgr(solid(index * 40)), time.time()
                recorded.append(build_part(jpeg, now, signer.headers(jpeg, now, index)))
        return StreamingResponse(iter(list(recorded)), media_type=CONTENT_TYPE)

    with uvicorn_server(app) as base:
        url = f"{base}/stream.mjpg"
        gate = FrameGate(TOKEN, where=url, max_age=600)  # freshness is not what this test is about
        reader = LatestFrameReader(url, opener=StreamOpener(gate=gate), backoff=(0.05, 0.1))
        with reader:
            wait_for(lambda: gate.rejected.counts["replayed"] >= 6, what="two reconnects' replays")
    assert reader.connections >= 3
    assert reader.latest() is not None and reader.latest().seq == 3  # the 3 genuine frames, once each
    assert gate.rejected.total == gate.rejected.counts["replayed"]


def test_holding_a_token_only_a_signed_mjpeg_stream_will_do() -> None:
    from smartlock.camera.signing import FrameGate

    gate = FrameGate(TOKEN, where="test")
    with uvicorn_server(mjpeg_app(frames=1)) as base, pytest.raises(CameraError, match="cannot be verified"):
        open_stream(f"{base}/status", timeout=2, gate=gate)  # no OpenCV fallback
    with pytest.raises(CameraError, match="http"):
        open_stream("rtsp://camera.invalid/stream", gate=gate)


def test_a_reader_without_a_token_warns_that_frames_are_not_authenticated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    with uvicorn_server(mjpeg_app(frames=50)) as base:
        url = f"{base}/stream.mjpg"
        with LatestFrameReader(url, opener=stream_opener(url, None)) as reader:
            assert reader.wait_newer(0, timeout=20) is not None  # unsigned frames are read, as before
    assert reader.rejected is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("NOT authenticated" in message for message in warnings) == 1


# -- reduced decoding --------------------------------------------------------------------------------


def sized_app(size: tuple[int, int], frames: int = 200):
    """An MJPEG server of ``size`` frames (a gradient, so scaling shows)."""
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    from smartlock.camera.mjpeg import CONTENT_TYPE, build_part

    ramp = np.linspace(0, 255, size[0], dtype=np.float32)
    image = np.repeat(np.repeat(ramp[None, :, None], size[1], axis=0), 3, axis=2).astype(np.uint8)
    jpeg = encode_jpeg_bgr(image)
    app = FastAPI()

    @app.get("/stream.mjpg")
    def stream() -> StreamingResponse:
        def generate() -> Iterator[bytes]:
            for _ in range(frames):
                yield build_part(jpeg, time.time())
                time.sleep(0.03)

        return StreamingResponse(generate(), media_type=CONTENT_TYPE)

    return app


@pytest.mark.parametrize(("size", "analysis_size", "expected"), [
    ((1280, 720), (640, 360), (360, 640, 3)),  # half
    ((2560, 1440), (640, 360), (360, 640, 3)),  # a quarter
    ((1280, 720), None, (720, 1280, 3)),  # no analysis size: full size, as before
    ((800, 600), (640, 360), (600, 800, 3)),  # not twice the analysis size: full size
])
@pytest.mark.parametrize("with_opener", [False, True])
def test_the_reader_decodes_large_frames_reduced_to_the_analysis_size(
    size: tuple[int, int], analysis_size: tuple[int, int] | None, expected: tuple[int, int, int],
    with_opener: bool,
) -> None:
    with uvicorn_server(sized_app(size)) as base:
        url = f"{base}/stream.mjpg"
        opener = {"opener": StreamOpener()} if with_opener else {}
        with LatestFrameReader(url, analysis_size=analysis_size, **opener) as reader:
            frame = reader.wait_newer(0, timeout=20)
    assert frame is not None and frame.image.shape == expected
