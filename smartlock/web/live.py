"""The live view's faces: the camera's latest frame, recognized at most every so often, whoever asks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from smartlock.camera.mjpeg import jpeg_size
from smartlock.recognition.schemas import Face
from smartlock.web.clients import CameraLink


class Recognizes(Protocol):
    """What the live view needs of the recognition client."""

    def recognize_jpeg(self, jpeg: bytes, include_predictions: bool = False) -> Sequence[Face]: ...


@dataclass(frozen=True)
class LiveFrame:
    """One recognized frame: its size, the faces in it, when, and the JPEG (kept for the timeline)."""

    width: int
    height: int
    faces: list[Face]
    time: float
    jpeg: bytes = field(repr=False)

    def to_api(self) -> dict[str, Any]:
        """The /api/live/faces answer (without the JPEG)."""
        return {
            "width": self.width,
            "height": self.height,
            "faces": [
                {"label": face.label, "confidence": face.confidence, "box": face.bounding_box.model_dump()}
                for face in self.faces
            ],
            "time": self.time,
        }


class LiveFaces:
    """Faces in the camera's latest frame, recognized at most every ``min_interval`` s however many
    pages ask (one recognition at a time; callers in between get the last answer)."""

    def __init__(
        self,
        camera: CameraLink,
        recognition: Recognizes,
        min_interval: float = 0.4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera = camera
        self.recognition = recognition
        self.min_interval = min_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: LiveFrame | None = None
        self._last_at = -1e9

    def latest(self) -> LiveFrame:
        with self._lock:
            if self._last is not None and self._clock() - self._last_at < self.min_interval:
                return self._last
            jpeg = self.camera.snapshot()
            width, height = jpeg_size(jpeg) or (0, 0)
            faces = list(self.recognition.recognize_jpeg(jpeg))
            self._last = LiveFrame(width, height, faces, time.time(), jpeg)
            self._last_at = self._clock()
            return self._last
