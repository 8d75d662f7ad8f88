"""Where the engine's results go: the unlock-frames log (seed layout, see files.py, with retention) and
webhooks; and the background pruner that enforces retention off the unlock path."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from smartlock.engine.files import marker_name, prune_unlock_frames, unlock_frames_dir, write_unlock_frame
from smartlock.engine.policy import Decision
from smartlock.engine.settings import DEFAULT_KEEP_DAYS, DEFAULT_KEEP_UNLOCKS
from smartlock.engine.vision import encode_jpeg_bgr
from smartlock.logs import redact_url
from smartlock.recognition.schemas import Face

logger = logging.getLogger(__name__)

# (log_path, frame JPEG, faces.json document, markers) -> the new folder; raises OSError (full disk, ...)
UnlockWriter = Callable[[Path, bytes, dict[str, Any], list[str]], Path]
PRUNE_EVERY = 3600.0  # retention is in days: an hourly sweep (plus one soon after each save) is plenty
PRUNE_GAP = 10.0  # at most one sweep per this many seconds, however fast frames are saved


class Pruner:
    """Runs ``prune`` in a daemon thread: at start, every ``every`` seconds and soon after each ``poke()``
    (a save), never more often than every ``gap`` seconds. It never runs in the caller's thread, so an
    unlock never waits for it, and a failure is logged, never raised."""

    def __init__(self, prune: Callable[[], int], what: str, every: float = PRUNE_EVERY,
                 gap: float = PRUNE_GAP) -> None:
        self._prune = prune
        self.what = what
        self._every = every
        self._gap = gap
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.sweeps = 0
        self.removed = 0
        self._thread = threading.Thread(target=self._run, name=f"prune {what}", daemon=True)

    def start(self) -> Pruner:
        self._thread.start()
        return self

    def poke(self) -> None:
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        from smartlock.logs import Outage

        trouble = Outage(f"Removing old {self.what}", logger)
        while not self._stop.is_set():
            self._wake.clear()
            try:
                removed = self._prune()
            except Exception as err:  # a sweep that fails is retried at the next one
                trouble.failed(err)
            else:
                trouble.ok()
                self.removed += removed
                if removed:
                    logger.info("Retention: removed %d old %s", removed, self.what)
            self.sweeps += 1
            if self._stop.wait(self._gap):
                return
            self._wake.wait(self._every)


class UnlockLog:
    """``<log-path>/unlock-frames/<timestamp>/``: frame.jpeg, faces.json and one empty file
    ``<label>-<confidence>`` per face above the threshold (the seed's marker); layout in engine/files.py.
    At most ``keep_count`` folders, none older than ``keep_days``, once ``start_pruning`` runs."""

    def __init__(self, log_path: Path, threshold: float, *, keep_days: float = DEFAULT_KEEP_DAYS,
                 keep_count: int = DEFAULT_KEEP_UNLOCKS, writer: UnlockWriter = write_unlock_frame) -> None:
        self.log_path = Path(log_path)
        self.threshold = threshold
        self.keep_days = keep_days
        self.keep_count = keep_count
        self._writer = writer
        self.pruner: Pruner | None = None

    def prune(self, now: float | None = None) -> int:
        """Apply the retention now (``now``: wall-clock seconds, for tests); how many folders went."""
        return prune_unlock_frames(self.log_path, self.keep_days, self.keep_count, now)

    def start_pruning(self, every: float = PRUNE_EVERY, gap: float = PRUNE_GAP) -> Pruner:
        self.pruner = Pruner(self.prune, "unlock frames", every, gap).start()
        return self.pruner

    def close(self) -> None:
        if self.pruner is not None:
            self.pruner.close()

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
        folder = self._writer(self.log_path, encode_jpeg_bgr(image_bgr), document, markers)
        if self.pruner is not None:
            self.pruner.poke()
        return folder


class EventSink(Protocol):
    def emit(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class NullSink:
    def emit(self, event: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class TeeSink:
    """Every event to each of several sinks (the webhook and MQTT); one failing never stops the others."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = sinks

    def emit(self, event: dict[str, Any]) -> None:
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception:
                logger.exception("event sink %s failed", type(sink).__name__)

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                logger.exception("closing event sink %s failed", type(sink).__name__)


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
        self.sent = 0
        self.failed = 0
        self._hook = BackgroundHook(self._post, "webhook", size=max_queue)

    @property
    def dropped(self) -> int:
        return self._hook.dropped

    def emit(self, event: dict[str, Any]) -> None:
        before = self._hook.dropped
        self._hook(event)
        if self.dropped != before and (self.dropped == 1 or self.dropped % 100 == 0):
            logger.warning("Webhook queue full: %d event(s) dropped so far", self.dropped)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (within ``timeout``), then stop the worker."""
        self._hook.close(timeout)
        self._client.close()

    def _post(self, event: dict[str, Any]) -> None:
        import httpx

        try:
            response = self._client.post(self.url, json=event)
            response.raise_for_status()
            self.sent += 1
        except httpx.HTTPError as err:
            self.failed += 1
            logger.warning("Webhook %s failed for a %r event: %s", redact_url(self.url),
                           event.get("event"), redact_url(str(err)))
        except Exception as err:  # e.g. a value JSON cannot carry: this event is lost, not the later ones
            self.failed += 1
            logger.warning("Webhook %s: a %r event could not be sent: %s: %s", redact_url(self.url),
                           event.get("event"), type(err).__name__, redact_url(str(err)))


class BackgroundHook:
    """Runs ``work(item)`` in a daemon thread, so a slow consumer (the collector writing to disk) never
    delays the engine; at most ``size`` items wait, newer ones are dropped and counted when it is busy."""

    def __init__(self, work: Callable[[Any], object], what: str, size: int = 2) -> None:
        self._work = work
        self.what = what
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=what, daemon=True)
        self._thread.start()

    def __call__(self, item: Any) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self._work(item)
            except Exception:
                logger.exception("%s failed on one item; carrying on", self.what)


_STOP = object()
