"""What the dashboard's routes work with: the Dashboard (its collaborators) and the protocols of the clients.

`smartlock up` builds a Dashboard from the real clients, the tests from fakes; ``create_app`` keeps it in
``app.state.dashboard`` and every route gets it through the ``dashboard_of`` dependency.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request

from smartlock.recognition.schemas import Enrollment, Face, Person
from smartlock.web.accounts import AccountStore
from smartlock.web.audit import AuditLog
from smartlock.web.auth import LoginThrottle, PasswordStore, SessionStore, SetupToken
from smartlock.web.clients import CameraLink
from smartlock.web.events import EventStore
from smartlock.web.frame_stores import CaptureStore, CollectedFrames
from smartlock.web.live import LiveFaces
from smartlock.web.settings import SettingsStore
from smartlock.web.storage import StorageWatch


class Recognition(Protocol):
    """The part of smartlock.recognition.client.RecognitionClient the dashboard uses (the API's shapes)."""

    def recognize_jpeg(self, jpeg: bytes, include_predictions: bool = False) -> Sequence[Face]: ...
    def people(self) -> Sequence[Person]: ...
    def enroll(self, name: str, files: list[tuple[str, bytes]]) -> Enrollment: ...
    def remove_person(self, name: str) -> None: ...
    def remove_image(self, name: str, image_id: str) -> None: ...
    def image_crop(self, name: str, image_id: str) -> bytes: ...
    def calibration(self) -> dict[str, Any]: ...


class Door(Protocol):
    """The part of smartlock.door.client.DoorClient the dashboard uses."""

    def lock(self) -> None: ...
    def status(self) -> dict[str, Any]: ...
    def events(self, limit: int = 50, before: int | None = None) -> dict[str, Any]: ...


@dataclass
class Dashboard:
    """Everything the dashboard's routes use; `smartlock up` builds it, tests build it with fakes."""

    passwords: PasswordStore  # the accounts (smartlock.web.accounts.AccountStore), in the password file
    camera: CameraLink
    recognition: Recognition
    door: Door
    events: EventStore
    settings: SettingsStore
    captures: CaptureStore
    collected: CollectedFrames | None = None
    webhook_token: str | None = None
    log_path: Path | None = None  # the engine's --log-path (unlock frames)
    system_status: Callable[[], list[dict]] = lambda: []
    mqtt_status: Callable[[], str] | None = None  # the door's MQTT link (with --mqtt-url), never blocks
    sessions: SessionStore = field(default_factory=SessionStore)
    setup: SetupToken = field(default_factory=SetupToken)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    secure_cookies: bool = False  # also Secure on any request that arrives over HTTPS
    storage: StorageWatch = field(default_factory=StorageWatch)
    live: LiveFaces = None  # type: ignore[assignment]  # made from camera and recognition when not given
    data_dir: Path | None = None  # sessions.json and audit.db; the timeline's folder when not given
    audit: AuditLog = None  # type: ignore[assignment]  # data_dir/audit.db when not given

    def __post_init__(self) -> None:
        if self.live is None:
            self.live = LiveFaces(self.camera, self.recognition)
        if self.data_dir is None:
            self.data_dir = self.events.folder
        if self.sessions.path is None:  # sessions survive a restart of the dashboard
            self.sessions.open(self.data_dir / "sessions.json")
        if self.audit is None:
            self.audit = AuditLog(self.data_dir)

    @property
    def accounts(self) -> AccountStore:
        """Who may sign in, and with which role (the password file)."""
        return self.passwords


async def dashboard_of(request: Request) -> Dashboard:
    """The dependency every route reads its collaborators through (async: no thread-pool hop)."""
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


DashboardDep = Annotated[Dashboard, Depends(dashboard_of)]
