"""The kit every HTTP part shares: app factory, error shape, body limits, serve(), secrets, health.

    create_api_app(...)   every error as {"message": ...}, body size capped before parsing
    serve(app, host, port, on_stop=...)   uvicorn with signal handling: SIGTERM/SIGHUP end it cleanly
    read_secret(path) / ensure_secret(path)   secrets live in 0600 files named by path, nowhere else
    Health   the /health answer of every part
"""

from smartlock.service.app import create_api_app, json_message, status_for
from smartlock.service.health import Health
from smartlock.service.limits import BodyLimitMiddleware, BodyTooLarge
from smartlock.service.secrets import ensure_secret, read_secret, write_secret
from smartlock.service.serve import serve

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
