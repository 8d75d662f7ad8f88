"""Secrets live in files named by path, readable by their owner only: one policy for every part.

A secret is never taken from a command line (any user can read /proc/PID/cmdline) and never logged.
"""

from __future__ import annotations

import os
import secrets as random_tokens
import stat
import tempfile
from pathlib import Path

from smartlock.errors import ConfigError
from smartlock.fileio import atomic_write


def check_private(path: Path, what: str = "secret file") -> None:
    """ConfigError unless only the owner can read and write ``path`` (group/other bits must be clear)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as err:
        raise ConfigError(f"{what} {path} not found") from err
    except OSError as err:
        raise ConfigError(f"cannot read the {what} {path}: {err}") from err
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the {what} {path} is accessible to other users (mode {stat.S_IMODE(mode):04o}); "
            f"run `chmod 600 {path}`"
        )


def read_secret(path: Path, what: str = "secret file") -> str:
    """The secret text in ``path``, surrounding whitespace removed.

    ConfigError (saying how to fix it) when the file is missing, unreadable, empty, or readable by
    anyone but its owner."""
    path = Path(path)
    check_private(path, what)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the {what} {path}: {err}") from err
    if not text:
        raise ConfigError(f"the {what} {path} is empty")
    return text


def write_secret(path: Path, value: str) -> None:
    """Write ``value`` to ``path`` atomically with mode 0600 (the folder is created 0700 if missing)."""
    path = Path(path)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    atomic_write(path, (value + "\n").encode("utf-8"), mode=0o600)


def ensure_secret(path: Path, nbytes: int = 32, what: str = "secret file") -> tuple[str, bool]:
    """The secret in ``path``, creating it (0600, random) when missing; returns (secret, created).

    Creation is exclusive: two processes starting together end up with the same secret, never one
    overwriting the other's."""
    path = Path(path)
    if path.exists():
        return read_secret(path, what), False
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    token = random_tokens.token_urlsafe(nbytes)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)  # fails if another process created it first: then theirs counts
        except FileExistsError:
            return read_secret(path, what), False
    finally:
        os.unlink(temp)
    return token, True
