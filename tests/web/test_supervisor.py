"""The supervisor with tiny real child processes (tests/web/child.py)."""

from __future__ import annotations

import io
import itertools
import os
import sys
import time
from pathlib import Path

import pytest

from smartlock.web.supervisor import ChildSpec, Supervisor
from tests.support import free_port, wait_for

CHILD = str(Path(__file__).with_name("child.py"))


def child(name: str, log: Path, *extra: str) -> list[str]:
    return [sys.executable, CHILD, "--name", name, "--log", str(log), *extra]


def lines(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def at_least(count: int, found: list) -> list | None:
    return found if len(found) >= count else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def log(tmp_path) -> Path:
    return tmp_path / "children.log"


def test_starts_in_order_waits_for_health_and_stops_in_reverse(log: Path) -> None:
    port = free_port()
    calls: list[str] = []

    def lock() -> None:
        calls.append("lock")
        with open(log, "a") as handle:
            handle.write(f"lock door {time.time():.3f}\n")

    out = io.StringIO()
    supervisor = Supervisor([
        ChildSpec("door", child("door", log, "--port", str(port), "--ready-after", "0.5"),
                  health_url=f"http://127.0.0.1:{port}/health", before_stop=lock),
        ChildSpec("engine", child("engine", log), settle=0.3),
    ], output=out)
    supervisor.start()
    try:
        assert supervisor.wait_ready(30)
        # "running" after the settle time: under load the child may not have written its line yet
        events = wait_for(lambda: at_least(2, lines(log)), timeout=20)
        assert [e[:2] for e in events] == [["start", "door"], ["start", "engine"]]
        # the engine started only after the door answered its health URL (0.5 s after it started)
        assert float(events[1][3]) - float(events[0][3]) >= 0.5
        status = {row["name"]: row for row in supervisor.status()}
        assert status["door"]["state"] == "running" and status["door"]["pid"] > 0
        wait_for(lambda: "hello from engine" in out.getvalue())
        assert "     engine | hello from engine" in out.getvalue()
    finally:
        supervisor.stop()
    assert [e[:2] for e in lines(log)[2:]] == [["stop", "engine"], ["lock", "door"], ["stop", "door"]]
    assert calls == ["lock"]
    assert all(row["state"] == "stopped" and row["pid"] is None for row in supervisor.status())
    supervisor.stop()  # idempotent


def test_a_crashing_child_is_restarted_with_growing_delays(log: Path) -> None:
    supervisor = Supervisor(
        [ChildSpec("camera", child("camera", log, "--exit-after", "0.4", "--code", "5"), settle=0.2)],
        backoff_initial=0.3, backoff_max=1.2, output=io.StringIO(),
    )
    supervisor.start()
    try:
        wait_for(lambda: len([e for e in lines(log) if e[0] == "start"]) >= 4, timeout=60)
        row = supervisor.status()[0]
    finally:
        supervisor.stop()
    starts = [float(e[3]) for e in lines(log) if e[0] == "start"]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # each run lasts 0.4 s, then waits 0.3, 0.6, 1.2 (capped) before the next start
    for gap, delay in zip(gaps, (0.3, 0.6, 1.2), strict=False):
        assert gap >= 0.4 + delay
    assert row["restarts"] >= 3 and row["last_exit"] == 5
    assert "camera failing on purpose" in row["last_output"]


def test_a_child_that_fails_its_first_start_stops_everything(log: Path) -> None:
    supervisor = Supervisor([
        ChildSpec("door", child("door", log), settle=0.2),
        ChildSpec("camera", child("camera", log, "--exit-after", "0", "--code", "2"), settle=1.0),
        ChildSpec("engine", child("engine", log), settle=0.2),
    ], output=io.StringIO())
    supervisor.start()
    assert supervisor.wait_stopped(30)
    assert supervisor.failure is not None
    assert supervisor.failure.startswith("camera exited with code 2 while starting")
    assert "camera failing on purpose" in supervisor.failure
    names = [e[:2] for e in lines(log)]
    assert ["start", "engine"] not in names  # never started
    assert names[-1] == ["stop", "door"]


def test_a_child_ignoring_sigterm_is_killed(log: Path) -> None:
    supervisor = Supervisor([ChildSpec("stubborn", child("stubborn", log, "--ignore-term"), settle=0.2,
                                       stop_timeout=1.0)], output=io.StringIO())
    supervisor.start()
    assert supervisor.wait_ready(20)
    pid = int(wait_for(lambda: lines(log), timeout=20)[0][2])
    supervisor.stop()
    assert ["ignored", "stubborn"] in [e[:2] for e in lines(log)]
    assert not pid_alive(pid)


def test_restart_on_request_with_a_new_command_line(log: Path) -> None:
    supervisor = Supervisor([ChildSpec("engine", child("engine", log), settle=0.2)], output=io.StringIO())
    supervisor.start()
    try:
        assert supervisor.wait_ready(20)
        supervisor.restart("engine", child("engine-0.9", log))
        wait_for(lambda: ["start", "engine-0.9"] in [e[:2] for e in lines(log)])
        assert supervisor.argv("engine")[-3] == "engine-0.9"
        wait_for(lambda: supervisor.status()[0]["state"] == "running")
        assert supervisor.status()[0]["restarts"] == 0  # asked for, not a crash
        with pytest.raises(KeyError):
            supervisor.restart("nobody")
    finally:
        supervisor.stop()
    assert [e[:2] for e in lines(log)] == [["start", "engine"], ["stop", "engine"], ["start", "engine-0.9"],
                                          ["stop", "engine-0.9"]]


def test_a_missing_program_is_reported(tmp_path) -> None:
    supervisor = Supervisor([ChildSpec("ghost", [str(tmp_path / "no-such-program")], settle=0.2)],
                            output=io.StringIO())
    supervisor.start()
    assert supervisor.wait_stopped(20)
    assert "ghost" in (supervisor.failure or "")


def test_children_die_with_the_supervisor_process(tmp_path, log: Path) -> None:
    """SIGKILL of the process running the supervisor: its children get SIGTERM (Linux PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("parent-death signal is Linux only")
    import subprocess
    import textwrap

    script = textwrap.dedent(f"""
        import io, sys, time
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})
        from smartlock.web.supervisor import ChildSpec, Supervisor
        s = Supervisor([ChildSpec("door", {child("door", log)!r}, settle=0.2)], output=io.StringIO())
        s.start()
        s.wait_ready(20)
        print("ready", flush=True)
        time.sleep(60)
    """)
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert runner.stdout.readline().strip() == "ready"
        pid = int(wait_for(lambda: lines(log), timeout=20)[0][2])
        runner.kill()
        runner.wait(10)
        wait_for(lambda: not pid_alive(pid), timeout=10)
        assert ["stop", "door"] in [e[:2] for e in lines(log)]  # it got SIGTERM, so the door locks
    finally:
        runner.kill()
        runner.wait(10)


def test_apply_restarts_only_the_named_parts_and_waits_for_them(log: Path) -> None:
    port = free_port()
    locks: list[str] = []
    door_v1 = child("door", log, "--port", str(port))
    supervisor = Supervisor([
        ChildSpec("door", door_v1, health_url=f"http://127.0.0.1:{port}/health",
                  before_stop=lambda: locks.append("lock")),
        ChildSpec("engine", child("engine", log), settle=0.2),
    ], output=io.StringIO())
    supervisor.start()
    try:
        assert supervisor.wait_ready(30)
        before = {row["name"]: row["pid"] for row in supervisor.status()}
        result = supervisor.apply([("door", child("door-v2", log, "--port", str(port)))])
        # synchronous: when it returns, the new door runs (answers its health URL)
        assert result.ok and result.restarted == ["door"] and result.failed is None
        after = {row["name"]: row["pid"] for row in supervisor.status()}
        assert after["engine"] == before["engine"] and after["door"] not in (None, before["door"])
        assert supervisor.argv("door")[3] == "door-v2"
        assert locks == ["lock"]  # the door is locked before it is stopped for a restart
        assert supervisor.apply([]).ok
        with pytest.raises(KeyError):
            supervisor.apply([("nobody", ["x"])])
    finally:
        supervisor.stop()


def test_a_failed_apply_puts_every_touched_part_back(log: Path) -> None:
    port = free_port()
    locks: list[str] = []
    door_v1 = child("door", log, "--port", str(port))
    engine_v1 = child("engine", log)
    supervisor = Supervisor([
        ChildSpec("door", door_v1, health_url=f"http://127.0.0.1:{port}/health",
                  before_stop=lambda: locks.append("lock")),
        ChildSpec("engine", engine_v1, settle=0.3),
    ], output=io.StringIO())
    supervisor.start()
    try:
        assert supervisor.wait_ready(30)
        result = supervisor.apply([
            ("door", child("door-v2", log, "--port", str(port))),
            ("engine", child("engine-bad", log, "--exit-after", "0", "--code", "2")),
        ])
        assert not result.ok and result.failed == "engine" and result.reverted
        assert result.restarted == ["door", "engine"]
        reason = result.reason or ""
        assert "exited with code 2" in reason and "engine-bad failing on purpose" in reason
        # both run their old command lines again
        assert supervisor.argv("door") == door_v1 and supervisor.argv("engine") == engine_v1
        assert all(row["state"] == "running" for row in supervisor.status())
        starts = wait_for(lambda: at_least(6, [e[1] for e in lines(log) if e[0] == "start"]), timeout=20)
        assert starts == ["door", "engine", "door-v2", "engine-bad", "engine", "door"]
        assert locks == ["lock", "lock"]  # locked before each of the door's stops
    finally:
        supervisor.stop()
