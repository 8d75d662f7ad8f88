"""Row 9: the door's audit stays bounded, its pruning never holds up an unlock, and its file is private.

The issue's attack: refused requests from 100 source addresses added 1,200 rows and a 40 MB WAL in
seconds. Now identical refusals from one address within a minute share one row (its ``times`` counts
them), so the same flood adds two rows per address (the first refusal and the block), while every
refusal is still counted; the table keeps at most ``--audit-max-rows`` rows and nothing older than
``--audit-retention-days``; the pruning, batch by batch, lets unlocks through between its batches.
Everything against a real uvicorn (MockFactory relay) or a real `smartlock door` process.
"""

from __future__ import annotations

import itertools
import sqlite3
import stat
import threading
import time

import pytest

from smartlock.door.auth import generate_secret, load_secret
from smartlock.door.client import DoorClient
from smartlock.door.events import EventLog
from smartlock.door.ratelimit import RefusalLimiter
from tests.door.helpers import client_from, door_server, levels
from tests.support import LOOPBACK, free_port, service_process, wait_for

DAY = 86400.0


def test_a_flood_from_100_addresses_adds_two_rows_each_and_counts_every_refusal(tmp_path):
    limiter = RefusalLimiter()  # the default: 10 refusals a minute, then a block
    with door_server(tmp_path, limiter=limiter) as server:
        before = server.events.count()
        server.pin.clear_states()
        answers: dict[int, int] = {}
        for host in range(100):
            with client_from(server.url, f"127.0.9.{host + 1}") as attacker:
                for _ in range(12):  # as the issue: 12 unsigned unlocks per address
                    code = attacker.post("/unlock").status_code
                    answers[code] = answers.get(code, 0) + 1
        assert answers == {401: 1100, 429: 100}
        assert levels(server.pin) == [True], "the relay moved"

        added = server.events.count() - before
        assert added == 200, added  # was 1,200: one refusal row and one block row per address
        server.signed("GET", "/events?limit=1")  # reading the audit writes the counts still in memory
        with sqlite3.connect(server.events.path) as db:
            refused, counted = db.execute(
                "SELECT COUNT(*), SUM(times) FROM events WHERE outcome = 'refused'").fetchone()
            blocks = db.execute("SELECT COUNT(*) FROM events WHERE action = 'block'").fetchone()[0]
        assert (refused, counted, blocks) == (100, 1100, 100)  # no refusal went uncounted
        wal = server.events.path.with_name(server.events.path.name + "-wal")
        assert wal.stat().st_size <= server.events.wal_limit  # the issue saw 40 MB


def test_rows_beyond_the_cap_and_older_than_the_retention_are_pruned(tmp_path):
    path = tmp_path / "events.sqlite3"
    now = time.time()
    seed = EventLog(path)
    for i in range(3000):
        seed.add("unlock", "refused", status=401, client=f"10.0.{i // 250}.{i % 250}", at=now - 200 * DAY + i)
    for i in range(1500):
        seed.add("unlock", "accepted", person=f"p{i}", at=now - DAY + i)
    seed.close()

    events = EventLog(path, retention_days=90, max_rows=1000, prune_batch=100)
    with door_server(tmp_path, events=events, lock_delay=30.0) as server:
        # 1001: the start row may come just after the pruning (the next one trims it)
        wait_for(lambda: server.events.count() <= 1001, what="pruning down to the cap")
        rows = server.signed("GET", "/events?limit=500").json()["events"]
        assert rows[0]["action"] == "start"  # the newest rows are kept
        assert server.signed("POST", "/unlock", b'{"person": "zoe"}').status_code == 202
        assert server.events.last("unlock", "accepted")["person"] == "zoe"
    with sqlite3.connect(path) as db:
        oldest = db.execute("SELECT MIN(time) FROM events").fetchone()[0]
        total = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert oldest > now - 90 * DAY  # every row of 200 days ago is gone
    assert total <= 1000 + 5  # the cap, plus the start, unlock, relock and stop rows since


