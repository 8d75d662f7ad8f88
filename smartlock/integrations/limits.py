"""Flood and brute-force limits of the MQTT commands: a token bucket and the unlock lockout.

Both take a ``clock`` (seconds, monotonic) so tests can move time instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]


class TokenBucket:
    """``rate`` commands per ``per`` seconds (bursts up to ``rate``); take() says whether one may pass.

    ``dropped`` counts the refused ones; ``burst_dropped()`` the ones since the last pass (for "logged once
    per burst")."""

    def __init__(self, rate: int, per: float, clock: Clock = time.monotonic) -> None:
        self.capacity = float(rate)
        self.per_token = per / rate
        self.clock = clock
        self._tokens = float(rate)
        self._last = clock()
        self._lock = threading.Lock()
        self.dropped = 0
        self.in_burst = 0  # dropped since the last message that passed

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) / self.per_token)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            self.dropped += 1
            self.in_burst += 1
            return False

    def end_burst(self) -> int:
        """The number dropped in the burst that just ended (0 if none), and start counting anew."""
        with self._lock:
            count, self.in_burst = self.in_burst, 0
            return count


class Lockout:
    """After ``max_failures`` failures within ``window`` s, locked for ``first`` s, doubling each time (up
    to ``longest``). A success does not reset the doubling; a quiet ``window`` after a lockout does."""

    def __init__(self, max_failures: int = 5, window: float = 600.0, first: float = 60.0,
                 longest: float = 24 * 3600.0, clock: Clock = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self.first = first
        self.longest = longest
        self.clock = clock
        self._failures: deque[float] = deque()
        self._until = float("-inf")
        self._next = first
        self._lock = threading.Lock()
        self.lockouts = 0

    def seconds_left(self) -> float:
        with self._lock:
            return max(0.0, self._until - self.clock())

    def fail(self) -> float | None:
        """Count a failure; the lockout's length in seconds when this one starts a lockout, else None."""
        with self._lock:
            now = self.clock()
            if now < self._until:
                return None  # already locked out: counted by the caller, not again here
            last = self._failures[-1] if self._failures else self._until
            if now - last > self.window:
                self._next = self.first  # quiet for a whole window: back to the first length
            while self._failures and now - self._failures[0] > self.window:
                self._failures.popleft()
            self._failures.append(now)
            if len(self._failures) < self.max_failures:
                return None
            length = self._next
            self._until = now + length
            self._next = min(self._next * 2, self.longest)
            self._failures.clear()
            self.lockouts += 1
            return length
