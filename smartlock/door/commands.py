"""Sub-commands `smartlock door` (the Door API service) and `smartlock unlock` (one signed unlock)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from smartlock.door.relay import PIN_FACTORIES  # gpiozero itself is imported only when a relay is made
from smartlock.errors import ConfigError

logger = logging.getLogger("smartlock.door")

DEFAULT_PORT = 80
DEFAULT_LOCK_DELAY = 3.0


def register(subparsers: Any) -> None:
    """Add `smartlock door` and `smartlock unlock`."""
    door = subparsers.add_parser(
        "door",
        help="run the Door API: a GPIO relay behind signed unlock requests",
        description="Door API for an electric strike driven by a relay on a Raspberry Pi GPIO pin. "
        "POST /unlock (signed) opens the door for --lock-delay seconds.",
    )
    door.add_argument("-p", "--pin", type=int,
                      help="Index of GPIO pin (in GPIO.BOARD mode) which controls relay.")
    door.add_argument("-d", "--lock-delay", type=float, default=DEFAULT_LOCK_DELAY,
                      help="How long the relay stays activated (door unlocked), in seconds (default: 3).")
    door.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    door.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (default: 80)")
    door.add_argument("--secret-file", type=Path,
                      help="shared secret that signs requests (see --generate-secret)")
    door.add_argument("--no-auth", action="store_true",
                      help="accept UNSIGNED requests (only for the seed's clients): anyone can unlock")
    door.add_argument("--pin-factory", default="auto",
                      choices=PIN_FACTORIES,
                      help="gpiozero pin library; `mock` simulates the relay off a Pi (default: auto)")
    door.add_argument("--active-high", action="store_true",
                      help="pin HIGH unlocks (default: active-low as the seed: HIGH locked, LOW unlocked)")
    door.add_argument("--events-db", type=Path,
                      help="SQLite audit log (default: <data dir>/door/events.sqlite3)")
    door.add_argument("--generate-secret", type=Path, metavar="FILE",
                      help="write a new random secret to FILE (mode 0600) and exit")
    door.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    door.set_defaults(func=run_door)

    unlock = subparsers.add_parser(
        "unlock",
        help="send one signed unlock to a Door API (or print the curl command)",
        description="Send one signed POST /unlock, or print the equivalent curl command.",
    )
    unlock.add_argument("--door-api-url", required=True, help="the door's unlock URL, e.g. http://DOOR_IP/unlock")
    unlock.add_argument("--secret-file", type=Path, help="the door's shared secret")
    unlock.add_argument("--no-auth", action="store_true",
                        help="send an unsigned request (--no-auth doors only)")
    unlock.add_argument("--print-curl", action="store_true",
                        help="print the signed curl command instead of sending it (valid for 30 s, once)")
    unlock.add_argument("--person", help="recorded in the door's audit")
    unlock.add_argument("--confidence", type=float, help="recorded in the door's audit")
    unlock.add_argument("--source", default="cli", help="recorded in the door's audit (default: cli)")
    unlock.add_argument("--timeout", type=float, default=2.0, help="seconds per try (default: 2)")
    unlock.add_argument("--tries", type=int, default=3, help="tries on network errors (default: 3)")
    unlock.set_defaults(func=run_unlock)


def run_door(args: argparse.Namespace) -> int:
    """`smartlock door`: write a secret, or serve the Door API until a signal; the relay ends locked."""
    from smartlock.door.auth import generate_secret

    if args.generate_secret is not None:
        secret = generate_secret(args.generate_secret)
        print(f"wrote a new door secret to {args.generate_secret} (key id {secret.key_id}, mode 0600)")
        print("copy it, privately, to every machine that unlocks this door (engine, `smartlock unlock`)")
        return 0
    if args.pin is None:
        raise ConfigError("--pin is required: the physical (BOARD) pin number that drives the relay")
    if not args.lock_delay > 0:
        raise ConfigError("--lock-delay must be a positive number of seconds")
    if args.no_auth and args.secret_file:
        raise ConfigError("--no-auth and --secret-file exclude each other")
    if not args.no_auth and args.secret_file is None:
        raise ConfigError(
            "give --secret-file FILE (create one with `smartlock door --generate-secret FILE`), "
            "or --no-auth to accept the seed's unsigned requests"
        )

    from smartlock.config import default_data_dir
    from smartlock.door.auth import RequestVerifier, load_secret
    from smartlock.door.events import EventLog
    from smartlock.door.relay import Relay, make_pin_factory
    from smartlock.logs import setup_logging

    setup_logging(args.log_level)
    # Nonces are remembered in memory only, and timestamps are whole seconds: refuse everything signed
    # in or before the second this process started (a request captured before a restart cannot be
    # replayed after it), and answer nothing before the next second begins (a fresh one is never refused).
    not_before = int(time.time()) + 1
    verifier = None if args.no_auth else RequestVerifier(load_secret(args.secret_file), not_before=not_before)
    events_path = args.events_db or default_data_dir() / "door" / "events.sqlite3"
    previous = _exit_cleanly_on((signal.SIGTERM, signal.SIGHUP))
    relay = Relay(args.pin, active_high=args.active_high, pin_factory=make_pin_factory(args.pin_factory))
    try:
        events = EventLog(events_path)
        try:
            time.sleep(max(0.0, not_before - time.time()))
            _serve(relay, verifier, events, args)
        finally:
            events.close()
    finally:
        _close_relay(relay)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _serve(relay: Any, verifier: Any, events: Any, args: argparse.Namespace) -> None:
    import uvicorn

    from smartlock.door.api import create_app

    app = create_app(relay, verifier, events, args.lock_delay)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, proxy_headers=False, server_header=False,
        access_log=False, log_config=None, lifespan="on",
    )
    logger.info("door API on http://%s:%d (events: %s)", args.host, args.port, events.path)
    try:
        uvicorn.Server(config).run()
    finally:
        app.state.service.stop("process exit")  # no-op when the server's own shutdown already did it


def _close_relay(relay: Any) -> None:
    from smartlock.errors import RelayError

    try:
        relay.lock()
        level = relay.level
        relay.close()
    except RelayError as err:
        logger.critical("the relay could not be locked at exit: %s", err)
        raise
    logger.info("exit: relay locked, %s read %s before release", relay.pin_name, level)


def _exit_cleanly_on(signals: tuple[signal.Signals, ...]) -> dict[int, Any]:
    """Turn these signals into SystemExit(0) so every `finally` runs and the relay locks.

    uvicorn handles SIGTERM itself, then re-raises it once it has shut down; this handler makes that
    second delivery a clean exit instead of an instant death that would skip the clean-up below.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s: locking and exiting", signal.Signals(signum).name)
        raise SystemExit(0)

    return {sig: signal.signal(sig, handler) for sig in signals}


def run_unlock(args: argparse.Namespace) -> int:
    """`smartlock unlock`: send one signed unlock, or print it as a curl command."""
    from smartlock.door.auth import load_secret
    from smartlock.door.client import DoorClient, curl_command, unlock_body

    if args.no_auth == (args.secret_file is not None):
        raise ConfigError("give --secret-file FILE (the door's secret), or --no-auth for an unsigned door")
    if args.confidence is not None and not 0.0 <= args.confidence <= 1.0:
        raise ConfigError("--confidence must be between 0 and 1")
    secret = None if args.no_auth else load_secret(args.secret_file)
    with DoorClient(args.door_api_url, secret, timeout=args.timeout, tries=args.tries) as client:
        if args.print_curl:
            body = unlock_body(args.person, args.confidence, args.source)
            print(curl_command(client.build_request("POST", client.url, body)))
            if secret is not None:
                print("# signed now: valid for 30 s, and only once (single-use nonce)", file=sys.stderr)
            return 0
        client.unlock(person=args.person, confidence=args.confidence, source=args.source)
    print(f"unlocked: {args.door_api_url} accepted the request (202)")
    return 0
