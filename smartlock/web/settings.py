"""Settings changed from the dashboard (the unlock threshold), kept in a JSON file across restarts."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from pydantic import Field, ValidationError

from smartlock.config import StrictModel
from smartlock.engine.settings import DEFAULT_THRESHOLD
from smartlock.errors import ConfigError
from smartlock.fileio import atomic_write

logger = logging.getLogger(__name__)

class DashboardSettings(StrictModel):
    # Stricter than the engine's [0, 1]: from a browser, 0 (anyone enrolled-looking) and 1 (nobody) are
    # mistakes, not settings.
    threshold: float = Field(
        DEFAULT_THRESHOLD, gt=0.0, lt=1.0, description="confidence a face needs for the engine to unlock"
    )


class SettingsStore:
    """The current DashboardSettings; ``update`` validates, saves atomically, then calls the listeners."""

    def __init__(self, path: Path, defaults: DashboardSettings | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[DashboardSettings, DashboardSettings], None]] = []
        self._current = self._read() or defaults or DashboardSettings()

    @property
    def current(self) -> DashboardSettings:
        return self._current

    def subscribe(self, listener: Callable[[DashboardSettings, DashboardSettings], None]) -> None:
        """``listener(old, new)`` runs after every saved change."""
        self._listeners.append(listener)

    def update(self, **changes: object) -> DashboardSettings:
        with self._lock:
            old = self._current
            try:
                new = DashboardSettings(**{**old.model_dump(), **changes})
            except ValidationError as err:
                raise ConfigError(_first_error(err)) from err
            atomic_write(self.path, new.model_dump_json(indent=2).encode("utf-8"))
            self._current = new
        if new != old:
            for listener in self._listeners:
                listener(old, new)
        return new

    def _read(self) -> DashboardSettings | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return DashboardSettings(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, ValidationError) as err:
            logger.warning("ignoring unreadable settings file %s: %s", self.path, err)
            return None


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid value')}" if where else str(first.get("msg"))
