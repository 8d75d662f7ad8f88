"""A real `smartlock door` process on MQTT (password file, state on a signed unlock, /health and /status),
the broker killed under it; `up`'s plan passes MQTT to its children by file, never a password."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from smartlock.door.auth import generate_secret
from smartlock.door.client import DoorClient
from smartlock.service import write_secret
from smartlock.web.up_plan import DataLayout, Plan, Ports, UpSettings
from tests.integrations.conftest import Recorder
from tests.support import LOOPBACK, free_port, service_process, wait_for

pytestmark = pytest.mark.slow
STATE = "smartlock/hall/state"


def states(recorder: Recorder) -> list[str]:
    return [json.loads(m.payload)["state"] for m in recorder.on(STATE)]


def test_door_process_publishes_and_survives_the_broker(tmp_path, broker, recorder) -> None:
    secret = generate_secret(tmp_path / "door.secret")
    port = free_port()
    args = ["door", "-p", "11", "--pin-factory", "mock", "--host", LOOPBACK, "--port", str(port),
            "--secret-file", str(tmp_path / "door.secret"), "--events-db", str(tmp_path / "events.sqlite3"),
            "--lock-delay", "0.5", "--mqtt-url", broker.url, "--door-name", "hall"]
    health = f"http://{LOOPBACK}:{port}/health"
    with service_process(args, health, log_path=tmp_path / "door.log"), \
            DoorClient(f"http://{LOOPBACK}:{port}/unlock", secret, timeout=5.0) as client:
        wait_for(lambda: httpx.get(health).json()["mqtt"] == "connected", what="door connected")
        recorder.wait(STATE, what="the first state")
        assert client.status()["mqtt"]["connected"] is True
        client.unlock(person="alice", source="test")
        wait_for(lambda: states(recorder)[-2:] == ["UNLOCKED", "LOCKED"], what="UNLOCKED then LOCKED")
        discovery = json.loads(recorder.wait("homeassistant/lock/smartlock_hall/lock/config").payload)
        assert discovery["state_topic"] == STATE and discovery["command_topic"] == "smartlock/hall/set"

        broker.kill()
        wait_for(lambda: httpx.get(health).json()["mqtt"] == "disconnected", what="the outage seen")
        client.unlock(person="bob", source="test")  # answered 202 (unlock() raises otherwise)
        wait_for(lambda: client.status()["locked"] is True, what="relocked without a broker")
        broker.start()
        wait_for(lambda: httpx.get(health).json()["mqtt"] == "connected", timeout=60, what="reconnected")
        late = Recorder(broker.port)
        try:
            assert json.loads(late.wait(STATE).payload)["state"] == "LOCKED"
        finally:
            late.close()
    text = (tmp_path / "door.log").read_text()
    assert text.count("MQTT: broker") == 1, text  # one line per outage, not one per retry


def test_up_passes_mqtt_to_door_and_engine_by_file(tmp_path: Path) -> None:
    password = tmp_path / "mqtt-password"
    write_secret(password, "hunter2-mqtt")
    code = tmp_path / "mqtt-code"
    write_secret(code, "271828")
    options = UpSettings(mqtt_url="mqtt://ha@192.0.2.1:1884", mqtt_password_file=password,
                         mqtt_allow_unlock=True, mqtt_unlock_code_file=code, mqtt_images=True,
                         door_name="hall", data_dir=tmp_path)
    plan = Plan(options, DataLayout(tmp_path), Ports.pick(), "video.mp4")
    door, engine = plan.door(), plan.vision()
    for argv in (door, engine):
        assert argv[argv.index("--mqtt-url") + 1] == "mqtt://ha@192.0.2.1:1884"
        assert argv[argv.index("--mqtt-password-file") + 1] == str(password.resolve())
        assert argv[argv.index("--door-name") + 1] == "hall"
        assert "hunter2-mqtt" not in " ".join(argv)
    assert "--mqtt-allow-unlock" in door and "--mqtt-images" not in door
    assert door[door.index("--mqtt-unlock-code-file") + 1] == str(code.resolve())
    assert "--mqtt-images" in engine and "--mqtt-allow-unlock" not in engine
    plain = Plan(UpSettings(data_dir=tmp_path), DataLayout(tmp_path), Ports.pick(), "video.mp4")
    assert not [arg for arg in plain.door() + plain.vision() if arg.startswith("--mqtt")]
