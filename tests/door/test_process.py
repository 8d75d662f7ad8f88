"""`smartlock door` as a real process: signals and other exits leave the relay locked; CLI errors.

With MockFactory the pin lives inside the service process, so the observable is what the process
itself reads back from the pin while stopping: the `stop` row of the audit database (door state and
pin level read from gpiozero after locking) and its final log line.
"""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
import sys

import httpx
import pytest

from smartlock.cli import main
from smartlock.door.auth import generate_secret, load_secret, sign_request
from smartlock.door.client import DoorClient
from smartlock.door.events import EventLog
from tests.door.helpers import on_a_pi
from tests.support import LOOPBACK, free_port, service_process

pytestmark = pytest.mark.slow


def door_args(tmp_path, port: int, *extra: str) -> list[str]:
    return ["door", "-p", "11", "--pin-factory", "mock", "--host", LOOPBACK, "--port", str(port),
            "--secret-file", str(tmp_path / "door.secret"), "--events-db", str(tmp_path / "events.sqlite3"),
            *extra]


@pytest.mark.parametrize(("signum", "exit_code"),
                         [(signal.SIGTERM, 0), (signal.SIGHUP, 0), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_signal_while_unlocked_leaves_the_relay_locked(tmp_path, signum, exit_code):
    secret = generate_secret(tmp_path / "door.secret")
    port = free_port()
    log = tmp_path / "door.log"
    args = door_args(tmp_path, port, "--lock-delay", "30")
    with service_process(args, f"http://{LOOPBACK}:{port}/health", log_path=log) as process:
        with DoorClient(f"http://{LOOPBACK}:{port}/unlock", secret, timeout=5.0) as client:
            client.unlock(person="grace", source="test")
            status = client.status()
        assert status["locked"] is False and status["seconds_left"] > 20
        assert status["relay"]["level"] == "LOW"
        process.send_signal(signum)
        assert process.wait(timeout=20) == exit_code

    events = EventLog(tmp_path / "events.sqlite3")
    newest_first = events.page(limit=10)
    events.close()
    actions = [(e["action"], e["outcome"]) for e in newest_first]
    assert actions == [("stop", "info"), ("unlock", "accepted"), ("start", "info")]
    stop, unlock = newest_first[0], newest_first[1]
    assert (unlock["door"], unlock["pin_level"]) == ("unlocked", "LOW")
    assert (stop["door"], stop["pin_level"]) == ("locked", "HIGH")  # read back from the pin while stopping
    text = log.read_text()
    assert "exit: relay locked, BOARD11 read HIGH before release" in text
    assert "relay is simulated" in text


def test_any_exit_locks_even_when_the_server_cannot_start(tmp_path):
    generate_secret(tmp_path / "door.secret")
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "smartlock", *door_args(tmp_path, port)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "exit: relay locked, BOARD11 read HIGH before release" in result.stderr
    events = EventLog(tmp_path / "events.sqlite3")
    stop = events.page(limit=1)[0]
    events.close()
    assert (stop["action"], stop["door"], stop["pin_level"]) == ("stop", "locked", "HIGH")


@pytest.mark.skipif(on_a_pi(), reason="on a Raspberry Pi the auto pin factory works")
def test_auto_pin_factory_off_a_pi_suggests_mock(tmp_path):
    generate_secret(tmp_path / "door.secret")
    args = door_args(tmp_path, free_port())
    args[args.index("--pin-factory") + 1] = "auto"
    result = subprocess.run([sys.executable, "-m", "smartlock", *args], capture_output=True, text=True,
                            timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 2
    assert "--pin-factory mock" in result.stderr


def test_generate_secret_writes_a_private_file_and_exits(tmp_path, capsys):
    path = tmp_path / "door.secret"
    assert main(["door", "--generate-secret", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(path).key_id in capsys.readouterr().out
    assert main(["door", "--generate-secret", str(path)]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["door", "-p", "11", "--pin-factory", "mock"], "--secret-file"),
        (["door", "--pin-factory", "mock", "--no-auth"], "--pin is required"),
        (["door", "-p", "11", "--no-auth", "--secret-file", "x"], "exclude each other"),
        (["door", "-p", "11", "--no-auth", "-d", "0"], "--lock-delay"),
    ],
)
def test_door_refuses_incomplete_or_contradictory_flags(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_a_request_signed_before_a_restart_cannot_be_replayed_after_it(tmp_path):
    secret = generate_secret(tmp_path / "door.secret")
    # Sniffed just before the door restarted, most likely within the same second as the new start.
    captured = sign_request(secret, "POST", "/unlock", b"")
    port = free_port()
    with service_process(door_args(tmp_path, port), f"http://{LOOPBACK}:{port}/health"):
        response = httpx.post(f"http://{LOOPBACK}:{port}/unlock", headers=captured, timeout=5.0)
        assert response.status_code == 401
        assert "before the door service started" in response.json()["message"]
        with DoorClient(f"http://{LOOPBACK}:{port}/unlock", secret, timeout=5.0) as client:
            client.unlock()  # a fresh signature works
