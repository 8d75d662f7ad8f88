"""Sub-commands `smartlock service install|uninstall PART` (systemd units) and `smartlock doctor`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smartlock.deploy.systemd import DEFAULT_UNIT_DIR, DEFAULT_USER, PARTS

# Service options that may also follow PART (`service install door --unit-dir DIR --pin 11`); no part
# has flags of these names, except `up --data-dir`, which is then the service's data dir as well.
_TRAILING_OPTIONS = {"--unit-dir": True, "--user": True, "--env-file": True, "--data-dir": True,
                     "--allow-no-auth": False, "--print": False}


def register(subparsers: Any) -> None:
    """Add `smartlock service` and `smartlock doctor`."""
    service = subparsers.add_parser(
        "service",
        help="install or remove a systemd unit that runs one part at boot",
        description="Write (or remove) /etc/systemd/system/smartlock-PART.service: the part runs with the "
        "given flags from this installation, as a dedicated user, sandboxed, restarted when it fails.",
    )
    actions = service.add_subparsers(dest="action", metavar="ACTION", required=True)
    install = actions.add_parser(
        "install",
        help="write smartlock-PART.service",
        description="Write smartlock-PART.service to run `smartlock PART FLAGS...` and print the systemctl "
        "commands that enable and start it. PART's flags are checked by its own parser first; secrets must "
        "be given as files (--secret-file, --api-key-file, --token-file, --door-secret-file, --env-file).",
        usage="smartlock service install [--unit-dir DIR] [--user NAME] [--data-dir DIR] [--env-file FILE] "
        "[--allow-no-auth] [--print] PART [PART's own flags]",
    )
    _add_install_options(install)
    install.add_argument("part", choices=tuple(PARTS), metavar="PART", help=", ".join(PARTS))
    install.add_argument("flags", nargs=argparse.REMAINDER, metavar="FLAGS", help="PART's own flags")
    install.set_defaults(func=run_install)

    uninstall = actions.add_parser("uninstall", help="remove smartlock-PART.service",
                                   description="Remove smartlock-PART.service and its enable links "
                                   "(stop it first: `sudo systemctl disable --now smartlock-PART`).")
    uninstall.add_argument("part", choices=tuple(PARTS), metavar="PART", help=", ".join(PARTS))
    uninstall.add_argument("--unit-dir", type=Path, default=DEFAULT_UNIT_DIR,
                           help=f"where the unit is (default: {DEFAULT_UNIT_DIR})")
    uninstall.set_defaults(func=run_uninstall)
    _register_doctor(subparsers)


def _add_install_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--unit-dir", type=Path, default=DEFAULT_UNIT_DIR,
                        help=f"where to write the unit (default: {DEFAULT_UNIT_DIR})")
    parser.add_argument("--user", default=DEFAULT_USER,
                        help=f"dedicated system user the part runs as (default: {DEFAULT_USER}; never root)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the part's writable data dir and working directory "
                        "(default: /var/lib/smartlock, made by systemd)")
    parser.add_argument("--env-file", type=Path, default=None,
                        help="0600 file of VAR=value lines for the part, e.g. SMARTLOCK_API_KEY=... "
                        "for the engine and collector")
    parser.add_argument("--allow-no-auth", action="store_true",
                        help="install a door started with --no-auth (it opens for anyone on the network)")
    parser.add_argument("--print", action="store_true", help="print the unit instead of writing it")


def split_trailing_options(flags: Sequence[str], part: str) -> tuple[list[str], list[str]]:
    """Separate service options written after PART from PART's own flags."""
    own: list[str] = []
    service: list[str] = []
    tokens = list(flags)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name = token.split("=", 1)[0]
        if name in _TRAILING_OPTIONS and not (part == "up" and name == "--data-dir"):
            takes_value = _TRAILING_OPTIONS[name]
            if takes_value and "=" not in token:
                service += tokens[i:i + 2]
                i += 2
                continue
            service.append(token)
        else:
            own.append(token)
        i += 1
    return service, own


