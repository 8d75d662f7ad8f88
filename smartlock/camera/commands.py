"""The `smartlock camera` sub-command: open a source, serve it as MJPEG until interrupted."""

from __future__ import annotations

import argparse
import logging
import re
import stat
import threading
from pathlib import Path
from typing import Any

from smartlock.errors import ConfigError

log = logging.getLogger(__name__)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be within 1..100, not {text}")
    return value


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
    parser.add_argument(
        "--source",
        metavar="SRC",
        help="picamera, a device index (0) or /dev/videoN, a video file (looped at its own frame rate), "
        "a folder of images (slideshow at --fps), or an http(s):// or rtsp:// URL to relay. "
        "Default: picamera where picamera2 imports, else device 0",
    )
    parser.add_argument(
        "--width",
        type=_positive_int,
        help="frame width (default 1280 for cameras; files, folders and URLs keep their own size unless "
        "given; one of --width/--height alone keeps the aspect ratio)",
    )
    parser.add_argument(
        "--height", type=_positive_int, help="frame height (default 720 for cameras; as --width)"
    )
    parser.add_argument(
        "--fps",
        type=_positive_float,
        default=24.0,
        help=(
            "frame rate asked of a camera, slideshow and snapshot-URL rate (default 24); "
            "video files play at their own rate"
        ),
    )
    parser.add_argument("--quality", type=_quality, default=80, help="JPEG quality 1..100 (default 80)")
    parser.add_argument(
        "--rotation", type=int, choices=(0, 90, 180, 270), default=0, help="clockwise rotation (default 0)"
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=80, help="port to listen on (default 80)")
    parser.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="file holding a token that the stream and snapshot then require "
        "(Authorization: Bearer, X-Token or ?token=)",
    )
    parser.set_defaults(func=run)


def read_token(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace ignored); ConfigError when unreadable or empty."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the token file {path}: {err}") from err
    token = text.strip()
    if not token:
        raise ConfigError(f"the token file {path} is empty")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the token file %s is readable by other users: chmod 600 it", path)
    return token


class RedactTokens(logging.Filter):
    """Masks ``token=`` query values in uvicorn's access log lines (its arguments carry the full path)."""

    _TOKEN = re.compile(r"([?&]token=)[^&\s]*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._TOKEN.sub(r"\1***", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def serve(app: Any, hub: Any, host: str, port: int) -> None:
    """Run uvicorn until SIGINT/SIGTERM; endless MJPEG streams are ended first so shutdown is quick."""
    import uvicorn

    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # uvicorn waits for open responses before shutting down, and a stream never ends by itself.
            # Stop the hub from another thread: this runs inside a signal handler.
            threading.Thread(target=hub.stop, name="camera-stop", daemon=True).start()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, log_level="info", timeout_graceful_shutdown=5
    )
    _Server(config).run()


def run(args: argparse.Namespace) -> int:
    """`smartlock camera`: open the source, serve it until interrupted."""
    from smartlock.camera.api import create_app
    from smartlock.camera.sources import open_source
    from smartlock.camera.stream import FrameEncoder, FrameHub
    from smartlock.logs import setup_logging

    setup_logging()
    token = read_token(args.token_file) if args.token_file else None
    source = open_source(args.source, width=args.width, height=args.height, fps=args.fps)
    # Cameras were asked for the size when opened; everything else is scaled when a size is given.
    scale = {} if source.resizes_itself else {"width": args.width, "height": args.height}
    encoder = FrameEncoder(quality=args.quality, rotation=args.rotation, **scale)
    hub = FrameHub(source, encoder=encoder)
    log.info("serving %s on http://%s:%d/ (stream at /stream.mjpg)", source.name, args.host, args.port)
    serve(create_app(hub, token), hub, args.host, args.port)
    return 0
