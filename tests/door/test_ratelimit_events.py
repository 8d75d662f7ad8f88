"""The refusal limiter (with a manual clock) and the SQLite audit log."""

from __future__ import annotations

import sqlite3

import pytest

from smartlock.door.events import EventLog
from smartlock.door.ratelimit import RefusalLimiter
from tests.support import ManualClock, wait_for


def test_more_than_ten_refusals_in_a_minute_block_for_a_minute():
    clock = ManualClock()
    limiter = RefusalLimiter(clock=clock)
    for _ in range(10):
        assert limiter.record_refusal("10.0.0.1") is False
        clock.now += 1
    assert limiter.blocked_for("10.0.0.1") == 0.0
    assert limiter.record_refusal("10.0.0.1") is True  # the 11th
    assert limiter.blocked_for("10.0.0.1") == pytest.approx(60.0)
    assert limiter.blocked_for("10.0.0.2") == 0.0
    clock.now += 59.5
    assert limiter.blocked_for("10.0.0.1") == pytest.approx(0.5)
    clock.now += 1
    assert limiter.blocked_for("10.0.0.1") == 0.0
    assert limiter.record_refusal("10.0.0.1") is False  # counting starts again from zero


def test_refusals_older_than_the_window_do_not_count():
    clock = ManualClock()
    limiter = RefusalLimiter(clock=clock)
    for _ in range(30):
        assert limiter.record_refusal("10.0.0.1") is False
        clock.now += 6.5  # 10 per 65 s: never more than 10 within any 60 s
    assert limiter.blocked_for("10.0.0.1") == 0.0


def test_memory_is_bounded_by_address_count():
    limiter = RefusalLimiter(clock=ManualClock(), max_addresses=100)
    for i in range(1000):
        limiter.record_refusal(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._refusals) == 100


def test_memory_is_bounded_even_with_many_blocked_addresses():
    clock = ManualClock()
    limiter = RefusalLimiter(max_refusals=0, clock=clock, max_addresses=100)
    for i in range(1000):
        assert limiter.record_refusal(f"10.1.{i // 256}.{i % 256}") is True  # each blocked at once
    assert len(limiter._blocked_until) == 100
    assert limiter.blocked_for("10.1.3.231") > 0  # the newest blocks are kept


def test_events_newest_first_paged_and_kept_across_reopen(tmp_path):
    path = tmp_path / "audit" / "events.sqlite3"
    keep = 100 * 365  # days: these rows are dated 1970, and this test is about paging, not retention
    log = EventLog(path, retention_days=keep)
    ids = [log.add("unlock", "accepted", status=202, person=f"p{i}", confidence=0.5, at=1000.0 + i)
           for i in range(7)]
    log.close()

    log = EventLog(path, retention_days=keep)
    first = log.page(limit=3)
    assert [e["person"] for e in first] == ["p6", "p5", "p4"]
    second = log.page(limit=3, before=first[-1]["id"])
    assert [e["person"] for e in second] == ["p3", "p2", "p1"]
    assert [e["id"] for e in log.page(limit=500)] == ids[::-1]
    assert first[0]["time"] == "1970-01-01T00:16:46.000+00:00"
    assert log.last("unlock", "accepted")["person"] == "p6"
    assert log.last("lock", "accepted") is None
    log.close()

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_page_limit_is_clamped(tmp_path):
    log = EventLog(tmp_path / "e.sqlite3")
    for _ in range(3):
        log.add("start", "info")
    assert len(log.page(limit=0)) == 1
    assert len(log.page(limit=10_000)) == 3
    log.close()


def test_checkpoints_happen_in_the_background_not_in_add(tmp_path):
    path = tmp_path / "e.sqlite3"
    log = EventLog(path, checkpoint_interval=3600)
    size_before = path.stat().st_size
    for i in range(300):
        log.add("unlock", "accepted", person=f"person-{i}", reason="x" * 100)
    assert path.stat().st_size == size_before  # 300 writes, all still in the WAL: add() never checkpoints
    log.close()  # close checkpoints everything
    assert path.stat().st_size > size_before
    assert not (tmp_path / "e.sqlite3-wal").exists()

    log = EventLog(path, checkpoint_interval=0.05)
    size_before = path.stat().st_size
    for i in range(300):
        log.add("unlock", "accepted", person=f"person-{i}", reason="x" * 100)
    wait_for(lambda: path.stat().st_size > size_before)  # the background thread did it
    log.close()
    reopened = EventLog(path)
    assert reopened.count() == 600
    reopened.close()
