"""The newest-frame hand-off between one writer thread and any number of readers (camera hub, engine reader).

The pattern is picamera2's MJPEG server: an object holding the newest frame plus a Condition that wakes
readers, passed to whoever needs it instead of living in a module global. Readers never queue frames:
each asks for "a frame newer than the one I have", so a slow reader skips frames and the others never
wait for it. Thread readers block on the Condition; asyncio readers await a per-loop Event that the
writer sets through ``loop.call_soon_threadsafe`` (the event loop thread never blocks).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Numbered(Protocol):
    @property
    def seq(self) -> int: ...


F = TypeVar("F", bound=Numbered)


class FrameSlot(Generic[F]):
    """Holds the newest frame (numbered 1, 2, 3, ... by ``publish``) and wakes whoever waits for one."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._latest: F | None = None
        self._seq = 0
        self._closed = False
        self._waiting = 0
        self._loop_events: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def latest(self) -> F | None:
        return self._latest

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def waiting(self) -> int:
        """Thread readers blocked in ``wait_newer`` right now."""
        with self._condition:
            return self._waiting

    def publish(self, make: Callable[[int], F]) -> F:
        """Store ``make(seq)`` as the newest frame (``seq`` one more than the last) and wake every reader."""
        with self._condition:
            self._seq += 1
            frame = make(self._seq)
            self._latest = frame
            self._condition.notify_all()
        self._wake_loops()
        return frame

    def close(self) -> bool:
        """Wake every reader; from now on a reader without a newer frame gets None at once. True the
        first time."""
        with self._condition:
            first = not self._closed
            self._closed = True
            self._condition.notify_all()
        self._wake_loops()
        return first

    def wait_newer(self, after: int = 0, timeout: float | None = None) -> F | None:
        """Block (in a thread) until a frame newer than ``after`` exists; None on timeout or when closed."""

        def ready() -> bool:
            return self._closed or (self._latest is not None and self._latest.seq > after)

        with self._condition:
            self._waiting += 1
            try:
                self._condition.wait_for(ready, timeout)
            finally:
                self._waiting -= 1
            frame = self._latest
        return frame if frame is not None and frame.seq > after else None

    async def next_newer(self, after: int = 0, timeout: float | None = None) -> F | None:
        """Await a frame newer than ``after`` without blocking the event loop; None on timeout or close."""
        loop = asyncio.get_running_loop()
        with self._condition:
            event = self._loop_events.get(loop)
            if event is None:
                event = self._loop_events[loop] = asyncio.Event()
            frame = self._latest
            closed = self._closed
        if frame is not None and frame.seq > after:
            return frame
        if closed:
            return None
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return None
        frame = self._latest
        return frame if frame is not None and frame.seq > after else None

    def _wake_loops(self) -> None:
        with self._condition:
            loops = list(self._loop_events.keys())
        for loop in loops:
            try:
                loop.call_soon_threadsafe(self._wake_loop, loop)
            except RuntimeError:  # that loop is closed
                with self._condition:
                    self._loop_events.pop(loop, None)

    def _wake_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        # Runs on ``loop``: wake everyone awaiting the current Event, and give later waiters a fresh one.
        with self._condition:
            event = self._loop_events.get(loop)
            if event is None:
                return
            self._loop_events[loop] = asyncio.Event()
        event.set()
