"""The door's unit, run the way systemd runs it: `systemctl stop` and a crash both leave the relay locked.

No systemd runs here, so the test does its part: the command line is the one systemd parsed out of the
generated unit, the environment and working directory are the unit's, and the stop signal is the unit's
KillSignal=. After a SIGKILL (which no handler sees) the unit's Restart=always starts the same command
again; the test does that too and checks the door comes back locked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from smartlock.deploy.install import InstallRequest, plan_install, write_unit
from smartlock.door.auth import generate_secret
from smartlock.door.client import DoorClient
from smartlock.door.events import EventLog
from tests.deploy.helpers import needs_systemd_analyze, one, settings, systemd_argv
from tests.support import LOOPBACK, free_port, stop_process, wait_for, wait_until_up

pytestmark = [pytest.mark.slow, needs_systemd_analyze]


class DoorUnit:
    """The generated smartlock-door.service, and a way to start its ExecStart= as systemd would."""

    def __init__(self, tmp_path: Path) -> None:
        self.secret = generate_secret(tmp_path / "door.secret")
        self.port = free_port()
        self.events = tmp_path / "events.sqlite3"
        data = tmp_path / "data"
        data.mkdir()
        flags = ("--pin", "11", "--pin-factory", "mock", "--host", LOOPBACK, "--port", str(self.port),
                 "--secret-file", str(tmp_path / "door.secret"), "--events-db", str(self.events),
                 "--lock-delay", "30")
        request = InstallRequest(part="door", flags=flags, unit_dir=tmp_path / "units", data_dir=data)
        plan = plan_install(request)
        write_unit(plan)
        self.text = plan.path.read_text()
        self.argv = systemd_argv(plan.path)
        self.cwd = one(self.text, "WorkingDirectory")
        self.env = dict(value.split("=", 1) for value in settings(self.text)["Environment"])
        self.kill_signal = signal.Signals[one(self.text, "KillSignal")]
        self.stop_timeout = float(one(self.text, "TimeoutStopSec"))
        self.url = f"http://{LOOPBACK}:{self.port}"

    def start(self, log: Path) -> subprocess.Popen:
        with open(log, "ab") as output:
            process = subprocess.Popen(self.argv, cwd=self.cwd, env={**os.environ, **self.env},
                                       stdout=output, stderr=subprocess.STDOUT)
        wait_until_up(f"{self.url}/health", timeout=60, process=process)
        return process

    def client(self) -> DoorClient:
        return DoorClient(f"{self.url}/unlock", self.secret, timeout=5.0)

    def audit(self) -> list[dict]:
        events = EventLog(self.events)
        try:
            return events.page(limit=20)
        finally:
            events.close()


def test_systemctl_stop_while_unlocked_locks_the_relay_and_exits_cleanly(tmp_path):
    unit = DoorUnit(tmp_path)
    assert unit.argv[1:4] == ["-m", "smartlock", "door"]
    log = tmp_path / "door.log"
    process = unit.start(log)
    try:
        with unit.client() as client:
            client.unlock(person="grace", source="test")
            assert client.status()["locked"] is False
        process.send_signal(unit.kill_signal)  # what `systemctl stop` sends first
        started = time.monotonic()
        code = process.wait(timeout=unit.stop_timeout)  # before systemd would escalate to SIGKILL
    finally:
        stop_process(process)
    assert code == 0, log.read_text()  # a clean stop: systemd records success, Restart= is not triggered
    assert time.monotonic() - started < unit.stop_timeout
    stop, unlock = unit.audit()[:2]
    assert (unlock["action"], unlock["door"], unlock["pin_level"]) == ("unlock", "unlocked", "LOW")
    assert (stop["action"], stop["door"], stop["pin_level"]) == ("stop", "locked", "HIGH")
    assert "exit: relay locked, BOARD11 read HIGH before release" in log.read_text()


def test_after_a_crash_the_restarted_door_starts_locked(tmp_path):
    unit = DoorUnit(tmp_path)
    assert one(unit.text, "Restart") == "always"
    log = tmp_path / "door.log"
    crashed = unit.start(log)
    try:
        with unit.client() as client:
            client.unlock(person="grace", source="test")
        # the audit row may be written just after the answer: kill only once it is there
        wait_for(lambda: any(e["action"] == "unlock" for e in unit.audit()), what="the unlock in the audit")
        crashed.send_signal(signal.SIGKILL)  # no handler runs: the relay is never locked by this process
        assert crashed.wait(timeout=20) == -signal.SIGKILL
    finally:
        stop_process(crashed)

    restarted = unit.start(log)  # what Restart=always does RestartSec= later
    try:
        with unit.client() as client:
            status = client.status()
        assert status["locked"] is True and status["relay"]["level"] == "HIGH"
    finally:
        assert stop_process(restarted) == 0
    actions = [(e["action"], e["outcome"]) for e in reversed(unit.audit())]
    # first run: start, unlock, and no stop row (killed); second run: start, then a clean stop
    assert actions == [("start", "info"), ("unlock", "accepted"), ("start", "info"), ("stop", "info")]
