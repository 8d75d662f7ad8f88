"""Attack 4: `smartlock camera` served stream and snapshot to anyone. Now a real camera process started with
the defaults (no --token-file) makes a token, refuses every frame request without it (401, no JPEG byte),
serves and signs with it, keeps /health public without frame data, and never writes the token to its log."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smartlock.camera.signing import FrameVerifier, viewing_token
from smartlock.service import read_secret
from tests.camera.media import stream_parts, write_video
from tests.support import LOOPBACK, free_port, service_process, wait_for

JPEG_SOI = b"\xff\xd8"


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "door.mp4")


def start_camera(video: Path, workdir: Path, *flags: str):
    """(base URL, log file, the process's context manager) of a real camera whose data dir is in workdir."""
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    args = ["camera", "--source", str(video), "--host", LOOPBACK, "--port", str(port), *flags]
    env = {"SMARTLOCK_DATA_DIR": str(workdir / "data")}
    log = workdir / f"camera-{port}.log"
    return base, log, service_process(args, f"{base}/health", env=env, log_path=log)


@pytest.fixture
def camera(video: Path, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """A real camera process with default settings; yields its base URL, data directory and log."""
    base, log, process = start_camera(video, tmp_path)
    with process:
        yield base, tmp_path / "data", log


def refused(response: httpx.Response) -> bool:
    return (response.status_code == 401 and JPEG_SOI not in response.content
            and response.headers["content-type"].startswith("application/json")
            and response.headers["www-authenticate"].startswith("Bearer"))


def test_a_default_camera_shows_nothing_without_its_token(camera: tuple[str, Path, Path]) -> None:
    base, data, log = camera
    token_file = data / "camera" / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    token = read_secret(token_file)
    view_file = data / "camera" / "token.view"
    view = read_secret(view_file)  # what people watch with (it cannot sign frames)
    assert view == viewing_token(token) and stat.S_IMODE(view_file.stat().st_mode) == 0o600
    guesses = [({}, {}), ({"Authorization": "Bearer guess"}, {}), ({"X-Token": view[:-1]}, {}),
               ({}, {"token": view + "x"}), ({"Authorization": f"Basic {view}"}, {}), ({}, {"token": ""}),
               ({"Authorization": f"Bearer {token}"}, {})]  # the signing secret opens nothing by itself
    with httpx.Client(base_url=base, timeout=10) as client:
        for path in ("/stream.mjpg", "/snapshot.jpg"):
            for headers, params in guesses:
                with client.stream("GET", path, headers=headers, params=params) as response:
                    response.read()  # a refused stream ends: its whole body is the JSON message
                    assert refused(response), (path, headers, params, response.status_code)
        health = client.get("/health")
        assert health.status_code == 200 and JPEG_SOI not in health.content
        assert health.json()["clients"] == 0  # no refused request ever became a stream client
        page = client.get("/")
        assert page.status_code == 200 and "needs a token" in page.text and token not in page.text

        # the same camera with its viewing token: frames, each signed with the secret
        snapshot = client.get("/snapshot.jpg", headers={"Authorization": f"Bearer {view}"})
        assert snapshot.status_code == 200 and snapshot.content.startswith(JPEG_SOI)
        signed = {name.lower(): value for name, value in snapshot.headers.items()}
        assert FrameVerifier(token).check(signed, snapshot.content) is None
        assert client.get("/snapshot.jpg", params={"token": view}).status_code == 200
        parts = stream_parts(client, f"{base}/stream.mjpg?token={view}", 3)
        assert [FrameVerifier(token, max_age=60).check(*part) for part in parts] == [None] * 3

    wait_for(lambda: "/stream.mjpg?token=***" in log.read_text(), what="the access log line of the stream")
    text = log.read_text()
    assert str(token_file) in text and "created now" in text  # where the token is, never what it is
    assert token not in text and view not in text


def test_the_token_file_is_kept_across_restarts(video: Path, tmp_path: Path) -> None:
    _, first_log, process = start_camera(video, tmp_path)
    with process:
        token = read_secret(tmp_path / "data" / "camera" / "token")
    base, log, process = start_camera(video, tmp_path)
    with process, httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/snapshot.jpg", headers={"X-Token": viewing_token(token)}).status_code == 200
        assert refused(client.get("/snapshot.jpg"))
    assert read_secret(tmp_path / "data" / "camera" / "token") == token
    assert "created now" in first_log.read_text() and "created now" not in log.read_text()
    assert token not in first_log.read_text() + log.read_text()


def test_no_auth_is_an_explicit_and_loud_choice(video: Path, tmp_path: Path) -> None:
    base, log, process = start_camera(video, tmp_path, "--no-auth")
    with process, httpx.Client(base_url=base, timeout=10) as client:
        snapshot = client.get("/snapshot.jpg")
        assert snapshot.status_code == 200 and snapshot.content.startswith(JPEG_SOI)
        assert "x-frame-signature" not in snapshot.headers  # nothing to sign with
    assert "AUTHENTICATION IS OFF (--no-auth)" in log.read_text()
    assert not (tmp_path / "data" / "camera" / "token").exists()
