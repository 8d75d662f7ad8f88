"""Secrets by file: the recognition API key and the camera token (proven to the real camera app without
being sent, and checking its signed frames), and no token ever written to the engine's log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartlock.engine.access import camera_token, recognition_api_key, stream_opener
from smartlock.engine.commands import configure_logging
from smartlock.engine.frames import LatestFrameReader
from smartlock.errors import ConfigError
from smartlock.logs import redact_url
from smartlock.service import write_secret
from tests.support import wait_for

TOKEN = "s3cret-camera-token"


def test_redact_url_masks_token_values_only() -> None:
    assert redact_url("http://cam:8000/stream.mjpg?token=abc&x=1") == "http://cam:8000/stream.mjpg?token=***&x=1"
    message = "cannot open http://c/s?a=1&TOKEN=abc: refused"
    assert redact_url(message) == "cannot open http://c/s?a=1&TOKEN=***: refused"
    assert redact_url("http://cam/stream.mjpg") == "http://cam/stream.mjpg"


def test_the_api_key_comes_from_its_file_else_the_flag_else_the_environment(tmp_path, monkeypatch,
                                                                             caplog) -> None:
    key_file = tmp_path / "api-key"
    write_secret(key_file, "from-file")
    monkeypatch.setenv("SMARTLOCK_API_KEY", "from-env")
    assert recognition_api_key(key_file, "from-flag") == "from-file"
    assert recognition_api_key(None, "from-flag") == "from-flag"
    assert "use --face-recognition-api-key-file" in caplog.text  # a key on the command line is warned about
    assert "from-flag" not in caplog.text
    assert recognition_api_key(None, None) == "from-env"
    monkeypatch.delenv("SMARTLOCK_API_KEY")
    assert recognition_api_key(None, None) is None
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        recognition_api_key(key_file)


def test_a_camera_token_needs_an_http_camera(tmp_path: Path) -> None:
    token_file = tmp_path / "camera-token"
    write_secret(token_file, TOKEN)
    assert camera_token(token_file) == TOKEN and camera_token(None) is None
    with pytest.raises(ConfigError, match="http"):
        stream_opener("0", TOKEN)


@pytest.fixture
def camera_with_token(tmp_path: Path) -> Iterator[str]:
    """The real camera app over a short video, requiring TOKEN; yields its stream URL."""
    from smartlock.camera.api import create_app
    from smartlock.camera.sources import VideoFileSource
    from smartlock.camera.stream import FrameHub
    from tests.engine.system import background, write_video
    from tests.support import uvicorn_server

    source = VideoFileSource(write_video(tmp_path / "wall.mp4", [(background(), 1.0)]))
    source.open()
    hub = FrameHub(source, backoff=(0.05, 0.5))
    try:
        with uvicorn_server(create_app(hub, TOKEN), health_path="/health") as base:
            yield f"{base}/stream.mjpg"
    finally:
        hub.stop()


def test_the_reader_proves_the_token_to_the_camera_and_checks_its_signatures(camera_with_token: str) -> None:
    with LatestFrameReader(camera_with_token, opener=stream_opener(camera_with_token, TOKEN)) as reader:
        frame = reader.wait_newer(0, timeout=20)
        frame = reader.wait_newer(frame.seq if frame else 0, timeout=20)
    assert frame is not None and frame.image.shape[2] == 3
    # the camera signs with the token it requires, so the reader holding it drops nothing
    assert reader.rejected is not None and reader.rejected.total == 0


def test_without_the_token_the_camera_refuses_and_the_log_never_shows_a_token(
    camera_with_token: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    url = f"{camera_with_token}?token=wrong-{TOKEN}"
    try:
        configure_logging(tmp_path / "log")
        with LatestFrameReader(url, opener=stream_opener(url, None), backoff=(0.05, 0.1)):
            log_file = tmp_path / "log" / "log.txt"
            wait_for(lambda: "Cannot open video stream" in log_file.read_text(), what="a refused connection")
        for handler in root.handlers:
            handler.flush()
    finally:
        for handler in root.handlers:
            if handler not in saved[0]:
                handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    text = (tmp_path / "log" / "log.txt").read_text()
    assert "HTTP 401" in text and "token=***" in text
    assert TOKEN not in text and TOKEN not in capsys.readouterr().out
