"""Row 14 (dashboard): with its data on a full disk the dashboard answers 503 to writes, logs it once, and
keeps serving everything that only reads; once there is room again it records again.

Attacked: the dashboard as its own process (served as `up` serves it), its timeline, captures and settings
on a real 3 MB tmpfs filled to the last byte. Needs root to mount (skipped otherwise).
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smartlock.web.routes.guards import CSRF_HEADER
from tests.support import free_port
from tests.web.conftest import CREDENTIALS, WEBHOOK_TOKEN
from tests.web.serve_dashboard import dashboard_process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

FULL_DISK_LINE = "cannot write the dashboard's data"


@contextlib.contextmanager
def tiny_tmpfs(folder: Path, size: str = "3m") -> Iterator[Path]:
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
                             capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(disk: Path) -> Path:
    """Write a file until the disk has no byte left; returns it."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        for _ in range(10_000):  # bounded: 3 MB in 4 KB steps at most
            try:
                out.write(b"\0" * 4096)
            except OSError as err:
                assert err.errno == errno.ENOSPC
                break
        else:
            raise AssertionError("the tmpfs never filled")
    return filler


def event(person: str) -> dict:
    return {"event": "unlocked", "person": person, "confidence": 0.93}


def test_full_disk_is_a_503_logged_once_and_reading_goes_on(tmp_path: Path) -> None:
    log = tmp_path / "dashboard.log"
    port = free_port()
    with tiny_tmpfs(tmp_path / "disk") as disk, \
            dashboard_process(tmp_path / "data", port, "--web-dir", str(disk / "web"), log=log):
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={CSRF_HEADER: "1"}, timeout=10)
        hook = {"authorization": f"Bearer {WEBHOOK_TOKEN}"}
        assert client.post("/api/auth/login", json=CREDENTIALS).status_code == 200
        assert client.post("/hooks/engine", json=event("before"), headers=hook).status_code == 200
        filler = fill(disk)

        for i in range(20):
            answer = client.post("/hooks/engine", json=event(f"person{i}"), headers=hook)
            assert answer.status_code == 503, answer.text
            assert "disk is full" in answer.json()["message"]
        refused = client.put("/api/settings", json={"threshold": 0.6})
        assert refused.status_code == 503
        # reading goes on: pages, the timeline, the settings, the state of the system
        assert client.get("/live").status_code == 200
        events = client.get("/api/events").json()["events"]
        assert [e["person"] for e in events] == ["before"]  # nothing half-written
        system = client.get("/api/system").json()
        assert system["settings"]["threshold"] == 0.8 and "disk" not in str(system["settings"])
        assert system["storage_problem"] and FULL_DISK_LINE in system["storage_problem"]

        text = log.read_text()
        assert text.count(FULL_DISK_LINE) == 1, text[-3000:]  # once, not once per request
        assert "Traceback" not in text and "unexpected error" not in text

        filler.unlink()  # room again: the next event is recorded, and the dashboard says so
        assert client.post("/hooks/engine", json=event("after"), headers=hook).status_code == 200
        assert [e["person"] for e in client.get("/api/events").json()["events"]] == ["after", "before"]
        assert client.get("/api/system").json()["storage_problem"] is None
        assert client.put("/api/settings", json={"threshold": 0.6}).status_code == 200
        client.close()
    assert "can be written again" in log.read_text()
