"""The audit's bounded history, refusal folding, write failures, schema upgrade and file modes."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from smartlock.door.events import AuditWriteError, EventLog
from smartlock.door.refusals import RefusalDigest
from tests.support import ManualClock

DAY = 86400.0


def quiet_log(path, **options) -> EventLog:
    """An EventLog whose background thread prunes only when many rows arrive (the tests call prune())."""
    return EventLog(path, prune_interval=3600, **options)


def test_prune_drops_expired_rows_and_rows_beyond_the_cap_oldest_first(tmp_path):
    clock = ManualClock(now=1000 * DAY)
    log = quiet_log(tmp_path / "e.sqlite3", retention_days=90, max_rows=50, prune_batch=7, clock=clock,
                    checkpoint_interval=3600)
    for i in range(40):
        log.add("unlock", "refused", at=clock.now - 100 * DAY + i)  # expired
    for i in range(80):
        log.add("unlock", "accepted", person=f"p{i}")
    log.prune()  # (the inserts may have woken the background pruning already: same result)
    kept = log.page(limit=500)
    assert len(kept) == 50 and kept[0]["person"] == "p79" and kept[-1]["person"] == "p30"
    assert log.prune() == 0
    clock.advance(91 * DAY)  # now everything is expired
    log.prune()
    assert log.count() == 0
    log.close()


def test_prune_stops_at_the_first_row_it_must_keep(tmp_path):
    clock = ManualClock(now=1000 * DAY)
    log = quiet_log(tmp_path / "e.sqlite3", retention_days=1, clock=clock)
    log.add("start", "info", at=clock.now - 2 * DAY)
    log.add("unlock", "accepted")
    log.add("start", "info", at=clock.now - 3 * DAY)  # out of order (an injected time): kept for now
    log.prune()  # (or the background thread's first pruning did it: same result)
    assert [e["action"] for e in log.page()] == ["start", "unlock"]
    log.close()


def test_amend_and_add_times_change_a_written_row(tmp_path):
    log = quiet_log(tmp_path / "e.sqlite3")
    event_id = log.add("unlock", "pending", status=202, person="alice", door="locked")
    log.amend(event_id, outcome="accepted", door="unlocked", pin_level="LOW")
    log.add_times(event_id, 4)
    event = log.page(limit=1)[0]
    assert (event["outcome"], event["door"], event["pin_level"], event["times"]) == (
        "accepted", "unlocked", "LOW", 5)
    with pytest.raises(ValueError):
        log.amend(event_id, id=1)
    log.close()


def test_a_full_database_raises_audit_write_error_and_says_so_until_a_write_succeeds(tmp_path):
    log = quiet_log(tmp_path / "e.sqlite3", max_pages=16, checkpoint_interval=3600)
    with pytest.raises(AuditWriteError, match="full"):
        for _ in range(10_000):
            log.add("x", "x", reason="r" * 200)
    assert log.failure and "full" in log.failure
    with sqlite3.connect(log.path) as db:  # space freed behind its back (as a deleted file would)
        db.execute("DELETE FROM events WHERE id < 20")
    log.add("x", "x")
    assert log.failure is None
    log.close()


def test_a_schema_1_database_is_upgraded_in_place(tmp_path):
    path = tmp_path / "e.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, "
                   "action TEXT NOT NULL, outcome TEXT NOT NULL, status INTEGER, method TEXT, path TEXT, "
                   "client TEXT, key_id TEXT, reason TEXT, person TEXT, confidence REAL, source TEXT, "
                   "door TEXT, pin_level TEXT)")
        db.execute("INSERT INTO events (time, action, outcome) VALUES (1000.0, 'start', 'info')")
        db.execute("PRAGMA user_version=1")
    log = quiet_log(path)
    assert log.page()[0]["times"] == 1
    log.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2


def test_files_and_created_folders_are_private(tmp_path):
    path = tmp_path / "a" / "b" / "events.sqlite3"
    log = quiet_log(path)
    log.add("start", "info")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.with_name("events.sqlite3-wal").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    log.close()
    path.chmod(0o644)  # written by an older smartlock
    quiet_log(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


class Recorder:
    def __init__(self) -> None:
        self.rows: list[str] = []
        self.times: dict[int, int] = {}

    def write(self, name: str):
        def add() -> int:
            self.rows.append(name)
            return len(self.rows)
        return add

    def add_times(self, event_id: int, more: int) -> None:
        self.times[event_id] = self.times.get(event_id, 0) + more


def test_identical_refusals_within_a_minute_share_one_row():
    clock, recorder = ManualClock(), Recorder()
    digest = RefusalDigest(recorder, clock=clock)  # type: ignore[arg-type]
    kind = ("10.0.0.1", "POST", "unlock", 401)
    for _ in range(5):
        digest.refuse(kind, recorder.write("first"))
    digest.refuse(("10.0.0.1", "POST", "unlock", 403), recorder.write("other status"))
    digest.refuse(("10.0.0.2", "POST", "unlock", 401), recorder.write("other address"))
    assert recorder.rows == ["first", "other status", "other address"] and recorder.times == {}
    clock.advance(61)
    digest.refuse(kind, recorder.write("next minute"))  # closes the first window: its 4 repeats written
    assert recorder.rows[-1] == "next minute" and recorder.times == {1: 4}
    digest.refuse(kind, recorder.write("unused"))
    digest.flush()
    assert recorder.times == {1: 4, 4: 1}


def test_open_windows_are_bounded():
    clock, recorder = ManualClock(), Recorder()
    digest = RefusalDigest(recorder, clock=clock, max_open=10)  # type: ignore[arg-type]
    for i in range(100):
        kind = (f"10.0.0.{i}", "POST", "unlock", 401)
        digest.refuse(kind, recorder.write(str(i)))
        digest.refuse(kind, recorder.write("repeat"))
    assert len(digest._open) == 10
    assert len(recorder.rows) == 100 and sum(recorder.times.values()) == 90  # closed early, counted
