"""A camera that sends bad input costs a log line and a reconnect: never a crash, a bad frame or an unlock.

Each case is a real uvicorn server on 127.0.0.1 whose first connections get a bad stream (garbage, parts
that are not whole JPEGs, a huge or endless part, an 8K frame, a stream cut mid-part, silence, a drip of
bytes) and every later one good signed frames. The bad parts are signed too (a camera relaying a broken
upstream signs what it relays), so they get past the signature check to the checks under test. The
reader must log one WARNING for the outage, reconnect, and then hand on the good frames, having handed
on nothing else; the 8K frame is never decoded. Two cases run a real ``smartlock engine`` against a real
door on the mock relay, with bad frames that show a face: the door never opens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse

from smartlock.camera.imaging import encode_jpeg_bgr
from smartlock.camera.mjpeg import CONTENT_TYPE, MultipartParser, build_part
from smartlock.camera.signing import FrameGate, FrameSigner
from smartlock.engine.frames import MAX_PART_BYTES, Frame, LatestFrameReader, StreamOpener
from smartlock.errors import CameraError
from tests.engine import system
from tests.support import uvicorn_server, wait_for

TOKEN = "the-bad-camera-token"
GOOD_LEVEL = 200
BAD_CONNECTIONS = 2
TIMEOUT = 1.0  # the reader's network timeout (its part timeout is twice that)
FRAMES_LOGGER = "smartlock.engine.frames"
CHUNK = 64 * 2**10


def solid(level: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    return np.full((size[1], size[0], 3), level, dtype=np.uint8)


def eight_k_jpeg(image: np.ndarray | None = None) -> bytes:
    """A 7680x4320 JPEG: ``image`` scaled up (default a plain grey frame)."""
    import cv2

    base = image if image is not None else solid(30, (640, 360))
    return encode_jpeg_bgr(cv2.resize(base, (7680, 4320), interpolation=cv2.INTER_LINEAR), 80)


class BadCamera:
    """``mode`` for the first ``bad_connections`` connections, then good signed frames (GOOD_LEVEL).

    ``bad_jpeg`` is the picture the bad parts are cut from (a face, for the engine cases).
    """

    def __init__(self, mode: str, *, token: str | None = TOKEN, bad_connections: int = BAD_CONNECTIONS,
                 bad_jpeg: bytes | None = None, good_jpeg: bytes | None = None) -> None:
        self.mode = mode
        self.bad_connections = bad_connections
        self.connections = 0
        self.signer = FrameSigner(token) if token else None
        self.sequence = 0
        self.bad_jpeg = bad_jpeg or encode_jpeg_bgr(solid(30, (320, 240)))
        self.good_jpeg = good_jpeg or encode_jpeg_bgr(solid(GOOD_LEVEL))
        self.app = FastAPI()
        self.app.add_api_route("/stream.mjpg", self.stream, methods=["GET"])

    def part(self, jpeg: bytes, headers: dict[str, str] | None = None) -> bytes:
        """A part as our camera sends it, signed when the camera has a token."""
        self.sequence += 1
        now = time.time()
        signed = self.signer.headers(jpeg, now, self.sequence) if self.signer else {}
        return build_part(jpeg, now, {**signed, **(headers or {})})

    def signed_head(self, jpeg: bytes) -> bytes:
        """The header of a signed part for ``jpeg`` (up to and including the blank line)."""
        whole = self.part(jpeg)
        return whole[: whole.index(b"\r\n\r\n") + 4]

    async def stream(self) -> Response:
        self.connections += 1
        if self.connections > self.bad_connections:
            return StreamingResponse(self.good(), media_type=CONTENT_TYPE)
        if self.mode == "silent":  # accepts and never sends a byte (bounded, so the server can stop)
            await asyncio.sleep(4 * TIMEOUT)
            return Response(status_code=204)
        if self.mode == "not-multipart":
            return StreamingResponse(self.repeat(b"this is not a camera\n", 100), media_type="text/plain")
        return StreamingResponse(getattr(self, self.mode.replace("-", "_"))(), media_type=CONTENT_TYPE)

    # -- the good stream, and the bad ones ------------------------------------------------------------

    def good(self) -> Iterator[bytes]:
        for _ in range(1000):
            yield self.part(self.good_jpeg)
            time.sleep(0.03)

    @staticmethod
    def repeat(data: bytes, times: int) -> Iterator[bytes]:
        for _ in range(times):
            yield data

    def garbage(self) -> Iterator[bytes]:  # random bytes (with the odd line break): never a boundary
        for _ in range(MAX_PART_BYTES // CHUNK * 3 // 2):
            yield os.urandom(CHUNK)

    def long_line(self) -> Iterator[bytes]:  # one endless line
        yield from self.repeat(b"x" * CHUNK, MAX_PART_BYTES // CHUNK * 3 // 2)

    def not_jpeg(self) -> Iterator[bytes]:
        for _ in range(50):
            yield self.part(b"<html><body>Camera busy</body></html>")

    def empty(self) -> Iterator[bytes]:
        for _ in range(50):
            yield self.part(b"")

    def truncated(self) -> Iterator[bytes]:  # whole parts, but each JPEG is cut short
        for _ in range(50):
            yield self.part(self.bad_jpeg[: len(self.bad_jpeg) * 7 // 10])

    def eight_k(self) -> Iterator[bytes]:
        for _ in range(20):
            yield self.part(self.bad_jpeg)
            time.sleep(0.03)

    def huge_length(self) -> Iterator[bytes]:
        yield b"--FRAME\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000000000\r\n\r\n"
        yield from self.repeat(b"\xff" * CHUNK, 50)

    def endless_part(self) -> Iterator[bytes]:  # no Content-Length, and no boundary ever comes
        yield b"--FRAME\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8"
        yield from self.repeat(b"\x00" * CHUNK, MAX_PART_BYTES // CHUNK * 3 // 2)

    def cut_mid_part(self) -> Iterator[bytes]:  # the server ends the response half-way through a JPEG
        yield self.signed_head(self.bad_jpeg) + self.bad_jpeg[: len(self.bad_jpeg) // 2]

    def reset_mid_part(self) -> Iterator[bytes]:  # the server drops the connection half-way through
        yield self.signed_head(self.bad_jpeg) + self.bad_jpeg[: len(self.bad_jpeg) // 2]
        raise RuntimeError("the camera crashed mid-part (on purpose, for the test)")

    def silent_after_headers(self) -> Iterator[bytes]:  # answers 200, then never a byte of body
        time.sleep(4 * TIMEOUT)
        yield b""

    def drip(self) -> Iterator[bytes]:  # a byte now and then: never a read timeout, never a whole part
        head = self.signed_head(self.bad_jpeg)
        yield head
        for index in range(40):
            time.sleep(TIMEOUT / 4)
            yield self.bad_jpeg[index : index + 1]


# mode -> the reason the reader counts for it
EXPECTED = {
    "not-multipart": "open-failed",
    "garbage": "no-boundary",
    "long-line": "no-boundary",
    "not-jpeg": "not-jpeg",
    "empty": "empty",
    "truncated": "truncated",
    "eight-k": "oversized",
    "huge-length": "part-too-large",
    "endless-part": "part-too-large",
    "cut-mid-part": "cut",
    "reset-mid-part": "network",
    "silent": "open-failed",
    "silent-after-headers": "network",
    "drip": "stalled",
}


@pytest.fixture(scope="module")
def eight_k() -> bytes:
    return eight_k_jpeg()


class Recorder:
    """Every frame a reader hands on, and every buffer OpenCV is asked to decode."""

    def __init__(self, reader: LatestFrameReader, monkeypatch: pytest.MonkeyPatch) -> None:
        import cv2

        self.frames: list[Frame] = []
        self.decoded: list[int] = []  # byte lengths given to cv2.imdecode
        publish, imdecode = reader._publish, cv2.imdecode

        def recording_publish(image: np.ndarray, captured: float | None) -> None:
            publish(image, captured)
            latest = reader.latest()
            assert latest is not None
            self.frames.append(latest)

        def recording_imdecode(buffer: Any, flags: int) -> Any:
            self.decoded.append(len(buffer))
            return imdecode(buffer, flags)

        monkeypatch.setattr(reader, "_publish", recording_publish)
        monkeypatch.setattr(cv2, "imdecode", recording_imdecode)


def frames_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == FRAMES_LOGGER and r.levelno >= logging.WARNING]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", list(EXPECTED))
def test_a_bad_stream_costs_one_line_and_a_reconnect_then_good_frames_flow(
    mode: str, eight_k: bytes, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    camera = BadCamera(mode, bad_jpeg=eight_k if mode == "eight-k" else None)
    with uvicorn_server(camera.app) as base:
        url = f"{base}/stream.mjpg"
        gate = FrameGate(TOKEN, where=url)
        reader = LatestFrameReader(url, opener=StreamOpener(gate=gate, timeout=TIMEOUT), backoff=(0.05, 0.2))
        recorder = Recorder(reader, monkeypatch)
        with reader:
            reason = EXPECTED[mode]
            wait_for(lambda: reader.problems.counts.get(reason, 0) >= BAD_CONNECTIONS,
                     what=f"{BAD_CONNECTIONS} connections dropped for {reason}")
            frame = wait_for(lambda: reader.wait_newer(0, timeout=1.0), what="a good frame")
            wait_for(lambda: any("is back after" in r.getMessage() for r in caplog.records),
                     what="the end of the outage")
            assert reader._thread is not None and reader._thread.is_alive()

    assert int(frame.image.mean().round()) == pytest.approx(GOOD_LEVEL, abs=3)
    assert camera.connections >= BAD_CONNECTIONS + 1 and reader.connections >= 1
    # nothing but the good frames was handed on, and all problems were of the expected kind
    assert recorder.frames and all(f.image.shape == (48, 64, 3) and
                                   abs(float(f.image.mean()) - GOOD_LEVEL) < 3 for f in recorder.frames)
    assert set(reader.problems.counts) == {reason}, reader.problems.counts
    assert reader.problems.outages == 1
    # one WARNING for the whole outage (not one per part or per reconnect), naming what was wrong
    warnings = frames_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert reason in warnings[0] or "Cannot open video stream" in warnings[0]
    assert gate.rejected.total == 0  # the bad parts were signed: the checks under test refused them
    if mode == "eight-k":  # refused by its header, never decoded
        assert len(eight_k) not in recorder.decoded
        assert recorder.decoded  # the good frames were


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["garbage", "truncated", "empty", "eight-k", "not-multipart"])
def test_without_a_token_bad_streams_are_refused_the_same_way(
    mode: str, eight_k: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    camera = BadCamera(mode, token=None, bad_jpeg=eight_k if mode == "eight-k" else None)
    with uvicorn_server(camera.app) as base:
        reader = LatestFrameReader(f"{base}/stream.mjpg", opener=StreamOpener(timeout=TIMEOUT),
                                   backoff=(0.05, 0.2))
        with reader:
            frame = wait_for(lambda: reader.wait_newer(0, timeout=1.0), what="a good frame")
    assert int(frame.image.mean().round()) == pytest.approx(GOOD_LEVEL, abs=3)
    # (not MJPEG: the reader tries OpenCV on the same URL, a second connection, before it gives up)
    assert reader.problems.counts == {EXPECTED[mode]: 1 if mode == "not-multipart" else BAD_CONNECTIONS}
    warnings = [w for w in frames_warnings(caplog) if "NOT authenticated" not in w]
    assert len(warnings) == 1, warnings


def test_an_outage_that_goes_on_logs_once_however_many_reconnects(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    camera = BadCamera("truncated", bad_connections=10)
    with uvicorn_server(camera.app) as base:
        url = f"{base}/stream.mjpg"
        opener = StreamOpener(gate=FrameGate(TOKEN, where=url), timeout=TIMEOUT)
        reader = LatestFrameReader(url, opener=opener, backoff=(0.01, 0.02))
        with reader:
            wait_for(lambda: reader.wait_newer(0, timeout=1.0), what="a good frame after ten bad connections")
    assert reader.problems.counts == {"truncated": 10} and reader.problems.outages == 1
    assert len(frames_warnings(caplog)) == 1
    debug = [r for r in caplog.records if r.name == FRAMES_LOGGER and r.levelno == logging.DEBUG
             and "truncated" in r.getMessage()]
    assert len(debug) == 9  # the rest of the outage, for whoever runs at DEBUG


# -- the parser keeps its memory bounded ------------------------------------------------------------


class Counted:
    """An endless byte source that counts what was taken from it."""

    def __init__(self, head: bytes, filler: bytes) -> None:
        self.head, self.filler, self.taken = head, filler, 0

    def __iter__(self) -> Iterator[bytes]:
        self.taken += len(self.head)
        yield self.head
        for _ in range(10_000):  # bounded: 10,000 chunks are far past any cap
            self.taken += len(self.filler)
            yield self.filler


@pytest.mark.parametrize(("head", "filler"), [
    (b"", b"x" * CHUNK),  # one endless line
    (b"", b"garbage\r\n" * (CHUNK // 9)),  # lines, but never a boundary
    (b"--FRAME\r\n\r\n", b"\x00" * CHUNK),  # a part that never ends
    (b"--FRAME\r\n\r\n", b"\x00\r\n" * (CHUNK // 3)),
])
def test_the_parser_gives_up_after_its_cap_without_buffering_more(head: bytes, filler: bytes) -> None:
    cap = 2**20
    source = Counted(head, filler)
    with pytest.raises(CameraError):
        MultipartParser(iter(source), "FRAME", max_part_bytes=cap).next_part()
    assert source.taken <= cap + len(head) + 2 * CHUNK


def test_the_parser_refuses_a_huge_content_length_before_reading_it() -> None:
    source = Counted(b"--FRAME\r\nContent-Length: 1000000000000\r\n\r\n", b"\xff" * CHUNK)
    with pytest.raises(CameraError, match="1000000000000"):
        MultipartParser(iter(source), "FRAME", max_part_bytes=2**20).next_part()
    assert source.taken <= 2 * CHUNK


def test_the_parser_says_when_the_stream_ended_mid_part() -> None:
    whole = build_part(b"\xff\xd8" + b"x" * 100 + b"\xff\xd9", 1.0)
    parser = MultipartParser(iter([whole, whole[:60]]), "FRAME")
    assert parser.next_part() is not None and not parser.truncated
    assert parser.next_part() is None and parser.truncated
    clean = MultipartParser(iter([whole]), "FRAME")
    assert clean.next_part() is not None and clean.next_part() is None and not clean.truncated


# -- a real engine process against a real door ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.faces
@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["eight-k", "truncated"])
def test_a_real_engine_survives_a_bad_camera_showing_a_face_and_never_unlocks(
    mode: str, faces_dir: Path, tmp_path: Path
) -> None:
    """The bad frames show an enrolled face and the recognition API says "alice 0.99" to anything, so a
    bad frame reaching recognition would open the door; the good frames that follow are a plain wall."""
    logs = tmp_path / "service-logs"
    logs.mkdir()
    face = system.on_canvas(system.face_photo(faces_dir))
    bad_jpeg = eight_k_jpeg(face) if mode == "eight-k" else encode_jpeg_bgr(face)
    camera = BadCamera(mode, bad_jpeg=bad_jpeg, good_jpeg=encode_jpeg_bgr(system.background()))
    token_file = tmp_path / "camera.token"
    token_file.touch(mode=0o600)
    token_file.write_text(TOKEN)
    with uvicorn_server(camera.app) as base, system.fake_recognition() as recognition, \
            system.door(tmp_path, logs, lock_delay=0.5) as door:
        start_id = door.last_id()
        args = ["engine", "--camera-url", f"{base}/stream.mjpg", "--camera-token-file", str(token_file),
                "--face-recognition-api-url", recognition.url, "--door-api-url", door.unlock_url,
                "--door-secret-file", str(door.secret_file), "--log-path", str(tmp_path / "engine-log"),
                "--min-frames", "1", "--log-level", "DEBUG",
                "--liveness", "off"]  # no unlock must be the bad frames' doing, not liveness'
        with system.smartlock_process(args, logs / "engine.out") as engine:
            try:
                wait_for(lambda: "is back after" in engine.text(), timeout=90, interval=0.2,
                         what="the reader to get good frames after the bad ones")
                at_recovery = engine.counts()["seen"]
                wait_for(lambda: engine.counts()["seen"] >= at_recovery + 3, timeout=60, interval=0.2,
                         what="the engine to look at three good frames")
                assert engine.popen.poll() is None  # still running
                text = engine.text()
                assert text.count("reconnecting with backoff") == 1, text[-3000:]
                assert f": {EXPECTED[mode]} (" in text
                assert camera.connections >= BAD_CONNECTIONS + 1
            except AssertionError as err:
                raise AssertionError(f"{err}; engine:\n{engine.text()[-3000:]}") from None
        assert door.unlocks(start_id) == []  # the relay never moved
        assert recognition.calls == []  # no bad frame reached recognition; the wall has no face
    assert engine.popen.returncode == 0
