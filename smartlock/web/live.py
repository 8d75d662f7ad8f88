"""The live view's faces: the engine's newest analysed frame with its boxes, else the camera's latest frame
recognised here (at most every so often, whoever asks) when no engine reports to this dashboard.

Under `smartlock up` the engine posts every frame it analyses while faces are in view (and a heartbeat
while nobody is), so the page shows the very frame the boxes were computed on and the dashboard never
runs a recognition of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from smartlock.camera.mjpeg import jpeg_size
from smartlock.recognition.schemas import BoundingBox, Face, Prediction
from smartlock.web.clients import CameraLink

ENGINE_FRESH = 1.5  # seconds: an engine analysis older than this no longer shows what is in view
ENGINE_PRESENT = 15.0  # seconds since the engine's last post (heartbeats every 5 s) to count it as present


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
    seq: int | None = None  # the engine's frame number, when the engine analysed it
    shown: list[dict[str, Any]] | None = None  # the engine's boxes (with tracks), for the page

    def to_api(self) -> dict[str, Any]:
        """The /api/live/faces answer (without the JPEG)."""
        faces = self.shown if self.shown is not None else [
            {"label": face.label, "confidence": face.confidence, "box": face.bounding_box.model_dump()}
            for face in self.faces
        ]
        return {
            "width": self.width,
            "height": self.height,
            "faces": faces,
            "time": self.time,
            "seq": self.seq,
            "source": "engine" if self.seq is not None else "dashboard",
            "frame": f"/api/live/frame.jpg?seq={self.seq}" if self.seq is not None and self.jpeg else None,
        }


@dataclass(frozen=True)
class EngineAnalysis:
    summary: dict[str, Any]
    jpeg: bytes | None
    received: float


class LiveFaces:
    """Faces in view: the engine's analysis when it reports here, else the camera's latest frame recognized
    at most every ``min_interval`` s however many pages ask (one recognition at a time)."""

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
        self._engine: EngineAnalysis | None = None

    def from_engine(self, summary: dict[str, Any], jpeg: bytes | None) -> None:
        """Keep the engine's newest analysis (``summary`` already validated by the route)."""
        with self._lock:
            self._engine = EngineAnalysis(summary, jpeg, self._clock())

    @property
    def engine_present(self) -> bool:
        engine = self._engine
        return engine is not None and self._clock() - engine.received < ENGINE_PRESENT

    def engine_frame(self, seq: int | None = None) -> bytes | None:
        """The JPEG of the engine's newest analysis (of frame ``seq``, when given)."""
        engine = self._engine
        if engine is None or engine.jpeg is None:
            return None
        if seq is not None and engine.summary.get("seq") != seq:
            return None
        return engine.jpeg

    def latest(self) -> LiveFrame:
        with self._lock:
            engine = self._engine
            if engine is not None and self._clock() - engine.received < ENGINE_PRESENT:
                fresh = self._clock() - engine.received < ENGINE_FRESH
                if fresh and engine.jpeg and engine.summary.get("faces"):
                    return _engine_frame(engine)
                return self._camera_frame(recognise=False)
            return self._camera_frame(recognise=True)

    def _camera_frame(self, recognise: bool) -> LiveFrame:
        """The camera's latest frame, recognised here, or without faces when the engine says nobody is in
        view; reused for ``min_interval`` s however many pages ask."""
        last = self._last
        recent = last is not None and self._clock() - self._last_at < self.min_interval
        if last is not None and recent and (recognise or not last.faces):
            return last
        jpeg = self.camera.snapshot()
        width, height = jpeg_size(jpeg) or (0, 0)
        faces = list(self.recognition.recognize_jpeg(jpeg)) if recognise else []
        self._last = LiveFrame(width, height, faces, time.time(), jpeg, shown=None if recognise else [])
        self._last_at = self._clock()
        return self._last


def _engine_frame(engine: EngineAnalysis) -> LiveFrame:
    summary = engine.summary
    faces = []
    for shown in summary["faces"]:
        if shown.get("label") is None or shown.get("confidence") is None:
            continue
        faces.append(Face(top_prediction=Prediction(label=shown["label"], confidence=shown["confidence"]),
                          bounding_box=BoundingBox(**shown["box"])))
    return LiveFrame(int(summary["width"]), int(summary["height"]), faces, float(summary["time"]),
                     engine.jpeg or b"", seq=int(summary["seq"]), shown=list(summary["faces"]))
