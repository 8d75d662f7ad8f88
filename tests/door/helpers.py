"""Door test helpers: a real door server on 127.0.0.1 with a MockFactory relay, pin-history checks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from smartlock.door.api import create_app
from smartlock.door.auth import DoorSecret, RequestVerifier, generate_secret, load_secret, sign_request
from smartlock.door.events import EventLog
from smartlock.door.ratelimit import RefusalLimiter
from smartlock.door.relay import Relay
from tests.support import uvicorn_server

PIN = 11  # BOARD11 = GPIO17 on the 40-pin header


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.005)


def levels(pin) -> list[bool]:
    """The levels a MockPin went through since its last clear_states()."""
    return [state.state for state in pin.states]


@dataclass
class DoorServer:
    url: str
    http: httpx.Client
    secret: DoorSecret
    secret_path: Path
    relay: Relay
    pin: object
    events: EventLog
    app: object

    def signed(self, method: str, path: str, body: bytes = b"", **sign_kwargs) -> httpx.Response:
        headers = sign_request(self.secret, method, path, body, **sign_kwargs)
        if body:
            headers["content-type"] = "application/json"
        return self.http.request(method, path, content=body, headers=headers)


@contextlib.contextmanager
def door_server(
    tmp_path: Path,
    *,
    secret_path: Path | None = None,
    no_auth: bool = False,
    lock_delay: float = 0.3,
    limiter: RefusalLimiter | None = None,
    events_path: Path | None = None,
    verifier: RequestVerifier | None = None,
) -> Iterator[DoorServer]:
    """A real uvicorn serving create_app() on a free 127.0.0.1 port, relay on a fresh MockFactory."""
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    relay = Relay(PIN, pin_factory=factory)
    if secret_path is None:
        secret_path = tmp_path / f"door-{time.monotonic_ns()}.secret"
        generate_secret(secret_path)
    secret = load_secret(secret_path)
    events = EventLog(events_path or tmp_path / "events.sqlite3")
    auth = None if no_auth else (verifier or RequestVerifier(secret))
    app = create_app(relay, auth, events, lock_delay, limiter=limiter or RefusalLimiter(max_refusals=1000))
    try:
        with uvicorn_server(app) as url, httpx.Client(base_url=url, timeout=5.0) as http:
            yield DoorServer(url, http, secret, secret_path, relay, factory.pin(f"BOARD{PIN}"), events, app)
    finally:
        relay.close()
        events.close()
        factory.close()
