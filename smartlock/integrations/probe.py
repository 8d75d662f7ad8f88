"""MqttProbe: the door's MQTT state for the dashboard's health line, read from the door's public /health in
the background (the dashboard's request never waits for the door, let alone for the broker)."""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger(__name__)


class MqttProbe:
    """``probe()`` -> "connected" / "disconnected" / "unknown" (last known), refreshed at most every
    ``every`` seconds on a background thread."""

    def __init__(self, health_url: str, every: float = 5.0, timeout: float = 1.0) -> None:
        self.health_url = health_url
        self.every = every
        self.timeout = timeout
        self.value = "unknown"
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self._busy = False

    def __call__(self) -> str:
        with self._lock:
            due = not self._busy and time.monotonic() - self._checked >= self.every
            if due:
                self._busy = True
                self._checked = time.monotonic()
        if due:
            threading.Thread(target=self._refresh, name="mqtt-probe", daemon=True).start()
        return self.value

    def _refresh(self) -> None:
        import httpx

        try:
            answer = httpx.get(self.health_url, timeout=self.timeout).json()
            value = answer.get("mqtt") if isinstance(answer, dict) else None
            self.value = value if value in ("connected", "disconnected") else "unknown"
        except (httpx.HTTPError, ValueError) as err:
            logger.debug("door health not read: %s", err)
            self.value = "unknown"
        finally:
            with self._lock:
                self._busy = False
