"""Fixtures of the dashboard's API tests: a real dashboard server with fake collaborators."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from smartlock.web.app import CSRF_HEADER, Dashboard, create_app
from smartlock.web.auth import PasswordStore, SessionStore
from smartlock.web.events import EventStore
from smartlock.web.services import CameraLink, CaptureStore, CollectedFrames
from smartlock.web.settings import SettingsStore
from tests.support import uvicorn_server
from tests.web.fakes import FakeDoor, FakeRecognition, fake_camera_app, jpeg

PASSWORD = "correct horse battery"
CAMERA_TOKEN = "camera-secret-token"
WEBHOOK_TOKEN = "webhook-secret-token"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class System:
    url: str
    dashboard: Dashboard
    recognition: FakeRecognition
    door: FakeDoor
    clock: FakeClock
    tmp: Path

    def client(self, signed_in: bool = True) -> httpx.Client:
        """A browser-like client: sends the anti-CSRF header; signed in unless asked otherwise."""
        client = httpx.Client(base_url=self.url, headers={CSRF_HEADER: "1"}, timeout=10)
        if signed_in:
            response = client.post("/api/auth/login", json={"password": PASSWORD})
            assert response.status_code == 200, response.text
        return client


@pytest.fixture(scope="module")
def camera_url() -> Iterator[str]:
    with uvicorn_server(fake_camera_app(jpeg(), token=CAMERA_TOKEN)) as url:
        yield url


@pytest.fixture
def system(tmp_path: Path, camera_url: str) -> Iterator[System]:
    recognition, door, clock = FakeRecognition(), FakeDoor(), FakeClock()
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
        model_dir=tmp_path / "model",
        sessions=SessionStore(idle_timeout=600, max_age=3600, clock=clock),
        system_status=lambda: [{"name": "camera", "state": "running", "restarts": 0}],
    )
    with uvicorn_server(create_app(dashboard)) as url:
        yield System(url, dashboard, recognition, door, clock, tmp_path)
    dashboard.events.close()
