"""The unlock window on a MockFactory relay: relock on time, extension, lock now, close, failures."""

from __future__ import annotations

import threading
import time

import pytest

from smartlock.door.lock import DoorLock
from smartlock.errors import ConfigError, RelayError
from tests.door.helpers import assert_one_opening, levels
from tests.support import ManualClock, wait_for

DELAY = 0.3


def test_unlock_relocks_on_time(relay, pin):
    changes = []
    door = DoorLock(relay, DELAY, on_change=lambda action, reason: changes.append(action))
    pin.clear_states()
    assert door.unlock() == DELAY
    assert not relay.locked
    wait_for(lambda: pin.state, timeout=DELAY + 5)
    assert_one_opening(pin, DELAY)
    wait_for(lambda: changes == ["relock"])  # reported after the relay moved, from the timer thread
    assert door.seconds_left() == 0.0
    door.close()


def test_second_unlock_while_open_extends_the_window(relay, pin):
    delay = 1.0  # the second unlock, 0.2 s after the first, must come while the door is open
    door = DoorLock(relay, delay)
    pin.clear_states()
    first = time.monotonic()
    door.unlock()
    after_first = time.monotonic()
    wait_for(lambda: door.seconds_left() <= delay - 0.2, what="the window to run 0.2 s")
    second = time.monotonic()
    door.unlock()
    after_second = time.monotonic()
    left = door.seconds_left()
    assert delay - (time.monotonic() - second) <= left <= delay
    wait_for(lambda: pin.state, timeout=delay + 5)
    # One opening, relocked `delay` after the *second* unlock; the bounds come from the measured call
    # times, so a wait that overshoots on a busy machine cannot fail the test.
    assert_one_opening(pin, second - after_first + delay, after_second - first + delay)
    door.close()


def wake_timer_and_wait_until_it_sleeps_again(door: DoorLock) -> None:
    """Make the relock thread look at the door's clock once more, and return once it has and is waiting
    again: anything it was going to do at that time (relock, report) has been done by then."""
    with door._cond:
        door._cond.notify_all()  # every waiter is removed here; it re-queues only after its next look
    wait_for(lambda: len(door._cond._waiters) == 1, what="the relock thread to wait again")  # CPython's


def test_lock_ends_the_window_now_and_the_timer_does_nothing_later(relay, pin):
    changes = []
    clock = ManualClock()
    door = DoorLock(relay, DELAY, on_change=lambda action, reason: changes.append(action), clock=clock)
    pin.clear_states()
    door.unlock()
    door.lock()
    assert relay.locked and door.seconds_left() == 0.0
    clock.advance(DELAY + 60)  # long past the deadline the unlock had set
    wake_timer_and_wait_until_it_sleeps_again(door)
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


def test_a_relay_that_raises_something_else_is_still_relocked(relay, pin):
    class Flaky:
        """The real relay, except that the first relock raises what a hardware library might."""

        pin_name = relay.pin_name
        failures = 1

        def unlock(self) -> None:
            relay.unlock()

        def lock(self) -> None:
            if self.failures:
                self.failures -= 1
                raise OSError("lgpio: GPIO busy")
            relay.lock()

    changes = []
    door = DoorLock(Flaky(), 0.1, on_change=lambda action, reason: changes.append(action))
    door.unlock()
    wait_for(lambda: "relock" in changes, timeout=5)  # the timer thread survived and retried
    assert changes == ["relock-failed", "relock"] and pin.state is True
    door.close()


def test_no_timer_no_unlock(relay, pin, monkeypatch):
    class NoThreads(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    door = DoorLock(relay, DELAY)
    monkeypatch.setattr("smartlock.door.lock.threading.Thread", NoThreads)
    pin.clear_states()
    with pytest.raises(RelayError, match="relock timer"):
        door.unlock()
    assert levels(pin) == [True]  # without a timer to relock it, the relay never moved
    monkeypatch.undo()
    door.unlock()
    wait_for(lambda: pin.state, timeout=DELAY + 5)
    door.close()
