"""Door fixtures: a relay on gpiozero's MockFactory, its pin, and a fresh secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from smartlock.door.auth import DoorSecret, generate_secret
from smartlock.door.relay import Relay
from tests.door.helpers import PIN


@pytest.fixture
def mock_factory():
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    yield factory
    factory.close()


@pytest.fixture
def relay(mock_factory) -> Iterator[Relay]:
    relay = Relay(PIN, pin_factory=mock_factory)
    yield relay
    relay.close()


@pytest.fixture
def pin(mock_factory, relay):
    return mock_factory.pin(f"BOARD{PIN}")


@pytest.fixture
def secret(tmp_path: Path) -> DoorSecret:
    return generate_secret(tmp_path / "door.secret")
