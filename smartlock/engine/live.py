"""The engine's analyses to the dashboard's live view: the newest analysed frame and its boxes, posted as
they come (at most ``max_rate`` a second), nothing while nobody is in view but a heartbeat.

``LivePublisher`` is the engine's ``on_analysis``: it only swaps a reference, so the loop never waits;
a worker thread encodes the JPEG and POSTs ``multipart/form-data`` (``analysis``: JSON, ``frame``: JPEG) with
the webhook token as ``Authorization: Bearer``. A slow or absent dashboard only loses frames.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from smartlock.engine.analysis import Analysis
from smartlock.engine.vision import encode_jpeg_bgr
from smartlock.logs import Outage, redact_url

logger = logging.getLogger(__name__)

LIVE_JPEG_QUALITY = 80
HEARTBEAT = 5.0  # seconds between posts while nobody is in view (the dashboard knows the engine is there)


class LivePublisher:
    def __init__(self, url: str, token: str | None = None, *, max_rate: float = 10.0,
                 heartbeat: float = HEARTBEAT, timeout: float = 2.0, transport: object | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import httpx

        self.url = url
        self.max_rate = max_rate
        self.heartbeat = heartbeat
        self.clock = clock
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self._client = httpx.Client(timeout=timeout, transport=transport,  # type: ignore[arg-type]
                                    headers=headers)
        self._pending: Analysis | None = None
        self._wake = threading.Condition()
        self._stop = False
        self._had_faces = False
        self._last_queued = -1e9
        self.sent = 0
        self.failed = 0
        self._outage = Outage(f"Posting analyses to {redact_url(url)}", logger)
        self._thread = threading.Thread(target=self._run, name="live", daemon=True)
        self._thread.start()

    def __call__(self, analysis: Analysis) -> None:
        """Keep ``analysis`` as the next to post (replacing one not sent yet)."""
        now = self.clock()
        if not analysis.faces and not self._had_faces and now - self._last_queued < self.heartbeat:
            return
        self._had_faces = bool(analysis.faces)
        self._last_queued = now
        with self._wake:
            self._pending = analysis
            self._wake.notify()

    def close(self, timeout: float = 2.0) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout)
        self._client.close()

    def _run(self) -> None:
        import httpx

        interval = 1.0 / self.max_rate
        while True:
            with self._wake:
                while self._pending is None and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                analysis, self._pending = self._pending, None
            if analysis is None:
                continue
            started = self.clock()
            files: dict[str, tuple[str | None, str | bytes, str]] = {
                "analysis": (None, json.dumps(analysis.summary()), "application/json")}
            if analysis.faces:
                jpeg = encode_jpeg_bgr(analysis.image, LIVE_JPEG_QUALITY)
                files["frame"] = ("frame.jpg", jpeg, "image/jpeg")
            try:
                self._client.post(self.url, files=files).raise_for_status()
                self.sent += 1
                self._outage.ok()
            except httpx.HTTPError as err:
                self.failed += 1
                self._outage.failed(err)
            pause = interval - (self.clock() - started)
            if pause > 0:
                time.sleep(pause)
