"""The unlock window: drives the relay and relocks it on time from one waiting thread (no polling)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from smartlock.errors import ConfigError, RelayError

logger = logging.getLogger(__name__)

RELOCK_RETRY_SECONDS = 0.5


class RelayLike(Protocol):
    pin_name: str

    def unlock(self) -> None: ...

    def lock(self) -> None: ...

    @property
    def locked(self) -> bool: ...

    @property
    def level(self) -> str: ...


class DoorLock:
    """Opens the relay for ``lock_delay`` seconds; another unlock while open restarts the window.

    A single daemon thread sleeps on a condition until the deadline (Condition.wait with a timeout, so
    the relock happens when due, not at the next tick of a loop). ``on_change(action, reason)`` is
    called after the relay was relocked by the timer, failed to relock, or was locked by close().
    """

    def __init__(
        self,
        relay: RelayLike,
        lock_delay: float,
        *,
        on_change: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not lock_delay > 0:
            raise ConfigError(f"the lock delay must be a positive number of seconds, not {lock_delay!r}")
        self.relay = relay
        self.lock_delay = float(lock_delay)
        self._on_change = on_change
        self._clock = clock
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.fault: str | None = None
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every change of the relay (unlock, lock, relock, a fault). It must
        return at once (MQTT only queues the new state): it runs on the thread that moved the relay."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # a listener never stops an unlock, a lock or the relock thread
                logger.exception("door state listener failed")

    def unlock(self) -> float:
        """Unlock now (or extend the window); returns the seconds until relock. Raises RelayError."""
        with self._cond:
            if self._closed:
                raise RelayError("the door service is shutting down; the door stays locked")
            # The timer runs before the relay moves: if no thread can be started, the door stays shut.
            if self._thread is None or not self._thread.is_alive():
                thread = threading.Thread(target=self._relock_loop, name="door-relock", daemon=True)
                try:
                    thread.start()
                except RuntimeError as err:
                    raise RelayError(f"cannot start the relock timer ({err}); the door stays locked") from err
                self._thread = thread
            try:
                self.relay.unlock()
            except Exception as err:
                self.fault = str(err)
                self._deadline = None
                self._lock_quietly()
                self._changed()
                if isinstance(err, RelayError):
                    raise
                raise RelayError(f"cannot unlock the relay: {err}") from err
            self._deadline = self._clock() + self.lock_delay
            self._cond.notify_all()
        self._changed()
        return self.lock_delay

    def lock(self) -> None:
        """Lock now and end the unlock window. Raises RelayError."""
        with self._cond:
            self._deadline = None
            self._cond.notify_all()
            try:
                self.relay.lock()
            except RelayError as err:
                self.fault = str(err)
                self._changed()
                raise
            self.fault = None
        self._changed()

    def seconds_left(self) -> float:
        """Seconds until the relock (0.0 when locked)."""
        with self._cond:
            if self._deadline is None:
                return 0.0
            return max(0.0, self._deadline - self._clock())

    def close(self) -> None:
        """Stop the timer and leave the relay locked. Idempotent; raises RelayError if it cannot lock."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._deadline = None
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        with self._cond:
            try:
                self.relay.lock()
            except RelayError as err:
                self.fault = str(err)
                self._notify("lock-failed", f"could not lock the relay while stopping: {err}")
                raise

    def _lock_quietly(self) -> None:
        try:
            self.relay.lock()
        except Exception as err:
            logger.critical("relay did not lock after a failed unlock: %s", err)

    def _relock_loop(self) -> None:
        while True:
            with self._cond:
                note = self._wait_and_relock()
            if note is None:
                return
            self._changed()
            self._notify(*note)  # outside the lock: the audit write never delays an unlock

    def _wait_and_relock(self) -> tuple[str, str] | None:
        """Sleep until the deadline, relock; returns what happened, or None once closed."""
        while not self._closed:
            if self._deadline is None:
                self._cond.wait()
                continue
            remaining = self._deadline - self._clock()
            if remaining > 0:
                self._cond.wait(remaining)
                continue
            try:
                self.relay.lock()
            except Exception as err:  # whatever the relay raises, this thread must live on and retry
                self.fault = str(err)
                self._deadline = self._clock() + RELOCK_RETRY_SECONDS
                logger.critical("relock failed, retrying in %.1f s: %s", RELOCK_RETRY_SECONDS, err)
                return "relock-failed", str(err)
            self._deadline = None
            self.fault = None
            return "relock", "unlock window ended"
        return None

    def _notify(self, action: str, reason: str) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(action, reason)
        except Exception:  # the audit must never stop the relock thread
            logger.exception("recording %s failed", action)
