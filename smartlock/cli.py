"""The `smartlock` command: argument parsing only; each part's `commands` module adds its sub-commands.

A part's commands module exposes ``register(subparsers)``; each sub-command it adds sets
``func=callable(args) -> int | None`` with ``parser.set_defaults``. Those modules import nothing heavy
at import time, so ``smartlock --help`` works on any machine.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from smartlock import __version__
from smartlock.errors import SmartlockError

# Order here is the order of `smartlock --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "smartlock.recognition.serve_command",
    "smartlock.recognition.commands",
    "smartlock.engine.commands",
    "smartlock.engine.combined",
    "smartlock.door.commands",
    "smartlock.camera.commands",
    "smartlock.web.commands",
    "smartlock.deploy.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smartlock",
        description="Face-recognition door lock: camera, recognition API, door API, engine and dashboard.",
    )
    parser.add_argument("--version", action="version", version=f"smartlock {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        return 130
    except SmartlockError as err:
        print(f"smartlock {args.command}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
