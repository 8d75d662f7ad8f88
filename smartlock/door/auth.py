"""Signed door requests: a shared secret, HMAC-SHA256 request signatures and a replay guard.

The signature covers ``smartlock-v1``, the method, the path with its query string, the Unix
timestamp, a random nonce and the SHA-256 of the body, one per line. The server accepts a timestamp
within ±30 s of its clock and remembers every nonce until its timestamp leaves that window, so a
captured request cannot be played again. The line format is unambiguous because only the path is
free-form and HTTP forbids line breaks in it. The host is not signed: give every door its own secret,
or a request captured at one door could be played once at another that shares it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from smartlock.errors import AuthError, ConfigError
from smartlock.fileio import fsync_dir
from smartlock.service.secrets import read_secret

logger = logging.getLogger(__name__)

SIGNATURE_VERSION = "smartlock-v1"
HEADER_KEY_ID = "X-Smartlock-Key-Id"
HEADER_TIMESTAMP = "X-Smartlock-Timestamp"
HEADER_NONCE = "X-Smartlock-Nonce"
HEADER_SIGNATURE = "X-Smartlock-Signature"
SIGNATURE_HEADERS = (HEADER_KEY_ID, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
_SIGNATURE_KEYS = frozenset(name.lower() for name in SIGNATURE_HEADERS)

WINDOW_SECONDS = 30.0
KEY_BYTES = 32
MIN_KEY_BYTES = 16
MAX_NONCES = 100_000

_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class DoorSecret:
    """A shared secret: a public ``key_id`` sent with each request and the private ``key`` bytes."""

    key_id: str
    key: bytes = field(repr=False)


def generate_secret(path: Path) -> DoorSecret:
    """Write a new random secret to ``path`` (mode 0600, atomically; never over an existing file)."""
    path = Path(path)
    if path.exists():
        raise ConfigError(f"{path} already exists; delete it first if you really want a new secret")
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = DoorSecret(key_id=f"door-{secrets.token_hex(4)}", key=secrets.token_bytes(KEY_BYTES))
    document = {
        "version": 1,
        "key_id": secret.key_id,
        "key": base64.urlsafe_b64encode(secret.key).decode("ascii"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    data = (json.dumps(document, indent=2) + "\n").encode("utf-8")
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o600)  # in case the umask or the file system changed the mode
        try:
            os.link(temp, path)  # unlike rename, link refuses to replace a file created meanwhile
        except FileExistsError as err:
            raise ConfigError(f"{path} already exists; delete it first for a new secret") from err
        except OSError:  # a file system without hard links (FAT, some volume mounts)
            if path.exists():
                raise ConfigError(f"{path} already exists; delete it first for a new secret") from None
            os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    fsync_dir(path.parent)
    return secret


def load_secret(path: Path) -> DoorSecret:
    """Read a secret written by generate_secret; refuses a file that anyone but its owner can access."""
    path = Path(path)
    try:
        text = read_secret(path, "secret file")
    except ConfigError:
        if not path.exists():
            raise ConfigError(
                f"secret file {path} not found; create one with `smartlock door --generate-secret {path}`"
            ) from None
        raise
    try:
        document = json.loads(text)
        key_id = document["key_id"]
        key = base64.urlsafe_b64decode(document["key"].encode("ascii"))
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as err:
        raise ConfigError(f"{path} is not a smartlock door secret file ({err})") from err
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ConfigError(f"{path}: key_id must be 1-64 letters, digits, '.', '_' or '-'")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{path}: the key is shorter than {MIN_KEY_BYTES} bytes")
    return DoorSecret(key_id=key_id, key=key)


def canonical_request(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The exact bytes that are signed."""
    body_hash = hashlib.sha256(body).hexdigest()
    return "\n".join((SIGNATURE_VERSION, method.upper(), path, timestamp, nonce, body_hash)).encode("utf-8")


