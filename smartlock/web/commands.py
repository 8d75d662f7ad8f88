"""The `smartlock up` sub-command: the whole system on this machine, with the web dashboard."""

from __future__ import annotations

import argparse
import logging


def register(subparsers: argparse._SubParsersAction) -> None:
    from smartlock.web.up_plan import UpSettings

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
    for name in UpSettings.model_fields:  # SUPPRESS: a flag not given is absent, so saved settings apply
        UpSettings.add_option(parser, name, default=argparse.SUPPRESS,
                              **({"metavar": "PIN"} if name == "pin" else {}))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from smartlock.config import default_data_dir
    from smartlock.logs import setup_logging
    from smartlock.web.up import run_up
    from smartlock.web.up_plan import UpSettings

    settings = UpSettings.from_args(args)
    given = {name for name in UpSettings.model_fields if hasattr(args, name)}
    setup_logging("INFO")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    return run_up(settings, settings.data_dir or default_data_dir(), given)
