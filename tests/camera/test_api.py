"""The camera service on a real uvicorn over real media: OpenCV reads it, slow clients, outages, tokens."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np
import pytest

from smartlock.camera.api import create_app
from smartlock.camera.mjpeg import iter_multipart, part_timestamp
from smartlock.camera.signing import viewing_token
from smartlock.camera.sources import ImageFolderSource, VideoFileSource
from smartlock.camera.stream import FrameHub
from tests.camera.media import PALETTE, decode, jpeg_bytes, nearest_color, solid_image, stream_parts
from tests.support import uvicorn_server, wait_for


@contextlib.contextmanager
def server_errors() -> Iterator[list[logging.LogRecord]]:
    """ERROR records uvicorn logs (an exception in the app, a noisy disconnect) inside the block.

    Enter it after the server started: uvicorn's logging set-up replaces the handlers of its loggers.
    """
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.ERROR)
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn", "smartlock")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def read_with_opencv(url: str, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(url)
    try:
        assert capture.isOpened(), f"OpenCV could not open {url}"
        frames = []
        for _ in range(count):
            ok, frame = capture.read()
            assert ok, "OpenCV stopped reading the stream"
            frames.append(frame)
        return frames
    finally:
        capture.release()


def test_opencv_reads_the_stream_like_the_engine_does(camera_url: str) -> None:
    frames = read_with_opencv(f"{camera_url}/stream.mjpg", 25)
    assert all(frame.shape == (240, 320, 3) for frame in frames)
    assert {nearest_color(frame) for frame in frames} <= {0, 1, 2, 3}


def test_stream_parts_carry_length_and_capture_time(camera_url: str) -> None:
    with httpx.Client() as client:
        with client.stream("GET", f"{camera_url}/stream.mjpg") as response:
            assert response.headers["content-type"] == "multipart/x-mixed-replace; boundary=FRAME"
            assert response.headers["cache-control"] == "no-cache, private"
        before = time.time()
        parts = stream_parts(client, f"{camera_url}/stream.mjpg", 10)
    stamps = [part_timestamp(headers) for headers, _ in parts]
    assert all(headers["content-type"] == "image/jpeg" for headers, _ in parts)
    assert all(int(headers["content-length"]) == len(body) for headers, body in parts)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert before - 5 < stamps[0] <= time.time()
    assert all(decode(body).shape == (240, 320, 3) for _, body in parts)


def test_snapshot_page_and_health(camera_url: str) -> None:
    snapshot = httpx.get(f"{camera_url}/snapshot.jpg")
    assert snapshot.status_code == 200 and snapshot.headers["content-type"] == "image/jpeg"
    assert decode(snapshot.content).shape == (240, 320, 3)
    assert abs(float(snapshot.headers["x-timestamp"]) - time.time()) < 60
    for path in ("/", "/index.html"):
        page = httpx.get(camera_url + path)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert '<img id="stream" src="stream.mjpg"' in page.text
    health = wait_for(lambda: (h := httpx.get(f"{camera_url}/health").json())["fps"] > 0 and h, what="fps")
    assert health["state"] == "ok" and health["source"].startswith("file ") and health["nominal_fps"] == 20
    assert health["width"] == 320 and health["height"] == 240 and health["error"] is None
    assert 0 <= health["seconds_since_last_frame"] < 5 and health["frames"] > 0
    assert health["status"] == "ok" and health["part"] == "camera" and health["problems"] == []
    missing = httpx.get(f"{camera_url}/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"message": "Not Found"}


def noisy_folder(folder: Path, count: int = 2) -> Path:
    """Large, incompressible JPEGs (≈0.3 MB each) so a client that stops reading fills its buffers fast."""
    folder.mkdir()
    rng = np.random.default_rng(7)
    for i in range(count):
        (folder / f"{i}.jpg").write_bytes(jpeg_bytes(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)))
    return folder


def test_a_client_that_stops_reading_skips_frames_and_stalls_nobody(tmp_path: Path) -> None:
    source = ImageFolderSource(noisy_folder(tmp_path / "noise"), fps=25)
    source.open()
    hub = FrameHub(source)
    with uvicorn_server(create_app(hub), health_path="/health") as url, server_errors() as errors:
        address = urlsplit(url)
        stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small, so the server's side fills
        stalled.settimeout(10)
        stalled.connect((address.hostname, address.port))
        try:
            stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")  # HTTP/1.0: no chunked framing
            wait_for(lambda: hub.health()["clients"] == 1, what="the stalled client to connect")
            received: list[float] = []
            clients: set[int] = set()
            # Counted in frames, not seconds, so a busy machine only makes this take longer. 100 frames of
            # 0.3 MB are far more than the socket buffers between server and stalled client can hold.
            deadline = time.monotonic() + 60
            with httpx.Client() as client, client.stream("GET", f"{url}/stream.mjpg", timeout=10) as response:
                for headers, _body in iter_multipart(response.iter_raw(), "FRAME"):
                    received.append(part_timestamp(headers))
                    clients.add(hub.health()["clients"])
                    if len(received) >= FRESH_FRAMES or time.monotonic() > deadline:
                        break
            # The reader kept getting fresh frames the whole time the other client read nothing.
            assert clients == {2}, "the stalled client was dropped"
            assert len(received) == FRESH_FRAMES, "the reader stalled too"
            assert received == sorted(received) and len(set(received)) == len(received)
            # The stalled client now reads what was queued for it, then frames newer than any the reader
            # got. Frames it missed were skipped, not queued for it: it gets far fewer than the reader.
            stalled_stamps = read_stamps(stalled, until=received[-1])
        finally:
            stalled.close()
        assert stalled_stamps[0] <= received[0], "the stalled client's first frame came after the stall"
        assert len(stalled_stamps) < FRESH_FRAMES // 2, f"no frames were skipped: {len(stalled_stamps)} got"
        wait_for(lambda: hub.health()["clients"] == 0, what="disconnects to be noticed")
    assert not errors, [r.getMessage() for r in errors]


FRESH_FRAMES = 100


def read_stamps(sock: socket.socket, until: float, limit: int = 100_000_000) -> list[float]:
    """X-Timestamps from a raw HTTP/1.0 stream socket until one newer than ``until`` arrives."""
    stamps: list[float] = []
    data = bytearray()
    pattern = re.compile(rb"X-Timestamp: ([0-9.]+)\r\n")
    position = 0
    while len(data) < limit:
        chunk = sock.recv(1 << 20)
        assert chunk, "the server closed the stalled stream"
        data.extend(chunk)
        for match in pattern.finditer(data, position):
            stamps.append(float(match.group(1)))
            position = match.end()
        if stamps and stamps[-1] > until:
            return stamps
        del data[: max(0, position - 64)]
        position = min(position, 64)
    raise AssertionError("no current frame reached the stalled client")


def test_source_vanishing_and_coming_back(video_file: Path, tmp_path: Path) -> None:
    video = Path(shutil.copy(video_file, tmp_path / "door.mp4"))
    source = VideoFileSource(video)
    source.open()
    hub = FrameHub(source, backoff=(0.05, 0.3))
    with uvicorn_server(create_app(hub), health_path="/health") as url, httpx.Client() as client:
        with client.stream("GET", f"{url}/stream.mjpg", timeout=30) as viewer:
            parts = iter_multipart(viewer.iter_raw(), "FRAME")
            first_headers, _ = next(parts)
            os.rename(video, tmp_path / "unplugged.mp4")  # noticed when the loop reopens the file
            health = wait_for(
                lambda: (h := client.get(f"{url}/health").json())["state"] == "failing" and h,
                what="failing health",
            )
            assert "no such file" in health["error"] and "door.mp4" in health["error"]
            assert health["status"] == "degraded" and health["problems"] == [health["error"]]
            snapshot = client.get(f"{url}/snapshot.jpg")
            assert snapshot.status_code == 503 and "no such file" in snapshot.json()["message"]
            assert client.get(f"{url}/").status_code == 200  # the server keeps answering
            outage_seen = time.time()
            os.rename(tmp_path / "unplugged.mp4", video)
            wait_for(lambda: client.get(f"{url}/health").json()["state"] == "ok", what="recovery")
            assert client.get(f"{url}/snapshot.jpg").status_code == 200
            # The viewer that stayed connected through the outage gets frames again.
            for headers, body in parts:
                if part_timestamp(headers) > outage_seen:
                    assert decode(body).shape == (240, 320, 3)
                    break
        assert part_timestamp(first_headers) < outage_seen


def test_image_folder_slideshow_over_http(tmp_path: Path) -> None:
    names = ["1.jpg", "2.png", "3.jpg", "4.png"]
    for i, name in enumerate(names):
        cv2.imwrite(str(tmp_path / name), solid_image(PALETTE[i]))
    source = ImageFolderSource(tmp_path, fps=5)
    source.open()
    colors: list[int] = []
    with uvicorn_server(create_app(FrameHub(source)), health_path="/health") as url, httpx.Client() as client:
        with client.stream("GET", f"{url}/stream.mjpg", timeout=10) as response:
            for _headers, body in iter_multipart(response.iter_raw(), "FRAME"):
                colors.append(nearest_color(decode(body)))
                if set(colors) == set(range(len(names))) or len(colors) >= 40:
                    break
        assert client.get(f"{url}/health").json()["nominal_fps"] == 5
    assert set(colors) == set(range(len(names)))
    # In name order: each frame is the next image, or (when a busy server skipped one) the one after;
    # a reversed or shuffled show would step by 3 or repeat an image.
    steps = [(b - a) % len(names) for a, b in itertools.pairwise(colors)]
    assert set(steps) <= {1, 2} and steps.count(1) > 0, colors


@pytest.fixture
def token_url(video_hub: FrameHub) -> Iterator[str]:
    with uvicorn_server(create_app(video_hub, token="s3cret-token"), health_path="/health") as url:
        yield url


VIEW = viewing_token("s3cret-token")  # what people watch with; the secret itself signs frames


def test_token_is_required_for_frames_but_not_for_health(token_url: str) -> None:
    with httpx.Client(base_url=token_url, timeout=10) as client:
        for path in ("/snapshot.jpg", "/stream.mjpg"):
            for headers, params in [
                ({}, {}),
                ({"Authorization": "Bearer wrong"}, {}),
                ({"X-Token": VIEW[:-1]}, {}),
                ({}, {"token": VIEW + "-and-more"}),
                ({"Authorization": "Bearer s3cret-token"}, {}),  # the signing secret is no viewing token
            ]:
                refused = client.get(path, headers=headers, params=params)
                assert refused.status_code == 401, (path, headers, params)
                assert "token" in refused.json()["message"]
                assert refused.headers["www-authenticate"].startswith("Bearer")
        for headers, params in [
            ({"Authorization": f"Bearer {VIEW}"}, {}),
            ({"X-Token": VIEW}, {}),
            ({}, {"token": VIEW}),
        ]:
            snapshot = client.get("/snapshot.jpg", headers=headers, params=params)
            assert snapshot.status_code == 200 and decode(snapshot.content).shape == (240, 320, 3)
        assert client.get("/health").status_code == 200
        page = client.get("/")
        assert "s3cret" not in page.text and "needs a token" in page.text
        page = client.get("/", params={"token": VIEW})
        assert f'src="stream.mjpg?token={VIEW}"' in page.text
        wrong = client.get("/", params={"token": '"><script>alert(1)</script>'})
        assert "<script>alert" not in wrong.text
    frames = read_with_opencv(f"{token_url}/stream.mjpg?token={VIEW}", 3)
    assert frames[0].shape == (240, 320, 3)


def test_api_docs_are_served_offline(camera_url: str) -> None:
    page = httpx.get(f"{camera_url}/docs", timeout=30)
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui.css" in page.text and "cdn" not in page.text.lower()
    assert httpx.get(f"{camera_url}/docs/assets/swagger-ui.css", timeout=30).status_code == 200
