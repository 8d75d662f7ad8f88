"""Fixtures of the dashboard's API tests: a real dashboard server in front of the real camera app (over a
still-picture source), with fake recognition and door clients."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from smartlock.camera.api import create_app as create_camera_app
from smartlock.camera.stream import FrameHub
from smartlock.web.app import create_app
from smartlock.web.auth import PasswordStore, SessionStore
from smartlock.web.clients import CameraLink
from smartlock.web.dashboard import Dashboard
from smartlock.web.events import EventStore
from smartlock.web.frame_stores import CaptureStore, CollectedFrames
from smartlock.web.routes.guards import CSRF_HEADER
from smartlock.web.settings import SettingsStore
from tests.support import ManualClock, uvicorn_server
from tests.web.fakes import FakeDoor, FakeRecognition, StillSource, jpeg

PASSWORD = "correct horse battery"
USERNAME = "admin"  # the admin account PASSWORD belongs to (the password file's first account)
CREDENTIALS = {"username": USERNAME, "password": PASSWORD}  # the body of a sign-in
CAMERA_TOKEN = "camera-secret-token"
WEBHOOK_TOKEN = "webhook-secret-token"


@dataclass
class System:
    url: str
    dashboard: Dashboard
    recognition: FakeRecognition
    door: FakeDoor
    clock: ManualClock
    tmp: Path

    def client(self, signed_in: bool = True) -> httpx.Client:
        """A browser-like client: sends the anti-CSRF header; signed in unless asked otherwise."""
        client = httpx.Client(base_url=self.url, headers={CSRF_HEADER: "1"}, timeout=10)
        if signed_in:
            response = client.post("/api/auth/login", json=CREDENTIALS)
            assert response.status_code == 200, response.text
        return client


@pytest.fixture(scope="module")
def camera_hub() -> Iterator[FrameHub]:
    """The camera's frame hub over a still 320x240 picture at 24 fps (the camera app starts and stops it)."""
    hub = FrameHub(StillSource(jpeg(), fps=24.0))
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def camera_url(camera_hub: FrameHub) -> Iterator[str]:
    """The real camera service (smartlock.camera.api), token required, on a real uvicorn."""
    with uvicorn_server(create_camera_app(camera_hub, token=CAMERA_TOKEN), health_path="/health") as url:
        yield url


@pytest.fixture
def system(tmp_path: Path, camera_url: str) -> Iterator[System]:
    recognition, door, clock = FakeRecognition(), FakeDoor(), ManualClock()
    passwords = PasswordStore(tmp_path / "web" / "password.json")
    passwords.set(PASSWORD)
    dashboard = Dashboard(
        passwords=passwords,
        camera=CameraLink(camera_url, CAMERA_TOKEN),
        recognition=recognition,
        door=door,
        events=EventStore(tmp_path / "web"),
        settings=SettingsStore(tmp_path / "web" / "settings.json"),
        captures=CaptureStore(tmp_path / "web" / "captures"),
        collected=CollectedFrames(tmp_path / "collected"),
        webhook_token=WEBHOOK_TOKEN,
        log_path=tmp_path / "log",
        sessions=SessionStore(idle_timeout=600, max_age=3600, clock=clock),
        system_status=lambda: [{"name": "camera", "state": "running", "restarts": 0}],
    )
    with uvicorn_server(create_app(dashboard)) as url:
        yield System(url, dashboard, recognition, door, clock, tmp_path)
    dashboard.events.close()
