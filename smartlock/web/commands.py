"""The `smartlock up` sub-command: the whole system on this machine, with the web dashboard."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "up",
        help="run camera, recognition, door, engine and the web dashboard together on this machine",
        description=(
            "Start every part of smartlock on this machine and serve the dashboard. The relay is simulated "
            "(gpiozero's mock pins) unless --pin is given; the camera is webcam 0 unless --camera names a "
            "video file, a folder of images, a device or a stream URL. Ctrl-C stops everything and leaves "
            "the door locked."
        ),
    )
    parser.add_argument(
        "--camera", metavar="SRC", default=None,
        help="camera source: a device index (0), /dev/videoN, a video file (looped), a folder of images, an "
        "http(s)/rtsp URL, or picamera (default: the Pi camera where picamera2 is installed, else webcam 0)",
    )
    parser.add_argument(
        "--pin", type=int, default=None, metavar="PIN",
        help="physical (BOARD) pin of the relay: drives real GPIO; without it the relay is simulated",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, metavar="DIR",
        help="gallery, events, unlock frames and secrets (default: the user's data directory, "
        "$SMARTLOCK_DATA_DIR overrides)",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address of the dashboard (default: %(default)s; 0.0.0.0 for the whole network)")
    parser.add_argument("--port", type=int, default=8000, help="port of the dashboard (default: %(default)s)")
    parser.add_argument(
        "--backend", choices=("arcface", "dlib"), default=None,
        help="recognition backend of a new gallery: arcface (default; accurate, but InsightFace licenses its "
        "weights for non-commercial research only) or dlib (permissive licence, weaker). An existing gallery "
        "keeps the backend it was made with.",
    )
    parser.add_argument(
        "--password-file", type=Path, default=None, metavar="FILE",
        help="set the dashboard password from this file (else the first run prints a one-time setup link)",
    )
    parser.add_argument("--lock-delay", type=float, default=3.0, metavar="SECONDS",
                        help="how long an unlock keeps the door open (default: %(default)s)")
    parser.add_argument("--no-collector", dest="collect", action="store_false",
                        help="do not run the data collector (frames below the threshold, for enrollment)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from smartlock.config import default_data_dir
    from smartlock.errors import ConfigError
    from smartlock.logs import setup_logging
    from smartlock.web.up import UpOptions, run_up

    setup_logging("INFO")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    if not 0 < args.lock_delay <= 600:
        raise ConfigError(f"--lock-delay must be in (0, 600] seconds, got {args.lock_delay}")
    options = UpOptions(
        data_dir=args.data_dir or default_data_dir(),
        camera=args.camera,
        pin=args.pin,
        host=args.host,
        port=args.port,
        backend=args.backend,
        password_file=args.password_file,
        collect=args.collect,
        lock_delay=args.lock_delay,
    )
    return run_up(options)
