"""Camera fixtures: a short real video file and a real uvicorn camera server over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from smartlock.camera.api import create_app
from smartlock.camera.sources import VideoFileSource
from smartlock.camera.stream import FrameHub
from tests.camera.media import write_video
from tests.support import uvicorn_server


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data directory: `smartlock camera` keeps its generated token there, never in the home."""
    path = tmp_path / "data"
    monkeypatch.setenv("SMARTLOCK_DATA_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s of 320x240 at 20 fps: four colour blocks of ten numbered frames."""
    return write_video(tmp_path_factory.mktemp("video") / "door.mp4")


@pytest.fixture
def video_hub(video_file: Path) -> Iterator[FrameHub]:
    source = VideoFileSource(video_file)
    source.open()
    hub = FrameHub(source, backoff=(0.05, 0.5))
    yield hub
    hub.stop()


@pytest.fixture
def camera_url(video_hub: FrameHub) -> Iterator[str]:
    """Base URL of a real uvicorn serving the video file source."""
    with uvicorn_server(create_app(video_hub), health_path="/health") as url:
        yield url
