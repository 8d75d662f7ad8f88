"""Per-address refusal counting: too many refused requests in a minute blocks the address for a minute."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MAX_REFUSALS = 10
WINDOW_SECONDS = 60.0
BLOCK_SECONDS = 60.0
MAX_ADDRESSES = 10_000


class RefusalLimiter:
    """More than ``max_refusals`` refusals within ``window`` seconds blocks an address for ``block`` s.

    Memory is bounded: at most ``max_refusals + 1`` timestamps per address, and at most
    ``max_addresses`` counted and ``max_addresses`` blocked addresses (the stalest are forgotten
    first). Thread-safe.
    """

    def __init__(
        self,
        max_refusals: int = MAX_REFUSALS,
        window: float = WINDOW_SECONDS,
        block: float = BLOCK_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.max_refusals = max_refusals
        self.window = window
        self.block = block
        self._clock = clock
        self._max_addresses = max_addresses
        self._refusals: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def blocked_for(self, address: str) -> float:
        """Seconds this address stays blocked (0.0 when it is not blocked)."""
        with self._lock:
            until = self._blocked_until.get(address)
            if until is None:
                return 0.0
            left = until - self._clock()
            if left <= 0:
                del self._blocked_until[address]
                return 0.0
            return left

    def record_refusal(self, address: str) -> bool:
        """Count one refusal; returns True when this refusal starts a block."""
        with self._lock:
            now = self._clock()
            times = self._refusals.pop(address, None) or deque(maxlen=self.max_refusals + 1)
            self._refusals[address] = times  # re-inserted last: dict order is least recently refused first
            while times and times[0] <= now - self.window:
                times.popleft()
            times.append(now)
            if len(times) > self.max_refusals and address not in self._blocked_until:
                self._blocked_until[address] = now + self.block
                times.clear()
                started = True
            else:
                started = False
            self._trim(now)
            return started

    def _trim(self, now: float) -> None:
        while len(self._refusals) > self._max_addresses:
            del self._refusals[next(iter(self._refusals))]
        if len(self._blocked_until) > self._max_addresses:
            for address in [a for a, until in self._blocked_until.items() if until <= now]:
                del self._blocked_until[address]
            # Still too many live blocks (an attacker with many addresses): every block lasts as long,
            # so the first inserted ends first; forgetting it early is better than unbounded memory.
            while len(self._blocked_until) > self._max_addresses:
                del self._blocked_until[next(iter(self._blocked_until))]