def test_unlocks_are_answered_between_the_batches_of_a_long_pruning(tmp_path):
    """The pruner waits, after each batch, for one more unlock answer: if pruning held up unlocks, this
    lockstep could not advance (each wait is bounded, and a missed one fails the test)."""
    path = tmp_path / "events.sqlite3"
    seed = EventLog(path, retention_days=36500)  # keeps them: the door's own log must do the pruning
    old = time.time() - 365 * DAY
    for i in range(4000):
        seed.add("unlock", "refused", status=401, reason="x" * 50, at=old + i)
    seed.close()

    answered = released = 0
    progress = threading.Condition()
    batches: list[tuple[int, int]] = []  # (rows deleted, unlock answers so far) after each batch
    missed: list[int] = []

    def after_batch(deleted: int) -> None:
        nonlocal released
        with progress:
            batches.append((deleted, answered))
            if not progress.wait_for(lambda: answered > batches[-1][1], timeout=20):
                missed.append(len(batches))
            released += 1

    events = EventLog(path, prune_batch=200, on_prune_batch=after_batch)
    with door_server(tmp_path, events=events, lock_delay=30.0) as server:
        codes = []
        while released < 20 and len(codes) < 200:  # 4,000 rows in batches of 200
            codes.append(server.signed("POST", "/unlock").status_code)
            with progress:
                answered += 1
                progress.notify_all()
        assert not missed, f"no unlock answer came after batch(es) {missed}"
        assert set(codes) == {202}
        assert [deleted for deleted, _ in batches] == [200] * 20
        seen = [answers for _, answers in batches]
        assert all(a < b for a, b in itertools.pairwise(seen)), seen  # answers between all batches
        assert server.events.count() < 4000 // 10  # the pruning did finish
        assert server.pin.state is False  # the door did open


def test_the_door_process_keeps_its_audit_private_and_honours_the_flags(tmp_path):
    generate_secret(tmp_path / "door.secret")
    path = tmp_path / "fresh" / "door" / "events.sqlite3"  # neither folder exists yet
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    args = ["door", "-p", "11", "--pin-factory", "mock", "--host", LOOPBACK, "--port", str(port),
            "--secret-file", str(tmp_path / "door.secret"), "--events-db", str(path),
            "--audit-retention-days", "30", "--audit-max-rows", "100"]
    with service_process(args, f"{url}/health"):
        with DoorClient(f"{url}/unlock", load_secret(tmp_path / "door.secret"), timeout=5.0) as client:
            client.unlock(person="alice", source="test")
        for file in (path, path.with_name(path.name + "-wal")):
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        for folder in (path.parent, path.parent.parent):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder

    # An existing database that anyone could read, with more rows than the cap and some too old.
    path.chmod(0o644)
    seed = EventLog(path)
    path.chmod(0o644)
    for i in range(500):
        seed.add("unlock", "refused", status=401, at=time.time() - (40 * DAY if i < 50 else 0))
    seed.close()
    path.chmod(0o644)
    with service_process(args, f"{url}/health"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        wait_for(lambda: _count(path) <= 101, what="pruning to --audit-max-rows 100")
    with sqlite3.connect(path) as db:
        total, oldest = db.execute("SELECT COUNT(*), MIN(time) FROM events").fetchone()
    assert total <= 102  # the cap, plus the start and stop rows written after a pruning
    assert oldest > time.time() - 30 * DAY  # --audit-retention-days 30


def _count(path) -> int:
    with sqlite3.connect(path, timeout=10) as db:
        return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])


@pytest.mark.parametrize("retention", [0, -1])
def test_the_retention_must_be_positive(retention, capsys):
    from smartlock.cli import main

    assert main(["door", "-p", "11", "--no-auth", "--audit-retention-days", str(retention)]) == 2
    assert "--audit-retention-days" in capsys.readouterr().err