def compute_signature(key: bytes, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the canonical request."""
    return hmac.new(key, canonical_request(method, path, timestamp, nonce, body), hashlib.sha256).hexdigest()


def sign_request(
    secret: DoorSecret,
    method: str,
    path: str,
    body: bytes,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The signature headers for one request; ``path`` includes the query string, as sent."""
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    nonce = nonce or secrets.token_urlsafe(18)
    return {
        HEADER_KEY_ID: secret.key_id,
        HEADER_TIMESTAMP: ts,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: compute_signature(secret.key, method, path, ts, nonce, body),
    }


class RequestVerifier:
    """Checks signature headers; remembers nonces for the timestamp window to refuse replays.

    Thread-safe. The order of checks means an unsigned or wrongly signed request never reaches the
    nonce store, so only holders of the secret can fill it. Nonces live in memory only: give
    ``not_before`` (the first whole second after the service started) so that a request captured
    before a restart cannot be replayed after it.
    """

    def __init__(
        self,
        keys: DoorSecret | Iterable[DoorSecret],
        *,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
        max_nonces: int = MAX_NONCES,
        not_before: float | None = None,
    ) -> None:
        items = [keys] if isinstance(keys, DoorSecret) else list(keys)
        if not items:
            raise ConfigError("the door needs at least one secret")
        self._keys = {s.key_id: s.key for s in items}
        self.window = window
        self._clock = clock
        self._max_nonces = max_nonces
        self._not_before = not_before
        self._nonces: dict[str, float] = {}  # nonce -> when it may be forgotten; insertion-ordered
        self._lock = threading.Lock()

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str:
        """Return the key id of a correctly signed, fresh, first-seen request; else raise AuthError."""
        lowered: dict[str, str] = {}
        for name, value in headers.items():
            lower = name.lower()
            if lower in lowered and lower in _SIGNATURE_KEYS:
                # Proxies disagree on which copy of a repeated header wins: refuse rather than guess.
                raise AuthError(f"the header {name} appears more than once")
            lowered[lower] = value
        values = {name: lowered.get(name.lower()) for name in SIGNATURE_HEADERS}
        missing = [name for name, value in values.items() if not value]
        if len(missing) == len(SIGNATURE_HEADERS):
            raise AuthError("the request is not signed")
        if missing:
            raise AuthError(f"missing signature header(s): {', '.join(missing)}")
        key_id, timestamp, nonce, signature = (values[name] or "" for name in SIGNATURE_HEADERS)
        key = self._keys.get(key_id)
        if key is None:
            raise AuthError("unknown key id")
        if not _TIMESTAMP.fullmatch(timestamp):
            raise AuthError("the timestamp must be whole Unix seconds")
        now = self._clock()
        skew = int(timestamp) - now
        if abs(skew) > self.window:
            raise AuthError(f"the timestamp is {skew:+.0f} s off the door's clock (±{self.window:.0f} s ok)")
        if self._not_before is not None and int(timestamp) < self._not_before:
            raise AuthError("the request was signed before the door service started; sign it again")
        if not _NONCE.fullmatch(nonce):
            raise AuthError("the nonce must be 16-128 URL-safe characters")
        if not _SIGNATURE.fullmatch(signature):
            raise AuthError("the signature must be 64 lowercase hex digits")
        expected = compute_signature(key, method, path, timestamp, nonce, body)
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
            raise AuthError("wrong signature")
        with self._lock:
            self._forget_expired(now)
            if nonce in self._nonces:
                raise AuthError("replayed request: this nonce was already used")
            if len(self._nonces) >= self._max_nonces:
                raise AuthError("too many signed requests in the replay window; try again shortly")
            self._nonces[nonce] = int(timestamp) + self.window + 1
        return key_id

    def _forget_expired(self, now: float) -> None:
        # Expiry times arrive almost in order; stop at the first one still alive (a late straggler is
        # kept a little longer, which is harmless).
        while self._nonces:
            nonce, expires = next(iter(self._nonces.items()))
            if expires > now:
                break
            del self._nonces[nonce]

    def remembered_nonces(self) -> int:
        with self._lock:
            return len(self._nonces)
