"""Sub-commands `smartlock door` (the Door API service) and `smartlock unlock` (one signed unlock)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from smartlock.door.settings import DoorSettings, UnlockSettings
from smartlock.integrations.settings import MQTT_FLAGS

logger = logging.getLogger(__name__)

DOOR_FLAGS = ("pin", "lock_delay", "host", "port", "secret_file", "no_auth", "pin_factory", "active_high",
              "events_db", "audit_retention_days", "audit_max_rows", "tls_cert", "tls_key",
              *(name for name in MQTT_FLAGS if name != "mqtt_images"))
UNLOCK_FLAGS = ("door_api_url", "secret_file", "no_auth", "ca_file", "print_curl", "person", "confidence",
                "source", "timeout", "tries")


def register(subparsers: Any) -> None:
    """Add `smartlock door` and `smartlock unlock`."""
    door = subparsers.add_parser(
        "door",
        help="run the Door API: a GPIO relay behind signed unlock requests",
        description="Door API for an electric strike driven by a relay on a Raspberry Pi GPIO pin. "
        "POST /unlock (signed) opens the door for --lock-delay seconds.",
    )
    for name in DOOR_FLAGS:
        DoorSettings.add_option(door, name)
    door.add_argument("--generate-secret", type=Path, metavar="FILE",
                      help="write a new random secret to FILE (mode 0600) and exit")
    DoorSettings.add_option(door, "log_level")
    door.set_defaults(func=run_door)

    unlock = subparsers.add_parser(
        "unlock",
        help="send one signed unlock to a Door API (or print the curl command)",
        description="Send one signed POST /unlock, or print the equivalent curl command.",
    )
    for name in UNLOCK_FLAGS:
        UnlockSettings.add_option(unlock, name)
    unlock.set_defaults(func=run_unlock)


def run_door(args: argparse.Namespace) -> int:
    """`smartlock door`: write a secret, or serve the Door API until a signal; the relay ends locked."""
    if args.generate_secret is not None:
        from smartlock.door.auth import generate_secret

        secret = generate_secret(args.generate_secret)
        print(f"wrote a new door secret to {args.generate_secret} (key id {secret.key_id}, mode 0600)")
        print("copy it, privately, to every machine that unlocks this door (engine, `smartlock unlock`)")
        return 0
    return serve_door(DoorSettings.from_args(args))


def serve_door(settings: DoorSettings) -> int:
    """Serve the Door API until SIGINT, SIGTERM or SIGHUP (or a failure); every way out locks the relay.

    Returns the exit status: 130 after SIGINT (as for any interrupted command), 0 after the others."""
    from smartlock.config import default_data_dir
    from smartlock.door.auth import RequestVerifier, load_secret
    from smartlock.door.events import EventLog
    from smartlock.door.relay import Relay, make_pin_factory
    from smartlock.logs import setup_logging
    from smartlock.service.server import check_tls

    settings.check_complete()
    assert settings.pin is not None  # check_complete() made sure
    setup_logging(settings.log_level)
    check_tls(settings.tls_cert, settings.tls_key)  # before the relay is touched
    # Nonces are remembered in memory only, and timestamps are whole seconds: refuse everything signed
    # in or before the second this process started (a request captured before a restart cannot be
    # replayed after it), and answer nothing before the next second begins (a fresh one is never refused).
    not_before = int(time.time()) + 1
    verifier = None
    if settings.secret_file is not None:
        verifier = RequestVerifier(load_secret(settings.secret_file), not_before=not_before)
    events_path = settings.events_db or default_data_dir() / "door" / "events.sqlite3"
    relay = Relay(settings.pin, active_high=settings.active_high,
                  pin_factory=make_pin_factory(settings.pin_factory))
    try:
        events = EventLog(events_path, retention_days=settings.audit_retention_days,
                          max_rows=settings.audit_max_rows)
        try:
            time.sleep(max(0.0, not_before - time.time()))
            stopped_by = _serve(relay, verifier, events, settings)
        finally:
            events.close()
    finally:
        _close_relay(relay)
    return 130 if stopped_by == signal.SIGINT else 0


def _serve(relay: Any, verifier: Any, events: Any, settings: DoorSettings) -> int | None:
    """Run the server; returns the signal that stopped it (None when it stopped otherwise)."""
    from smartlock.door.api import create_app
    from smartlock.service import serve

    app = create_app(relay, verifier, events, settings.lock_delay)
    service = app.state.service
    mqtt = None
    if settings.mqtt_url is not None:
        from smartlock.integrations.door import DoorMqtt

        mqtt = DoorMqtt(service, settings).start()  # connects in the background: never delays the door
        app.state.mqtt = mqtt.link
    scheme = "https" if settings.tls else "http"
    logger.info("door API on %s://%s:%d (events: %s, kept %g days, at most %d rows)", scheme, settings.host,
                settings.port, events.path, settings.audit_retention_days, settings.audit_max_rows)
    try:
        return serve(app, settings.host, settings.port, log_level=settings.log_level,
                     on_stop=lambda: service.stop("stop signal"), tls_cert=settings.tls_cert,
                     tls_key=settings.tls_key)
    finally:
        service.stop("process exit")  # no-op when a signal or the server's own shutdown already did it
        if mqtt is not None:
            mqtt.stop()


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


def run_unlock(args: argparse.Namespace) -> int:
    """`smartlock unlock`: send one signed unlock, or print it as a curl command."""
    from smartlock.door.auth import load_secret
    from smartlock.door.client import DoorClient, curl_command, unlock_body

    settings = UnlockSettings.from_args(args)
    settings.check_complete()
    secret = None if settings.secret_file is None else load_secret(settings.secret_file)
    with DoorClient(settings.door_api_url, secret, timeout=settings.timeout, tries=settings.tries,
                    ca_file=settings.ca_file) as client:
        if settings.print_curl:
            body = unlock_body(settings.person, settings.confidence, settings.source)
            print(curl_command(client.build_request("POST", client.url, body)))
            if secret is not None:
                print("# signed now: valid for 30 s, and only once (single-use nonce)", file=sys.stderr)
            return 0
        client.unlock(person=settings.person, confidence=settings.confidence, source=settings.source)
    print(f"unlocked: {settings.door_api_url} accepted the request (202)")
    return 0
