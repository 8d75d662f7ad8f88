"""Where the engine's results go: the unlock-frames log (seed layout, see files.py) and webhooks."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from smartlock.engine.access import redact_url
from smartlock.engine.files import marker_name, unlock_frames_dir, write_unlock_frame
from smartlock.engine.policy import Decision
from smartlock.engine.vision import encode_jpeg_bgr
from smartlock.recognition.schemas import Face

logger = logging.getLogger(__name__)


class UnlockLog:
    """``<log-path>/unlock-frames/<timestamp>/``: frame.jpeg, faces.json and one empty file
    ``<label>-<confidence>`` per face above the threshold (the seed's marker); layout in engine/files.py."""

    def __init__(self, log_path: Path, threshold: float) -> None:
        self.log_path = Path(log_path)
        self.threshold = threshold

    @property
    def root(self) -> Path:
        return unlock_frames_dir(self.log_path)

    def save(self, image_bgr: np.ndarray, faces: Sequence[Face], decision: Decision,
             extra: dict[str, Any] | None = None) -> Path:
        document = {
            "faces": [face.model_dump(mode="json") for face in faces],
            "decision": {
                "label": decision.label,
                "confidence": decision.confidence,
                "frames": decision.frames,
                "confidences": list(decision.confidences),
            },
            "threshold": self.threshold,
            **(extra or {}),
        }
        markers = [marker_name(face) for face in faces if face.confidence > self.threshold]
        return write_unlock_frame(self.log_path, encode_jpeg_bgr(image_bgr), document, markers)


class EventSink(Protocol):
    def emit(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class NullSink:
    def emit(self, event: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class WebhookSink:
    """POSTs each event as JSON from a worker thread: ``emit`` never blocks, a slow or failing webhook
    only loses its own events (the queue is bounded; when full, new events are dropped and counted)."""

    def __init__(self, url: str, timeout: float = 2.0, max_queue: int = 100,
                 transport: object | None = None, token: str | None = None) -> None:
        import httpx

        self.url = url
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self._client = httpx.Client(timeout=timeout, transport=transport,  # type: ignore[arg-type]
                                    headers=headers)
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def emit(self, event: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                logger.warning("Webhook queue full: %d event(s) dropped so far", self.dropped)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (within ``timeout``), then stop the worker."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        self._client.close()

    def _run(self) -> None:
        import httpx

        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                response = self._client.post(self.url, json=event)
                response.raise_for_status()
                self.sent += 1
            except httpx.HTTPError as err:
                self.failed += 1
                logger.warning("Webhook %s failed for a %r event: %s", redact_url(self.url),
                               event.get("event"), redact_url(str(err)))
