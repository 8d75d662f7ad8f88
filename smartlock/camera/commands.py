"""The `smartlock camera` sub-command: open a source, serve it as MJPEG until interrupted.

Stream and snapshot need a token by default: without --token-file the camera keeps one in the data
directory, created on first start and then shown once, as a ready-to-open URL, on the terminal only.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from smartlock.camera.settings import CameraSettings
from smartlock.camera.signing import viewing_token
from smartlock.service.secrets import write_secret

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


def default_token_file() -> Path:
    """Where the camera keeps its token when no --token-file is given."""
    from smartlock.config import default_data_dir

    return default_data_dir() / "camera" / "token"


def camera_token(settings: CameraSettings) -> tuple[str | None, Path | None, bool]:
    """(token, its file, whether it was created just now); (None, None, False) with --no-auth.

    A --token-file that does not exist yet is created, like the default one, with a random token (0600)."""
    from smartlock.service import ensure_secret

    if settings.no_auth:
        return None, None, False
    path = settings.token_file or default_token_file()
    token, created = ensure_secret(path, what="camera token file")
    return token, path, created


def write_viewing_token(token_file: Path | None, secret: str) -> Path | None:
    """Keep the viewing token (derived from the secret) next to it, 0600, for people to open the stream."""
    if token_file is None:
        return None
    path = token_file.with_name(token_file.name + ".view")
    try:
        if not path.exists() or path.read_text(encoding="utf-8").strip() != viewing_token(secret):
            write_secret(path, viewing_token(secret))
    except OSError as err:  # e.g. a read-only /etc under systemd: the camera serves all the same
        logger.warning("cannot keep the viewing token in %s (%s): the camera serves all the same; run it "
                       "once where that folder is writable to get the file", path, err.strerror or err)
        return None
    return path


def page_url(settings: CameraSettings, token: str) -> str:
    """The camera page with the token, for the terminal: the machine's name when it listens everywhere."""
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.tls else "http"
    return f"{scheme}://{host}:{settings.port}/?token={quote(token, safe='')}"


def show_token_url(settings: CameraSettings, token: str, out: TextIO | None = None) -> bool:
    """Print the ready-to-open URL to ``out`` (stderr) when it is a terminal: never to a log or a file,
    where the token would outlive the moment. True when printed."""
    out = out if out is not None else sys.stderr
    if not out.isatty():
        return False
    print(f"\nOpen the camera (the token is in the URL, keep it private):\n  {page_url(settings, token)}\n",
          file=out, flush=True)
    return True


def redact_access_log() -> None:
    from smartlock.logs import RedactTokens

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
    token, token_file, created = camera_token(settings)
    source_token = read_token(settings.source_token_file) if settings.source_token_file else None
    source = open_source(settings.source, width=settings.width, height=settings.height, fps=settings.fps,
                         token=source_token)
    # Cameras were asked for the size when opened; everything else is scaled when a size is given.
    scale = {} if source.resizes_itself else {"width": settings.width, "height": settings.height}
    encoder = FrameEncoder(quality=settings.quality, rotation=settings.rotation, **scale)
    hub = FrameHub(source, encoder=encoder)
    scheme = "https" if settings.tls else "http"
    logger.info(
        "serving %s on %s://%s:%d/ (stream at /stream.mjpg)",
        source.name, scheme, settings.host, settings.port,
    )
    if token is None:
        logger.warning(
            "AUTHENTICATION IS OFF (--no-auth): anyone on the network can watch this camera, and its frames "
            "are unsigned, so an engine cannot tell them from a rogue stream's"
        )
    else:
        viewer_file = write_viewing_token(token_file, token)
        logger.info(
            "frames are signed with the secret in %s%s (give it to the engine and collector: "
            "--camera-token-file); people watch with the viewing token in %s (Authorization: Bearer, "
            "X-Token or ?token=), which cannot sign frames", token_file, " (created now)" if created else "",
            viewer_file,
        )
        if created:
            show_token_url(settings, viewing_token(token))
    redact_access_log()
    # The hub is stopped as soon as a stop is asked for: uvicorn waits for open responses, and an MJPEG
    # stream never ends by itself.
    try:
        serve(create_app(hub, token), settings.host, settings.port, on_stop=hub.stop, access_log=True,
              tls_cert=settings.tls_cert, tls_key=settings.tls_key)
    finally:
        hub.stop()
    return 0
