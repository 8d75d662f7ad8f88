"""Dashboard accounts: named users (admin or viewer), scrypt-hashed passwords, in one 0600 JSON file.

The file is the dashboard's password file (``<data-dir>/web/password.json``). Before accounts existed it
held one scrypt record; such a file is read as one admin account named ``admin`` with that password and
rewritten in the new shape. Each account has an ``epoch``, a random value that changes when its password or
role changes: a session remembers the epoch it was made under and is void once it differs (or the account
is gone), so a changed password or a demotion ends the user's sessions even across restarts.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartlock.errors import ConfigError, SmartlockError
from smartlock.fileio import atomic_write

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
# scrypt cost: 16 MiB and ~50 ms per check on a Raspberry Pi class CPU; slow enough to hurt guessing.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 2**14, 8, 1, 32

ADMIN, VIEWER = "admin", "viewer"
ROLES = (ADMIN, VIEWER)
FIRST_ACCOUNT = "admin"  # the name of the account a single-password install and --password-file give
MAX_ACCOUNTS = 200
_USERNAME = re.compile(r"[A-Za-z0-9._-]{1,32}")
USERNAME_RULES = "a user name has 1 to 32 characters: letters, digits, '.', '_' or '-'"


class AccountConflict(SmartlockError):
    """The change would break a rule of the accounts (a taken name, no admin left): HTTP 409."""


class UnknownAccount(SmartlockError):
    """No account of that name: HTTP 404."""


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
    except (KeyError, TypeError, ValueError, AttributeError):  # a lone surrogate is a ValueError
        return False
    return hmac.compare_digest(digest, expected)


@functools.cache
def _decoy() -> dict:
    """A hash checked for unknown user names, so a sign-in takes as long whether the name exists or not."""
    return hash_password(secrets.token_urlsafe(16))


def username(value: Any) -> str:
    """The account name ``value`` stands for (ASCII letters folded to lower case); ConfigError if invalid."""
    if not isinstance(value, str) or not _USERNAME.fullmatch(value.strip()):
        raise ConfigError(USERNAME_RULES)
    return value.strip().lower()


def role_of(value: Any) -> str:
    if value not in ROLES:
        raise ConfigError("the role is 'admin' or 'viewer'")
    return str(value)


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    epoch: str  # changes with the password and the role: sessions made under another epoch are void
    created: float

    @property
    def admin(self) -> bool:
        return self.role == ADMIN

    def to_api(self) -> dict[str, Any]:
        return {"user": self.name, "role": self.role, "created": self.created}


class AccountStore:
    """The dashboard's accounts in a 0600 JSON file, written atomically; thread-safe.

    Also answers the single-password interface of the install it replaces: ``set(password)`` (what `up
    --password-file` calls) sets the password of the admin account ``admin``, making it when needed, and
    ``verify(password)`` checks that account's.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._cache: tuple[tuple[int, int, int], dict[str, dict]] | None = None

    # -- reading -------------------------------------------------------------------------------------------

    def is_set(self) -> bool:
        """True once there is an account (the setup link is then refused)."""
        return bool(self._entries())

    def accounts(self) -> list[Account]:
        return [_account(name, entry) for name, entry in sorted(self._entries().items())]

    def get(self, name: str) -> Account | None:
        try:
            key = username(name)
        except ConfigError:
            return None
        entry = self._entries().get(key)
        return _account(key, entry) if entry is not None else None

    def authenticate(self, name: Any, password: Any) -> Account | None:
        """The account when ``password`` is its password; one scrypt check whether the name exists or not."""
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
            return None
        try:
            key = username(name)
        except ConfigError:
            key = None
        entry = self._entries().get(key) if key is not None else None
        record = entry["password"] if entry is not None else _decoy()
        if not verify_password(password, record) or entry is None or key is None:
            return None
        return _account(key, entry)

    # -- changing ------------------------------------------------------------------------------------------

    def create_first(self, name: Any, password: str) -> Account:
        """The first account (an admin), made through the one-time setup link; 409 once there is one."""
        key = username(name)
        check_password_rules(password)
        record = hash_password(password)
        with self._lock:
            entries = self._entries()
            if entries:
                raise AccountConflict("an account already exists: sign in")
            entries = {key: _entry(ADMIN, record)}
            self._save(entries)
        return _account(key, entries[key])

    def add(self, name: Any, password: Any, role: Any) -> Account:
        key, chosen = username(name), role_of(role)
        if not isinstance(password, str):
            raise ConfigError("choose a password for the account")
        check_password_rules(password)
        record = hash_password(password)
        with self._lock:
            entries = self._entries()
            if key in entries:
                raise AccountConflict(f"there is already an account named {key}")
            if len(entries) >= MAX_ACCOUNTS:
                raise AccountConflict(f"the dashboard keeps at most {MAX_ACCOUNTS} accounts")
            entries[key] = _entry(chosen, record)
            self._save(entries)
        return _account(key, entries[key])

    def remove(self, name: Any) -> Account:
        key = username(name)
        with self._lock:
            entries = self._entries()
            entry = entries.get(key)
            if entry is None:
                raise UnknownAccount(f"no account named {key}")
            if entry["role"] == ADMIN and _admins(entries) <= 1:
                raise AccountConflict(f"{key} is the last admin: make another admin before removing it")
            del entries[key]
            self._save(entries)
        return _account(key, entry)

    def set_role(self, name: Any, role: Any) -> Account:
        key, chosen = username(name), role_of(role)
        with self._lock:
            entries = self._entries()
            entry = entries.get(key)
            if entry is None:
                raise UnknownAccount(f"no account named {key}")
            if entry["role"] == chosen:
                return _account(key, entry)
            if entry["role"] == ADMIN and _admins(entries) <= 1:
                raise AccountConflict(f"{key} is the last admin: make another admin before demoting it")
            entries[key] = {**entry, "role": chosen, "epoch": secrets.token_hex(8)}
            self._save(entries)
        return _account(key, entries[key])

    def set_password(self, name: Any, password: Any) -> Account:
        """A new password (its sessions end: the epoch changes)."""
        key = username(name)
        if not isinstance(password, str):
            raise ConfigError("choose a new password")
        check_password_rules(password)
        record = hash_password(password)
        with self._lock:
            entries = self._entries()
            entry = entries.get(key)
            if entry is None:
                raise UnknownAccount(f"no account named {key}")
            entries[key] = {**entry, "password": record, "epoch": secrets.token_hex(8)}
            self._save(entries)
        return _account(key, entries[key])

    # -- the single-password interface (up --password-file, older callers) ---------------------------------

    def set(self, password: str, name: str = FIRST_ACCOUNT) -> None:
        """Make ``name`` an admin with ``password`` (unchanged, sessions kept, when it already is one)."""
        check_password_rules(password)
        with self._lock:
            entry = self._entries().get(name)
            if entry is not None and entry["role"] == ADMIN and verify_password(password, entry["password"]):
                return
            entries = self._entries()
            record = hash_password(password)
            entries[name] = {**_entry(ADMIN, record), "created": (entry or {}).get("created", time.time())}
            self._save(entries)
        logger.info("the admin account %r has the password given to the dashboard", name)

    def verify(self, password: str, name: str = FIRST_ACCOUNT) -> bool:
        return self.authenticate(name, password) is not None

    # -- the file ------------------------------------------------------------------------------------------

    def _entries(self) -> dict[str, dict]:
        """A copy of the accounts (name -> entry), read again whenever the file changed."""
        with self._lock:
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                self._cache = None
                return {}
            except OSError as err:
                raise ConfigError(f"cannot read the password file {self.path}: {err}") from err
            key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if self._cache is None or self._cache[0] != key:
                self._cache = (key, self._read())
            return {name: dict(entry) for name, entry in self._cache[1].items()}

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"the password file {self.path} is unreadable ({err}); delete it to set a new one"
            ) from err
        if isinstance(data, dict) and data.get("algorithm") == "scrypt":  # one password, before accounts
            entries = {FIRST_ACCOUNT: _entry(ADMIN, data)}
            try:
                self._save(entries)
                logger.info("the dashboard password became the admin account %r (sign in as %s)",
                            FIRST_ACCOUNT, FIRST_ACCOUNT)
            except OSError as err:
                logger.warning("cannot rewrite %s with accounts (%s); read as the account %r for now",
                               self.path, err, FIRST_ACCOUNT)
            return entries
        accounts = data.get("accounts") if isinstance(data, dict) else None
        if not isinstance(accounts, dict):
            raise ConfigError(f"the password file {self.path} holds no accounts; delete it to set a new one")
        entries = {}
        for name, entry in accounts.items():
            if (isinstance(name, str) and _USERNAME.fullmatch(name) and isinstance(entry, dict)
                    and entry.get("role") in ROLES and isinstance(entry.get("password"), dict)
                    and isinstance(entry.get("epoch"), str)):
                entries[name] = entry
            else:
                logger.warning("the password file %s has a malformed account %r: ignored", self.path, name)
        return entries

    def _save(self, entries: dict[str, dict]) -> None:
        data = {"version": 2, "accounts": entries}
        atomic_write(self.path, json.dumps(data, indent=1).encode("utf-8"), mode=0o600)
        self._cache = None


def _entry(role: str, record: dict) -> dict:
    return {"role": role, "password": record, "epoch": secrets.token_hex(8), "created": time.time()}


def _account(name: str, entry: dict) -> Account:
    created = entry.get("created")
    return Account(name=name, role=entry["role"], epoch=entry["epoch"],
                   created=float(created) if isinstance(created, int | float) else 0.0)


def _admins(entries: dict[str, dict]) -> int:
    return sum(1 for entry in entries.values() if entry["role"] == ADMIN)
