"""Dashboard sign-in: scrypt-hashed password, one-time setup token, expiring sessions, login throttling."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from smartlock.errors import ConfigError
from smartlock.fileio import atomic_write
from smartlock.service.secrets import check_private

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
# scrypt cost: 16 MiB and ~50 ms per check on a Raspberry Pi class CPU; slow enough to hurt guessing.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 2**14, 8, 1, 32


def check_password_rules(password: str) -> None:
    """ConfigError when the password is too short or too long to be accepted."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ConfigError(f"the password may have at most {MAX_PASSWORD_LENGTH} characters")
    if not encodable(password):
        raise ConfigError("the password must be valid Unicode text (no lone surrogates)")


def encodable(text: str) -> bool:
    """False for text UTF-8 cannot encode: JSON may carry lone surrogates ("\\ud800")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def hash_password(password: str, salt: bytes | None = None) -> dict:
    """A JSON-able record of the scrypt hash of ``password`` with a random 16-byte salt."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_DKLEN
    )
    return {
        "algorithm": "scrypt",
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": salt.hex(),
        "hash": digest.hex(),
    }


def verify_password(password: str, record: dict) -> bool:
    """True when ``password`` matches the record made by hash_password (constant-time comparison)."""
    try:
        if record.get("algorithm") != "scrypt":
            return False
        expected = bytes.fromhex(record["hash"])
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=bytes.fromhex(record["salt"]),
            n=int(record["n"]),
            r=int(record["r"]),
            p=int(record["p"]),
            dklen=len(expected),
        )
    except (KeyError, TypeError, ValueError):  # UnicodeEncodeError (a lone surrogate) is a ValueError
        return False
    return hmac.compare_digest(digest, expected)


def read_password_file(path: Path) -> str:
    """The password written in ``path`` (a trailing newline is not part of it); the file must be private
    to its owner, as every secret file is."""
    check_private(Path(path), "password file")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the password file {path}: {err}") from err
    password = text.rstrip("\r\n")
    if not password:
        raise ConfigError(f"the password file {path} is empty")
    check_password_rules(password)
    return password


class PasswordStore:
    """The dashboard password, stored only as a scrypt hash in a 0600 JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def is_set(self) -> bool:
        return self._record() is not None

    def set(self, password: str) -> None:
        check_password_rules(password)
        record = hash_password(password)
        with self._lock:
            atomic_write(self.path, json.dumps(record).encode("utf-8"), mode=0o600)

    def verify(self, password: str) -> bool:
        record = self._record()
        if record is None or len(password) > MAX_PASSWORD_LENGTH:
            return False
        return verify_password(password, record)

    def _record(self) -> dict | None:
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"the password file {self.path} is unreadable ({err}); delete it to set a new one"
            ) from err
        return record if isinstance(record, dict) else None


class SetupToken:
    """A one-time secret that lets whoever reads the terminal choose the first password."""

    def __init__(self) -> None:
        self._token: str | None = None
        self._lock = threading.Lock()

    def issue(self) -> str:
        with self._lock:
            self._token = secrets.token_urlsafe(24)
            return self._token

    @property
    def active(self) -> bool:
        return self._token is not None

    def check(self, candidate: str) -> bool:
        token = self._token
        # surrogatepass: a lone surrogate from JSON compares (unequal) instead of raising
        return token is not None and hmac.compare_digest(candidate.encode("utf-8", "surrogatepass"),
                                                         token.encode())

    def consume(self, candidate: str) -> bool:
        """True (and the token is gone) when ``candidate`` is the current token."""
        with self._lock:
            if not self.check(candidate):
                return False
            self._token = None
            return True


class SessionStore:
    """Random session tokens kept in memory, with an idle timeout and an absolute lifetime."""

    def __init__(
        self,
        idle_timeout: float = 2 * 3600,
        max_age: float = 24 * 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self._clock = clock
        self._sessions: dict[str, tuple[float, float]] = {}  # sha256(token) -> (created, last_seen)
        self._lock = threading.Lock()

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()

    def create(self) -> str:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._expire(now)
            self._sessions[self._key(token)] = (now, now)
        return token

    def check(self, token: str | None) -> bool:
        """True for a live session; also counts as activity for the idle timeout."""
        if not token:
            return False
        key = self._key(token)
        now = self._clock()
        with self._lock:
            entry = self._sessions.get(key)
            if entry is None:
                return False
            created, last_seen = entry
            if now - created > self.max_age or now - last_seen > self.idle_timeout:
                del self._sessions[key]
                return False
            self._sessions[key] = (created, now)
            return True

    def revoke(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(self._key(token), None)

    def revoke_all(self) -> None:
        with self._lock:
            self._sessions.clear()

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._sessions)

    def _expire(self, now: float) -> None:
        dead = [
            key
            for key, (created, seen) in self._sessions.items()
            if now - created > self.max_age or now - seen > self.idle_timeout
        ]
        for key in dead:
            del self._sessions[key]


class LoginThrottle:
    """At most ``limit`` failed sign-ins per address in ``window`` seconds; then wait for the window.

    An attempt counts from the moment it is admitted (``begin``), before its password check ends: N wrong
    passwords sent at once from one address cannot all be checked, only as many as failures are left.
    """

    def __init__(self, limit: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float:
        """Seconds this address must wait before trying again (0 when it may try now)."""
        with self._lock:
            return self._wait(address, self._clock())

    def begin(self, address: str) -> float:
        """Admit one attempt from ``address`` (0 returned: call ``end`` when its check is done), or the
        seconds to wait (nothing admitted) while its failures and attempts in flight reach the limit."""
        now = self._clock()
        with self._lock:
            wait = self._wait(address, now)
            if wait > 0:
                return wait
            if len(self._in_flight) > 10_000:  # bounded memory under a spray of addresses
                self._in_flight = {a: n for a, n in self._in_flight.items() if n > 0}
            self._in_flight[address] = self._in_flight.get(address, 0) + 1
            return 0.0

    def end(self, address: str, succeeded: bool) -> None:
        """The admitted attempt's outcome: a failure is counted, a success forgets the address's failures."""
        with self._lock:
            left = self._in_flight.get(address, 1) - 1
            if left > 0:
                self._in_flight[address] = left
            else:
                self._in_flight.pop(address, None)
            if succeeded:
                self._failures.pop(address, None)
            else:
                self._add_failure(address)

    def failed(self, address: str) -> None:
        with self._lock:
            self._add_failure(address)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

    def _wait(self, address: str, now: float) -> float:
        failures = self._failures.get(address)
        while failures and now - failures[0] > self.window:
            failures.popleft()
        used = len(failures or ()) + self._in_flight.get(address, 0)
        if used < self.limit:
            return 0.0
        if not failures or len(failures) < self.limit:
            return 1.0  # the limit is reached by attempts still being checked: try again shortly
        return max(0.001, self.window - (now - failures[0]))

    def _add_failure(self, address: str) -> None:
        if len(self._failures) > 10_000:  # bounded memory under a spray of addresses
            self._failures.clear()
        self._failures.setdefault(address, deque()).append(self._clock())
