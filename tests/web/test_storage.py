"""A full disk under the dashboard's data: told apart from other errors, logged once per burst."""

from __future__ import annotations

import errno
import logging
import sqlite3

import pytest

from smartlock.web.storage import StorageWatch, storage_trouble
from tests.support import ManualClock


def test_what_counts_as_a_full_disk(tmp_path) -> None:
    assert storage_trouble(OSError(errno.ENOSPC, "No space left on device"))
    assert not storage_trouble(OSError(errno.ENOENT, "No such file"))
    full = sqlite3.connect(tmp_path / "db.sqlite3")
    full.execute("CREATE TABLE t (x TEXT)")
    full.execute("PRAGMA max_page_count = 2")  # SQLite's own cap: SQLITE_FULL on the next pages
    with pytest.raises(sqlite3.Error) as caught:
        for _ in range(100):
            full.execute("INSERT INTO t VALUES (?)", ("x" * 4000,))
    assert storage_trouble(caught.value)
    assert not storage_trouble(sqlite3.OperationalError("no such table: nope"))
    assert not storage_trouble(ValueError("bad"))


def test_a_burst_is_logged_once_then_reminded(caplog) -> None:
    clock = ManualClock()
    watch = StorageWatch(remind_every=600, clock=clock)
    caplog.set_level(logging.INFO, logger="smartlock.web.storage")
    for _ in range(50):
        watch.failed("POST /hooks/engine", OSError(errno.ENOSPC, "No space left on device"))
    assert len(caplog.records) == 1 and watch.problem and "No space left" in watch.problem
    clock.advance(601)
    watch.failed("PUT /api/settings", OSError(errno.ENOSPC, "No space left on device"))
    assert len(caplog.records) == 2 and "49 more failed writes" in caplog.records[1].getMessage()
    watch.succeeded()
    assert watch.problem is None and "written again" in caplog.records[2].getMessage()
    watch.failed("POST /api/captures", OSError(errno.ENOSPC, "No space left on device"))
    assert len(caplog.records) == 4  # a new burst is logged again
