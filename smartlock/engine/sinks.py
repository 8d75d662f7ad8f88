"""Where the engine's results go: the unlock-frames log (seed layout), files written atomically, webhooks."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import tempfile
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from smartlock.engine.policy import Decision, Face
from smartlock.engine.vision import encode_jpeg

logger = logging.getLogger(__name__)


def current_timestamp(now: datetime | None = None) -> str:
    """Local time with its UTC offset, to the second, space-separated: the seed's folder and file names."""
    now = now or datetime.now()
    return now.astimezone().replace(microsecond=0).isoformat(" ")


def unique_path(path: Path) -> Path:
    """``path``, or ``stem-2.ext``, ``stem-3.ext``, ... when it exists (several saves in one second)."""
    if not path.exists():
        return path
    for index in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}-{index}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"too many files named like {path}")


class UnlockLog:
    """``<log-path>/unlock-frames/<timestamp>/``: frame.jpeg, faces.json and one empty file
    ``<label>-<confidence>`` per face above the threshold (the seed's marker). The folder is built
    under a temporary name and renamed, so a reader never sees it half written."""

    def __init__(self, log_path: Path, threshold: float) -> None:
        self.root = Path(log_path) / "unlock-frames"
        self.threshold = threshold

    def save(self, image_bgr: np.ndarray, faces: Sequence[Face], decision: Decision,
             extra: dict | None = None) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        target = unique_path(self.root / current_timestamp())
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".incoming-"))
        try:
            (staging / "frame.jpeg").write_bytes(encode_jpeg(image_bgr))
            document = {
                "faces": [face.to_api() for face in faces],
                "decision": {
                    "label": decision.label,
                    "confidence": decision.confidence,
                    "frames": decision.frames,
                    "confidences": list(decision.confidences),
                },
                "threshold": self.threshold,
                **(extra or {}),
            }
            (staging / "faces.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
            for face in faces:
                if face.confidence > self.threshold:
                    (staging / f"{face.label}-{face.confidence}").touch()
            os.replace(staging, target)
        except BaseException:
            for leftover in staging.glob("*"):
                with contextlib.suppress(OSError):
                    leftover.unlink()
            with contextlib.suppress(OSError):
                staging.rmdir()
            raise
        return target


class EventSink(Protocol):
    def emit(self, event: dict) -> None: ...

    def close(self) -> None: ...


class NullSink:
    def emit(self, event: dict) -> None:
        pass

    def close(self) -> None:
        pass


class WebhookSink:
    """POSTs each event as JSON from a worker thread: ``emit`` never blocks, a slow or failing webhook
    only loses its own events (the queue is bounded; when full, new events are dropped and counted)."""

    def __init__(self, url: str, timeout: float = 2.0, max_queue: int = 100,
                 transport: object | None = None) -> None:
        import httpx

        self.url = url
        self._client = httpx.Client(timeout=timeout, transport=transport)  # type: ignore[arg-type]
        self._queue: queue.Queue[dict | None] = queue.Queue(maxsize=max_queue)
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def emit(self, event: dict) -> None:
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
                logger.warning("Webhook %s failed for a %r event: %s", self.url, event.get("event"), err)