def run_install(args: argparse.Namespace) -> int:
    from smartlock.deploy.install import InstallRequest, next_steps, plan_install, write_unit
    from smartlock.deploy.systemd import systemd_version

    trailing, flags = split_trailing_options(args.flags, args.part)
    if trailing:
        parser = argparse.ArgumentParser(prog="smartlock service install", add_help=False)
        _add_install_options(parser)
        parser.parse_args(trailing, namespace=args)
    request = InstallRequest(part=args.part, flags=tuple(flags), unit_dir=args.unit_dir, user=args.user,
                             data_dir=args.data_dir, env_file=args.env_file, allow_no_auth=args.allow_no_auth)
    plan = plan_install(request, systemd_version=systemd_version())
    for warning in plan.warnings:
        print(f"warning: {warning}")
    if args.print:
        print(plan.text, end="")
        return 0
    write_unit(plan)
    print(f"wrote {plan.path}")
    print("to enable and start it:")
    for step in next_steps(plan):
        print(f"  {step}")
    return 0


def run_uninstall(args: argparse.Namespace) -> int:
    from smartlock.deploy.install import uninstall

    removed = uninstall(args.part, args.unit_dir)
    if not removed:
        print(f"nothing to remove: no smartlock-{args.part}.service in {args.unit_dir}")
        return 0
    for path in removed:
        print(f"removed {path}")
    print("then: sudo systemctl daemon-reload")
    return 0


def _register_doctor(subparsers: Any) -> None:
    from smartlock.door.relay import PIN_FACTORIES

    doctor = subparsers.add_parser(
        "doctor",
        help="check this machine for what the chosen parts need, and say how to fix what is missing",
        description="Check GPIO (pin factory, pin free), camera (opens, frames at the configured size), "
        "model files (sha256), ports, secrets' permissions, clock synchronisation and free disk for the "
        "chosen parts. Exits 1 when a check fails.",
    )
    doctor.add_argument("--parts", default="up",
                        help="comma-separated parts to check for: up, door, camera, recognition, engine, "
                        "collect, vision (default: up, i.e. everything on this machine)")
    doctor.add_argument("-p", "--pin", type=int, help="the relay's physical (BOARD) pin")
    doctor.add_argument("--pin-factory", default="auto", choices=PIN_FACTORIES,
                        help="gpiozero pin library, as for `smartlock door` (default: auto)")
    doctor.add_argument("--active-high", action="store_true",
                        help="the relay unlocks on HIGH (as `smartlock door --active-high`); the pin is "
                        "claimed in its locked state")
    doctor.add_argument("--camera", metavar="SRC",
                        help="camera source as for `smartlock camera --source` (default: the Pi camera, "
                        "else webcam 0)")
    doctor.add_argument("--width", type=int, help="frame width the camera is configured for")
    doctor.add_argument("--height", type=int, help="frame height the camera is configured for")
    doctor.add_argument("--model", type=Path, metavar="MODEL_DIR",
                        help="model folder (default for up/recognition: <data dir>/model)")
    doctor.add_argument("--backend", choices=("arcface", "dlib"),
                        help="backend of a new gallery (an existing gallery names its own)")
    doctor.add_argument("--host", default="0.0.0.0", help="address the services listen on (default: 0.0.0.0)")
    doctor.add_argument("--port", type=int, action="append", default=[], metavar="PORT",
                        help="a port a part will listen on (repeatable; default: the chosen parts' defaults)")
    doctor.add_argument("--data-dir", type=Path,
                        help="data dir (default: $SMARTLOCK_DATA_DIR or the user data directory)")
    doctor.add_argument("--secret-file", type=Path, action="append", default=[], metavar="FILE",
                        help="a secret file to check (repeatable): door secret, API key, camera token")
    doctor.add_argument("--user", help="the user the services run as: secrets must belong to it")
    doctor.add_argument("--min-free-mb", type=float, default=1024.0,
                        help="free disk the data dir needs, in MB (default: 1024)")
    doctor.set_defaults(func=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    from smartlock.deploy import doctor

    options = doctor.DoctorOptions(
        parts=doctor.parse_parts(args.parts), pin=args.pin, pin_factory=args.pin_factory,
        active_high=args.active_high,
        camera=args.camera, width=args.width, height=args.height, model=args.model, backend=args.backend,
        host=args.host, ports=tuple(args.port), data_dir=args.data_dir, secret_files=tuple(args.secret_file),
        user=args.user, min_free_mb=args.min_free_mb,
    )
    print(f"smartlock doctor: checking for {', '.join(options.parts)}")
    results = doctor.run_checks(doctor.plan_checks(options))
    print(doctor.format_report(results))
    return doctor.exit_code(results)
