"""Row 14 (door): with its audit on a full disk the door refuses to unlock (503), never answers 500, still
locks, and /health says the audit is failing; once space is back it records that and unlocks again.

The issue's run: the relay moved ("unlock accepted"), then the audit write failed and the engine got a
500, so it retried an unlock that had happened, and /health said ok. The door now writes the unlock's
audit row before it moves the relay: no row, no unlock. Two stores, both against a real uvicorn with a
MockFactory relay: a real 3 MB tmpfs filled to the last byte (needs root and mount; skipped otherwise),
and a database capped with SQLite's ``max_page_count`` (the same SQLITE_FULL, anywhere).
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartlock.door.events import AuditWriteError, EventLog
from tests.door.helpers import door_server, levels
from tests.support import wait_for


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "3m") -> Iterator[Path]:
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write a file until the file system says it is full; returns it (delete it to free the space)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as err:
            assert err.errno == errno.ENOSPC, err
    return filler


def exhaust(events: EventLog) -> None:
    """Use up what room the database and its WAL still have, with ever smaller rows until not even an
    empty one fits (bounded: a 3 MB store holds far fewer rows)."""
    for size in (256, 16, 0):
        for _ in range(200_000):
            try:
                events.add("x", "x", reason="r" * size or None)
            except AuditWriteError:
                break
        else:
            raise AssertionError("the store never filled up")


def assert_full_disk_behaviour(server) -> None:
    """The door on a store that cannot take another row."""
    accepted_before = server.signed("GET", "/events?limit=1").status_code  # reads still work
    assert accepted_before == 200
    server.pin.clear_states()

    unlock = server.signed("POST", "/unlock", b'{"person": "alice", "source": "engine"}')
    assert unlock.status_code == 503, unlock.text  # not 500: the engine's retry is right, nothing happened
    assert "audit cannot be written" in unlock.json()["message"]
    assert "stays locked" in unlock.json()["message"]
    assert levels(server.pin) == [True], "the relay moved without an audit row"

    health = server.http.get("/health").json()
    assert health["status"] == "degraded"
    assert health["problems"][0].startswith("audit cannot be written: ")

    refused = server.http.post("/unlock")  # an unsigned request: refused as ever, not a 500
    assert refused.status_code == 401

    lock = server.signed("POST", "/lock")  # locking never waits for the audit
    assert lock.status_code == 200 and lock.json()["locked"] is True and "audit" in lock.json()
    assert levels(server.pin) == [True]
    assert server.signed("GET", "/status").json()["locked"] is True


def test_on_a_full_tmpfs_the_door_stays_locked_and_recovers(tmp_path):
    with tmpfs(tmp_path / "disk") as disk:
        events = EventLog(disk / "events.sqlite3", checkpoint_interval=0.1)
        with door_server(tmp_path, events=events, lock_delay=0.3) as server:
            unlocks_before = sum(e["action"] == "unlock" for e in server.events.page(limit=500))
            filler = fill(disk)
            exhaust(server.events)
            assert_full_disk_behaviour(server)
            assert sum(e["action"] == "unlock" for e in server.events.page(limit=500)) == unlocks_before

            filler.unlink()  # space is back: the next probe writes, and /health recovers by itself
            wait_for(lambda: server.http.get("/health").json()["status"] == "ok", what="/health ok again")
            recovered = server.events.last("audit", "info")
            assert recovered is not None and "full" in recovered["reason"]
            server.pin.clear_states()
            assert server.signed("POST", "/unlock", b'{"person": "alice"}').status_code == 202
            wait_for(lambda: server.pin.state, what="the relock")
            assert levels(server.pin) == [True, False, True]
            assert server.events.last("unlock", "accepted")["person"] == "alice"


def test_on_a_size_capped_database_the_door_stays_locked(tmp_path):
    events = EventLog(tmp_path / "events.sqlite3", max_pages=64)  # 64 pages of 4 KB: SQLITE_FULL after
    with door_server(tmp_path, events=events, lock_delay=0.3) as server:
        exhaust(server.events)
        assert_full_disk_behaviour(server)
        assert server.events.last("unlock", "accepted") is None
        assert server.events.last("unlock", "pending") is None
