"""Dashboard sign-in: the accounts' passwords (smartlock.web.accounts), the one-time setup token, sessions
kept on disk (only a hash of each token) that expire and survive a restart, and login throttling."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from smartlock.errors import ConfigError
from smartlock.fileio import atomic_write
from smartlock.service.secrets import check_private
from smartlock.web.accounts import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    AccountStore,
    check_password_rules,
    encodable,
    hash_password,
    verify_password,
)

__all__ = [
    "MAX_PASSWORD_LENGTH", "MIN_PASSWORD_LENGTH", "AccountStore", "LoginThrottle", "PasswordStore",
    "SessionStore", "SetupToken", "check_password_rules", "encodable", "hash_password", "read_password_file",
    "verify_password",
]

logger = logging.getLogger(__name__)

# The dashboard's password file holds its accounts now; the name stays for the code that makes it.
PasswordStore = AccountStore


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
    """Random session tokens with an idle timeout and an absolute lifetime, each bound to an account.

    Only the SHA-256 of a token is kept, in memory and (once ``open`` names a file) in a 0600 JSON file
    rewritten atomically: a copy of the file gives no cookie that works. Sessions are written when made
    or ended; activity (for the idle timeout) at most every ``save_every`` seconds. An unreadable file is
    logged and forgotten (everyone signs in again); a file that cannot be written is logged, and the
    sessions live on in memory.
    """

    def __init__(
        self,
        path: Path | None = None,
        idle_timeout: float = 2 * 3600,
        max_age: float = 24 * 3600,
        clock: Callable[[], float] = time.time,
        max_sessions: int = 1000,
        save_every: float = 30.0,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self.max_sessions = max_sessions
        self.save_every = save_every
        self._clock = clock
        # sha256(token) -> [user, epoch, created, last_seen]
        self._sessions: dict[str, list] = {}
        self._lock = threading.Lock()
        self._saved_at: float | None = None
        self._save_failing = False
        self.path: Path | None = None
        if path is not None:
            self.open(path)

    def open(self, path: Path) -> None:
        """Keep the sessions in ``path`` from now on, starting with those it holds."""
        with self._lock:
            self.path = Path(path)
            loaded = self._load(self.path)
            loaded.update(self._sessions)
            self._sessions = loaded
            self._expire(self._clock())

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()

    def create(self, user: str = "", epoch: str = "") -> str:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._expire(now)
            while len(self._sessions) >= self.max_sessions:  # the least recently used goes first
                del self._sessions[min(self._sessions, key=lambda k: self._sessions[k][3])]
            self._sessions[self._key(token)] = [user, epoch, now, now]
            self._save(now)
        return token

    def session(self, token: str | None) -> tuple[str, str] | None:
        """(user, epoch) of a live session; also counts as activity for the idle timeout."""
        if not token or len(token) > 256:
            return None
        key = self._key(token)
        now = self._clock()
        with self._lock:
            entry = self._sessions.get(key)
            if entry is None:
                return None
            user, epoch, created, last_seen = entry
            if now - created > self.max_age or now - last_seen > self.idle_timeout:
                del self._sessions[key]
                self._save(now)
                return None
            entry[3] = now
            if self._saved_at is None or now - self._saved_at >= self.save_every:
                self._save(now)
            return user, epoch

    def check(self, token: str | None) -> bool:
        """True for a live session; also counts as activity for the idle timeout."""
        return self.session(token) is not None

    def revoke(self, token: str | None) -> None:
        if token:
            with self._lock:
                if self._sessions.pop(self._key(token), None) is not None:
                    self._save(self._clock())

    def revoke_user(self, user: str) -> int:
        """End every session of ``user``; how many there were."""
        with self._lock:
            keys = [key for key, entry in self._sessions.items() if entry[0] == user]
            for key in keys:
                del self._sessions[key]
            if keys:
                self._save(self._clock())
            return len(keys)

    def revoke_all(self) -> None:
        with self._lock:
            self._sessions.clear()
            self._save(self._clock())

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._sessions)

    def _expire(self, now: float) -> None:
        dead = [
            key
            for key, (_, _, created, seen) in self._sessions.items()
            if now - created > self.max_age or now - seen > self.idle_timeout
        ]
        for key in dead:
            del self._sessions[key]

    def _save(self, now: float) -> None:
        """Write the sessions (lock held); a failure is logged once until a write works again."""
        if self.path is None:
            return
        self._saved_at = now
        data = {"version": 1, "sessions": self._sessions}
        try:
            atomic_write(self.path, json.dumps(data).encode("utf-8"), mode=0o600)
        except OSError as err:
            if not self._save_failing:
                logger.warning("cannot save the dashboard's sessions to %s (%s): they last until the "
                               "dashboard stops", self.path, err)
            self._save_failing = True
            return
        if self._save_failing:
            logger.info("the dashboard's sessions are saved again")
        self._save_failing = False

    def _load(self, path: Path) -> dict[str, list]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            logger.warning("the sessions file %s is unreadable (%s): everyone signs in again", path, err)
            with contextlib.suppress(OSError):
                path.unlink()
            return {}
        sessions = data.get("sessions") if isinstance(data, dict) else None
        if not isinstance(sessions, dict):
            logger.warning("the sessions file %s holds no sessions: everyone signs in again", path)
            return {}
        loaded: dict[str, list] = {}
        for key, entry in sessions.items():
            if (isinstance(key, str) and len(key) == 64 and isinstance(entry, list) and len(entry) == 4
                    and all(isinstance(v, str) for v in entry[:2])
                    and all(isinstance(v, int | float) and not isinstance(v, bool) for v in entry[2:])):
                loaded[key] = entry
        if len(loaded) != len(sessions):
            logger.warning("the sessions file %s had %d malformed entries: dropped", path,
                           len(sessions) - len(loaded))
        return dict(list(loaded.items())[-self.max_sessions:])


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
