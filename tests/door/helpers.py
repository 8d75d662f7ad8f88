"""Door test helpers: a real door server on 127.0.0.1 with a MockFactory relay, pin-history checks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
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

# How late a relock may come in a test. The 50 ms target is a timing target, measured by
# benchmarks/door_latency.py; on a busy 2-core machine a waking thread can be later than that, so tests
# allow this much (a 1 s polling loop, as in the seed, still overshoots it most of the time).
LATE = 0.3


def on_a_pi() -> bool:
    try:
        with open("/proc/device-tree/model", encoding="ascii", errors="replace") as handle:
            return "raspberry pi" in handle.read().lower()
    except OSError:
        return False


def assert_one_opening(pin, at_least: float, at_most: float | None = None) -> float:
    """Since clear_states() the pin went locked -> unlocked -> locked once, unlocked for at least
    ``at_least`` s and at most ``at_most`` (default ``at_least``) + LATE s; returns how long it was open.

    MockPin timestamps are the time since the previous change, so states[2] is the open time itself.
    """
    assert levels(pin) == [True, False, True], pin.states
    open_for = pin.states[2].timestamp
    upper = (at_least if at_most is None else at_most) + LATE
    assert at_least - 0.002 <= open_for <= upper, f"open {open_for:.3f} s, not {at_least:.3f}..{upper:.3f}"
    return open_for


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


def client_from(url: str, address: str, timeout: float = 5.0) -> httpx.Client:
    """An HTTP client whose requests come from ``address`` (any 127.x.y.z is a real loopback source)."""
    return httpx.Client(base_url=url, timeout=timeout, transport=httpx.HTTPTransport(local_address=address))


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
    events: EventLog | None = None,
) -> Iterator[DoorServer]:
    """A real uvicorn serving create_app() on a free 127.0.0.1 port, relay on a fresh MockFactory.
    ``events`` (closed afterwards) replaces the default EventLog at ``events_path``."""
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    relay = Relay(PIN, pin_factory=factory)
    if secret_path is None:
        secret_path = tmp_path / f"door-{time.monotonic_ns()}.secret"
        generate_secret(secret_path)
    secret = load_secret(secret_path)
    events = events or EventLog(events_path or tmp_path / "events.sqlite3")
    auth = None if no_auth else (verifier or RequestVerifier(secret))
    app = create_app(relay, auth, events, lock_delay, limiter=limiter or RefusalLimiter(max_refusals=1000))
    try:
        with uvicorn_server(app) as url, httpx.Client(base_url=url, timeout=5.0) as http:
            yield DoorServer(url, http, secret, secret_path, relay, factory.pin(f"BOARD{PIN}"), events, app)
    finally:
        relay.close()
        events.close()
        factory.close()
