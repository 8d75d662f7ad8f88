"""The `smartlock camera` sub-command: open a source, serve it as MJPEG until interrupted."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Any

from smartlock.camera.settings import CameraSettings

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add `smartlock camera`."""
    parser = subparsers.add_parser(
        "camera",
        help="serve a camera, video file, image folder or URL as an MJPEG stream",
        description=(
            "Serve a camera as MJPEG: GET / (page), /stream.mjpg, /snapshot.jpg, /health. One capture "
            "thread, each frame JPEG-encoded once for every viewer; reconnects when the source fails."
        ),
    )
    CameraSettings.add_options(parser)
    parser.set_defaults(func=run)


def read_token(path: Path) -> str:
    """The camera token in ``path``; ConfigError when missing, empty or readable by other users."""
    from smartlock.service import read_secret

    return read_secret(path, "camera token file")


class RedactTokens(logging.Filter):
    """Masks ``token=`` query values in uvicorn's access log lines (its arguments carry the full path)."""

    _TOKEN = re.compile(r"([?&]token=)[^&\s]*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._TOKEN.sub(r"\1***", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def redact_access_log() -> None:
    """Install RedactTokens on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())


def run(args: argparse.Namespace) -> int:
    """`smartlock camera`: open the source, serve it until interrupted."""
    return serve_camera(CameraSettings.from_args(args))


def serve_camera(settings: CameraSettings) -> int:
    """Open the source ``settings`` name and serve it until SIGINT/SIGTERM/SIGHUP."""
    from smartlock.camera.api import create_app
    from smartlock.camera.sources import open_source
    from smartlock.camera.stream import FrameEncoder, FrameHub
    from smartlock.logs import setup_logging
    from smartlock.service import serve

    setup_logging()
    token = read_token(settings.token_file) if settings.token_file else None
    source = open_source(settings.source, width=settings.width, height=settings.height, fps=settings.fps)
    # Cameras were asked for the size when opened; everything else is scaled when a size is given.
    scale = {} if source.resizes_itself else {"width": settings.width, "height": settings.height}
    encoder = FrameEncoder(quality=settings.quality, rotation=settings.rotation, **scale)
    hub = FrameHub(source, encoder=encoder)
    logger.info(
        "serving %s on http://%s:%d/ (stream at /stream.mjpg)", source.name, settings.host, settings.port
    )
    redact_access_log()
    # The hub is stopped as soon as a stop is asked for: uvicorn waits for open responses, and an MJPEG
    # stream never ends by itself.
    try:
        serve(create_app(hub, token), settings.host, settings.port, on_stop=hub.stop, access_log=True)
    finally:
        hub.stop()
    return 0
