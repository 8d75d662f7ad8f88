"""The kit every HTTP part shares: app factory, error shape, body limits, serve(), secrets, health.

    create_api_app(...)   every error as {"message": ...}, body size capped before parsing
    serve(app, host, port, on_stop=...)   uvicorn; SIGINT/SIGTERM/SIGHUP end it through the finally blocks
    read_secret(path) / ensure_secret(path)   secrets live in 0600 files named by path, nowhere else
    Health   the /health answer of every part
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smartlock.service.app import create_api_app, status_for
    from smartlock.service.health import Health
    from smartlock.service.limits import BodyLimitMiddleware, BodyTooLarge
    from smartlock.service.responses import json_message
    from smartlock.service.secrets import ensure_secret, read_secret, write_secret
    from smartlock.service.server import serve

# Imported on first use: the face contract needs Health, and it must not pull in uvicorn and FastAPI.
_HOMES = {
    "create_api_app": "app", "json_message": "responses", "status_for": "app", "Health": "health",
    "BodyLimitMiddleware": "limits", "BodyTooLarge": "limits", "ensure_secret": "secrets",
    "read_secret": "secrets", "write_secret": "secrets", "serve": "server",
}
__all__ = [
    "BodyLimitMiddleware",
    "BodyTooLarge",
    "Health",
    "create_api_app",
    "ensure_secret",
    "json_message",
    "read_secret",
    "serve",
    "status_for",
    "write_secret",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
