"""Logging set-up for the services: one format, to a console stream and optionally to a private,
size-capped, rotating file; plus the "log once per outage" helper used when a disk fills up.

A log file is created 0600 in a folder made 0700 (the engine's log names the people it let in), rotates at
``max_bytes`` keeping ``backups`` old files, and a failed write (a full disk) is reported once on stderr,
not once per line, and never stops the service. ``redact`` masks secrets in every formatted line,
tracebacks included.
"""

from __future__ import annotations

import contextlib
import io
import logging
import logging.handlers
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MB = 1024 * 1024
DEFAULT_LOG_MAX_MB = 10.0
DEFAULT_LOG_BACKUPS = 5
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600

logger = logging.getLogger(__name__)


def private_dir(folder: Path) -> Path:
    """``folder``, created 0700; an existing one others can enter is made 0700 too, except a shared
    sticky folder such as /tmp (left alone: the files in it are 0600 anyway)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    info = folder.stat()
    if stat.S_IMODE(info.st_mode) & 0o077 and not info.st_mode & stat.S_ISVTX:
        try:
            os.chmod(folder, PRIVATE_DIR)
        except OSError as err:
            logger.warning("Could not make %s private (chmod 700): %s", folder, err)
    return folder


def private_file(path: Path) -> None:
    """Make an existing file 0600 (files older versions wrote world-readable); missing is fine."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(path.stat().st_mode) != PRIVATE_FILE:
            os.chmod(path, PRIVATE_FILE)


class RedactingFormatter(logging.Formatter):
    """The usual format, then ``redact`` over the whole text: message, traceback and stack alike."""

    def __init__(self, fmt: str, redact: Callable[[str], str]) -> None:
        super().__init__(fmt)
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files are 0600 and which survives a full disk: the first failed write
    of an outage is reported on stderr, later ones are counted silently, the next successful write says
    how many lines were lost."""

    def __init__(self, filename: Path, max_bytes: int, backups: int, errors: TextIO | None = None) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive: an uncapped log is what rotation is for")
        self._errors = errors
        self.lost = 0  # lines lost in the current outage
        self.outages = 0
        for index in range(1, backups + 1):  # rotated files of older versions
            private_file(Path(f"{filename}.{index}"))
        super().__init__(filename, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, PRIVATE_FILE)
        with contextlib.suppress(OSError):
            os.fchmod(fd, PRIVATE_FILE)  # a log.txt an older version left world-readable
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    def emit(self, record: logging.LogRecord) -> None:
        lost = self.lost
        super().emit(record)  # failures go to handleError
        if lost and self.lost == lost:
            self._stderr(f"the log file {self.baseFilename} is writable again ({lost} line(s) lost)")
            self.lost = 0

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if self.stream is not None:  # drop what is buffered; the next line reopens the file
            with contextlib.suppress(Exception):
                self.stream.close()
            self.stream = None
        self.lost += 1
        if self.lost == 1:
            self.outages += 1
            self._stderr(f"cannot write the log file {self.baseFilename} ({error}); carrying on, the "
                         "file misses lines until it can be written again")

    def _stderr(self, text: str) -> None:
        stream = self._errors or sys.stderr
        with contextlib.suppress(Exception):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            stream.write(f"{stamp} WARNING {__name__}: {text}\n")
            stream.flush()


def setup_logging(
    level: str | int = "INFO",
    log_file: Path | None = None,
    *,
    max_bytes: int = int(DEFAULT_LOG_MAX_MB * MB),
    backups: int = DEFAULT_LOG_BACKUPS,
    redact: Callable[[str], str] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure the root logger once for a service process: ``stream`` (default stderr) and, when given,
    ``log_file`` (0600 in a 0700 folder, rotated at ``max_bytes`` with ``backups`` old files)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(stream)]
    if log_file is not None:
        private_dir(Path(log_file).parent)
        handlers.append(PrivateRotatingFileHandler(Path(log_file), max_bytes, backups))
    formatter = RedactingFormatter(FORMAT, redact) if redact is not None else logging.Formatter(FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=handlers, force=True)


def log_uncaught_exceptions() -> None:
    """Send uncaught exceptions (main thread and others) through logging, so the handlers' redaction
    applies to their tracebacks too."""
    def main_hook(kind: type[BaseException], value: BaseException, tb: object) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)  # type: ignore[arg-type]
            return
        logging.getLogger("smartlock").critical("Uncaught exception", exc_info=(kind, value, tb))  # type: ignore[arg-type]

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        logging.getLogger("smartlock").critical(
            "Uncaught exception in thread %s", name,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
        )

    sys.excepthook = main_hook
    threading.excepthook = thread_hook


class Outage:
    """Reports a run of failures of one kind (e.g. writing unlock frames on a full disk) once when it
    starts and once when it ends, not once per failure: a full disk must not fill the log it cannot write,
    nor the terminal."""

    def __init__(self, what: str, log: logging.Logger) -> None:
        self.what = what
        self.log = log
        self.failures = 0  # in the current outage
        self.outages = 0

    @property
    def active(self) -> bool:
        return self.failures > 0

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        if self.failures == 1:
            self.outages += 1
            self.log.error("%s failed: %s: %s; carrying on (logged once until it works again)",
                           self.what, type(error).__name__, error)

    def ok(self) -> None:
        if self.failures:
            self.log.warning("%s works again after %d failure(s)", self.what, self.failures)
            self.failures = 0


# A secret query value ends at the next parameter, a space, a quote or ": " (where a message quoting the
# URL goes on); a URL's password ends at its "@".
_SECRET_QUERY = re.compile(
    r"([?&;](?:token|api_key|key|password)=)[^&;#\s'\"]*?(?=[&;#\s'\"]|:\s|:?$)", re.IGNORECASE
)
_URL_PASSWORD = re.compile(r"(://[^/\s:@'\"]+:)[^/\s@'\"]+(@)")


def redact_url(text: str) -> str:
    """``text`` (a URL, or a message or log line quoting one) with every ``token=``, ``key=``,
    ``api_key=`` and ``password=`` query value and every ``user:password@`` password masked as ``***``."""
    return _URL_PASSWORD.sub(r"\1***\2", _SECRET_QUERY.sub(r"\1***", text))


class RedactTokens(logging.Filter):
    """A logger or handler filter applying redact_url to each record's message (uvicorn's access log
    passes the full path, query included, as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_url(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
