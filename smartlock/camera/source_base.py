"""The camera source interface: what the hub's capture thread reads, and helpers shared by the sources.

A source is opened once (so a bad ``--source`` fails at start-up with a clear message), then read by
the hub's capture thread: ``read()`` blocks until the next frame is due and returns it either as a BGR
array or, when the source already yields JPEG (an MJPEG URL, a .jpg in a folder), as the JPEG bytes
themselves so they can be passed through without re-encoding. A failing ``read()`` raises CameraError;
the hub then closes the source and opens it again later.

cv2 and picamera2 are imported only when a source that needs them is opened.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from smartlock.camera.imaging import load_cv2
from smartlock.errors import CameraError, DependencyMissing


def load_picamera2() -> Any:
    """Import picamera2 (Raspberry Pi OS only: it needs libcamera, which PyPI cannot provide)."""
    try:
        import picamera2
    except ImportError as err:
        install = "sudo apt install python3-picamera2"
        raise DependencyMissing("picamera2", "The Pi camera source (Raspberry Pi OS)", install) from err
    return picamera2


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One captured frame: a BGR uint8 array or already-encoded JPEG bytes, and when it was captured."""

    timestamp: float  # unix seconds at capture
    image: np.ndarray | None = None
    jpeg: bytes | None = None


class Source(ABC):
    """A camera-like thing the capture thread pulls frames from."""

    kind: ClassVar[str] = ""
    resizes_itself: ClassVar[bool] = False  # cameras are asked for a size; other sources get scaled

    def __init__(self, name: str, nominal_fps: float | None) -> None:
        self.name = name
        self.nominal_fps = nominal_fps
        self._interrupted = threading.Event()

    @property
    @abstractmethod
    def is_open(self) -> bool: ...

    @abstractmethod
    def open(self) -> None:
        """Open (or reopen) the source; raise CameraError saying why it cannot be."""

    @abstractmethod
    def read(self) -> RawFrame:
        """Block until the next frame is due and return it; raise CameraError when the source fails."""

    @abstractmethod
    def close(self) -> None:
        """Release the source; safe to call twice."""

    def interrupt(self) -> None:
        """Cut short a pacing sleep (the hub is stopping)."""
        self._interrupted.set()

    def _pause_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            self._interrupted.wait(delay)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class Pacer:
    """Releases frames at a fixed rate; after a long stall it restarts the schedule instead of bursting."""

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps
        self._next: float | None = None

    def wait(self, source: Source) -> None:
        now = time.monotonic()
        if self._next is None or now - self._next > max(0.5, 2 * self.interval):
            self._next = now
        else:
            source._pause_until(self._next)
        self._next += self.interval


class OpenCVSource(Source):
    """Shared code for sources read through cv2.VideoCapture."""

    def __init__(self, name: str, nominal_fps: float | None) -> None:
        super().__init__(name, nominal_fps)
        self._capture: Any = None

    @property
    def is_open(self) -> bool:
        return self._capture is not None

    def _open_capture(self, target: int | str, api: str = "CAP_ANY", params: Iterable[int] = ()) -> Any:
        cv2 = load_cv2()
        capture = cv2.VideoCapture(target, getattr(cv2, api), list(params))
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"{self.name}: OpenCV could not open it")
        return capture

    def _grab(self) -> np.ndarray | None:
        ok, image = self._capture.read()
        return image if ok and image is not None and image.size else None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
