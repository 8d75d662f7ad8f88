"""The engine's check at start that the door accepts its requests: one signed ``GET /status``.

A door that refuses (no ``--door-secret-file`` against a signing door, a secret of another door, a key
that is not the door's, a clock too far off, a URL that is no door, http against https or the reverse,
a certificate not trusted) is a ConfigError naming the flag to fix, before any face is seen. A door that
does not answer at all may simply not be up yet (``smartlock up`` starts the parts together): that is a
warning and the engine carries on; each unlock tries the door again.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import httpx

from smartlock.door.auth import DoorSecret, load_secret, sign_request
from smartlock.door.client import BROWSER_PROOF, base_url_of, tls_verification
from smartlock.engine.settings import EngineSettings
from smartlock.errors import ConfigError

logger = logging.getLogger(__name__)

PREFLIGHT_TIMEOUT = 3.0
URL_FLAG = "--door-api-url"
SECRET_FLAG = "--door-secret-file"


def check_door(settings: EngineSettings, *, timeout: float = PREFLIGHT_TIMEOUT,
               ca_file: Path | None = None, transport: httpx.BaseTransport | None = None) -> None:
    """Ask the door for its status, signed as the engine's unlocks will be. Returns when it answers (or
    does not answer at all: a warning); raises ConfigError naming the flag when it refuses."""
    url = settings.door_api_url
    if httpx.URL(url).scheme not in ("http", "https"):
        raise ConfigError(f"{URL_FLAG} must start with http:// or https://, not {url!r}")
    secret = load_secret(settings.door_secret_file) if settings.door_secret_file is not None else None
    status_url = base_url_of(url) + "/status"
    try:
        with httpx.Client(timeout=timeout, transport=transport, verify=tls_verification(ca_file)) as client:
            request = client.build_request("GET", status_url, headers=dict(BROWSER_PROOF))
            if secret is not None:
                request.headers.update(sign_request(secret, "GET", request.url.raw_path.decode("ascii"), b""))
            response = client.send(request)
    except httpx.HTTPError as err:
        _unreachable(url, status_url, err)
        return
    _judge(settings, secret, status_url, response)


def _unreachable(url: str, status_url: str, err: httpx.HTTPError) -> None:
    """No HTTP answer: a TLS mismatch is a ConfigError; a door not (yet) listening is a warning."""
    text = f"{type(err).__name__}: {err}"
    tls = isinstance(err.__cause__ or err.__context__, ssl.SSLError) or "SSL" in str(err) or \
        "CERTIFICATE" in str(err).upper()
    if tls:
        if "WRONG_VERSION_NUMBER" in str(err).upper() or "wrong version number" in str(err):
            raise ConfigError(f"{URL_FLAG} {url} says https://, but the door there speaks plain HTTP: use "
                              f"http:// (or start the door with TLS) ({text})") from err
        raise ConfigError(f"{URL_FLAG} {url}: the door's TLS certificate is not trusted or does not match "
                          f"the host ({text})") from err
    if isinstance(err, httpx.RemoteProtocolError) and httpx.URL(url).scheme == "http":
        raise ConfigError(f"{URL_FLAG} {url} says http://, but the door there does not speak plain HTTP "
                          f"(TLS?): try https:// ({text})") from err
    logger.warning(
        "No door answers at %s (%s): not started yet, or a wrong host or port in %s. Carrying on; "
        "each unlock tries the door again.", status_url, text, URL_FLAG,
    )


def _judge(settings: EngineSettings, secret: DoorSecret | None, status_url: str,
           response: httpx.Response) -> None:
    url, code = settings.door_api_url, response.status_code
    message = _message(response)
    if code == 401:
        raise ConfigError(_refused_signature(settings, secret, message))
    if code in (404, 405):
        raise ConfigError(f"{URL_FLAG} {url}: {status_url} answered {code}: no smartlock door there (the URL "
                          "is the door's unlock URL, like http://door-host:8080/unlock)")
    if code == 429:
        raise ConfigError(f"the door at {url} blocks this address for now after too many refused requests "
                          f"({message}); check {SECRET_FLAG}, then start the engine again in a minute")
    if code >= 500:
        logger.warning("The door at %s answers %d (%s); it is reachable, the engine carries on", url, code,
                       message)
        return
    if not response.is_success:
        raise ConfigError(f"the door at {url} refused GET /status ({code}: {message}); check {URL_FLAG}")
    status = _json(response)
    if status is None or "locked" not in status:
        raise ConfigError(f"{URL_FLAG} {url}: {status_url} answered, but not as a smartlock door does "
                          "(no lock state): is it the door's address and port?")
    auth = str(status.get("auth") or "")
    if secret is not None and auth.startswith("none"):
        logger.warning("The door at %s accepts unsigned requests (--no-auth): %s is not needed there, and "
                       "anybody on the network can unlock it", url, SECRET_FLAG)
    logger.info("The door at %s accepts the engine's requests (auth: %s, locked: %s)", url, auth or "?",
                status.get("locked"))


def _refused_signature(settings: EngineSettings, secret: DoorSecret | None, message: str) -> str:
    """What to fix when the door answered 401 with ``message``."""
    url, path = settings.door_api_url, settings.door_secret_file
    if secret is None:
        return (f"the door at {url} requires signed requests ({message}): give the engine {SECRET_FLAG} "
                "with the door's secret file (the file the door was started with, --secret-file)")
    if "unknown key id" in message:
        return (f"{SECRET_FLAG} {path} is not this door's secret: its key id {secret.key_id!r} is unknown "
                f"to the door at {url} (use the door's own secret file)")
    if "wrong signature" in message:
        return (f"{SECRET_FLAG} {path} has the door's key id {secret.key_id!r} but not its key (a "
                f"regenerated or edited secret?): copy the door's current secret file")
    if "off the door's clock" in message or "timestamp" in message:
        return (f"the door at {url} refused the signature: {message}. Set both machines' clocks (NTP); "
                f"{SECRET_FLAG} itself is fine")
    return f"the door at {url} refused the signed request: {message} (check {SECRET_FLAG})"


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _message(response: httpx.Response) -> str:
    data = _json(response)
    if data is not None and "message" in data:
        return str(data["message"])[:300]
    return (response.text[:200] or response.reason_phrase).strip()
