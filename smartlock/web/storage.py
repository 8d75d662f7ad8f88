"""A full disk under the dashboard's data: a 503 for the write that failed, one log line, and carry on.

The timeline (SQLite), captured frames, thumbnails, settings and the password file all live on one disk.
When it fills, each write fails with ENOSPC (or SQLite's "database or disk is full"); the dashboard answers
that request 503 with a readable message, keeps serving everything that only reads, and logs the trouble
once (then at most every ``remind_every`` seconds, with how many writes failed meanwhile), not once per
request.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
SQLITE_STORAGE_CODES = (10, 13, 8)  # SQLITE_IOERR, SQLITE_FULL, SQLITE_READONLY (primary codes)


def storage_trouble(err: BaseException) -> bool:
    """True when ``err`` says the disk is full (or turned read-only), not that the code is wrong."""
    if isinstance(err, OSError):
        return err.errno in DISK_ERRNOS
    if isinstance(err, sqlite3.Error):
        code = getattr(err, "sqlite_errorcode", None)
        if isinstance(code, int):
            return (code & 0xFF) in SQLITE_STORAGE_CODES
        return "disk" in str(err).lower()
    return False


class StorageWatch:
    """Remembers write failures of the disk: logs the first of a burst, counts the rest."""

    def __init__(self, remind_every: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.remind_every = remind_every
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._last_log = 0.0
        self._unlogged = 0
        self.failures = 0
        self.last_error: str | None = None

    def failed(self, where: str, err: BaseException) -> None:
        now = self._clock()
        with self._lock:
            self.failures += 1
            self.last_error = f"{where}: {err}"
            if self._since is not None and now - self._last_log < self.remind_every:
                self._unlogged += 1
                return
            again = self._unlogged
            self._since = self._since if self._since is not None else now
            self._last_log, self._unlogged = now, 0
        more = f" ({again} more failed writes since the last message)" if again else ""
        logger.warning("cannot write the dashboard's data (%s: %s): is the disk full? Changes are refused "
                       "with 503 until there is room; pages and reading still work%s", where, err, more)

    def succeeded(self) -> None:
        """A write went through: the next failure starts a new burst (and is logged)."""
        if self._since is None:
            return
        with self._lock:
            if self._since is not None:
                logger.info("the dashboard's data can be written again (%d writes had failed)", self.failures)
            self._since, self._unlogged, self.last_error, self.failures = None, 0, None, 0

    @property
    def problem(self) -> str | None:
        """What /api/system shows while writes fail, else None."""
        return f"cannot write the dashboard's data: {self.last_error}" if self._since is not None else None
