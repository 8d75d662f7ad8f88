"""The unlock window on a MockFactory relay: relock on time, extension, lock now, close, failures."""

from __future__ import annotations

import time

import pytest

from smartlock.door.lock import DoorLock
from smartlock.errors import ConfigError, RelayError
from tests.door.helpers import levels, wait_for

DELAY = 0.3


def assert_history(pin, expected: list[tuple[float, bool]]) -> None:
    """gpiozero's own check (±50 ms per step), plus the length, which that check does not compare."""
    assert len(pin.states) == len(expected), pin.states
    pin.assert_states_and_times(expected)


def test_unlock_relocks_on_time(relay, pin):
    changes = []
    door = DoorLock(relay, DELAY, on_change=lambda action, reason: changes.append(action))
    pin.clear_states()
    assert door.unlock() == DELAY
    assert not relay.locked
    wait_for(lambda: pin.state, timeout=DELAY + 2)
    assert_history(pin, [(0.0, True), (0.0, False), (DELAY, True)])
    assert changes == ["relock"]
    assert door.seconds_left() == 0.0
    door.close()


def test_second_unlock_while_open_extends_the_window(relay, pin):
    door = DoorLock(relay, DELAY)
    pin.clear_states()
    door.unlock()
    time.sleep(0.2)
    door.unlock()
    assert door.seconds_left() == pytest.approx(DELAY, abs=0.05)
    wait_for(lambda: pin.state, timeout=DELAY + 2)
    # one opening, relocked DELAY after the *second* unlock: 0.2 + 0.3 s after the first
    assert_history(pin, [(0.0, True), (0.0, False), (0.2 + DELAY, True)])
    door.close()


def test_lock_ends_the_window_now_and_the_timer_does_nothing_later(relay, pin):
    changes = []
    door = DoorLock(relay, DELAY, on_change=lambda action, reason: changes.append(action))
    pin.clear_states()
    door.unlock()
    door.lock()
    assert relay.locked and door.seconds_left() == 0.0
    time.sleep(DELAY + 0.1)
    assert levels(pin) == [True, False, True]
    assert changes == []
    door.close()


def test_close_locks_and_refuses_later_unlocks(relay, pin):
    door = DoorLock(relay, 30.0)
    door.unlock()
    assert pin.state is False
    door.close()
    assert pin.state is True
    with pytest.raises(RelayError, match="shutting down"):
        door.unlock()
    assert pin.state is True
    door.close()  # idempotent


def test_failed_unlock_raises_and_records_the_fault(relay, pin):
    door = DoorLock(relay, DELAY)
    pin.function = "input"
    with pytest.raises(RelayError):
        door.unlock()
    assert door.fault and door.seconds_left() == 0.0
    pin.function = "output"
    door.lock()
    assert door.fault is None and pin.state is True
    door.close()


def test_lock_delay_must_be_positive(relay):
    with pytest.raises(ConfigError):
        DoorLock(relay, 0)


def test_a_failed_relock_is_retried_until_the_relay_locks(relay, pin):
    changes = []
    door = DoorLock(relay, 0.1, on_change=lambda action, reason: changes.append(action))
    door.unlock()
    pin.function = "input"  # the relay cannot be driven when the window ends
    wait_for(lambda: "relock-failed" in changes, timeout=3)
    assert door.fault
    pin.function = "output"  # driveable again: the next retry locks
    wait_for(lambda: "relock" in changes, timeout=3)
    assert pin.state is True and door.fault is None
    door.close()
