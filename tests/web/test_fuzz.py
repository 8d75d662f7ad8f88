"""Schemathesis fuzzes the dashboard's API (signed in) from its own OpenAPI schema: no answer is a 5xx.

The dashboard serves no schema in `up` (``openapi_url=None``); ``create_app(..., openapi=True)`` exposes
it for this test. It runs in front of the real camera service (still picture) with fake recognition and
door clients, on a real uvicorn, and `st run` is a separate process, as for the recognition API.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from smartlock.web.app import create_app
from smartlock.web.auth import PasswordStore
from smartlock.web.clients import CameraLink
from smartlock.web.dashboard import Dashboard
from smartlock.web.events import EventStore
from smartlock.web.frame_stores import CaptureStore, CollectedFrames
from smartlock.web.routes.guards import COOKIE, CSRF_HEADER
from smartlock.web.settings import SettingsStore
from tests.support import uvicorn_server
from tests.web.conftest import CAMERA_TOKEN, CREDENTIALS, PASSWORD, WEBHOOK_TOKEN
from tests.web.fakes import FakeDoor, FakeRecognition

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# The endless MJPEG stream would only time out, and signing out would end the fuzzer's session.
EXCLUDED_PATHS = ("/api/camera/stream.mjpg", "/api/auth/logout")


def test_schemathesis_finds_no_server_error(tmp_path: Path, camera_url: str) -> None:
    pytest.importorskip("schemathesis")
    passwords = PasswordStore(tmp_path / "web" / "password.json")
    passwords.set(PASSWORD)
    recognition, door = FakeRecognition(), FakeDoor()
    recognition.people_images["ada"] = [{"image_id": "0123456789abcdef", "source": "ada.jpg"}]
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
    )
    dashboard.events.add("unlock", "ada", 0.95)
    with uvicorn_server(create_app(dashboard, openapi=True), health_path="/api/auth/state") as url:
        login = httpx.post(f"{url}/api/auth/login", json=CREDENTIALS, headers={CSRF_HEADER: "1"})
        assert login.status_code == 200
        cookie = login.cookies[COOKIE]
        command = [
            sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
            "--header", f"Cookie: {COOKIE}={cookie}", "--header", f"{CSRF_HEADER}: 1",
            "--checks", "not_a_server_error",
            *[arg for path in EXCLUDED_PATHS for arg in ("--exclude-path", path)],
            "--max-examples", "30", "--seed", "20240601", "--workers", "1",
            "--generation-database", "none", "--request-timeout", "20", "--no-color",
        ]
        run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=500)
        summary = run.stdout[run.stdout.rfind("SUMMARY") - 40:] if "SUMMARY" in run.stdout else run.stdout
        print(summary)
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert "generated" in summary and "passed" in summary
        # the fuzzer was signed in (its "lock now" calls went through), and still is
        assert door.locks > 0
        assert httpx.get(f"{url}/api/auth/state", cookies={COOKIE: cookie}).json()["signed_in"] is True
    dashboard.events.close()
