"""The door on a real mosquitto: state on a real signed unlock, LOCK, refused/retained/malformed commands,
the broker killed and restarted while the door keeps unlocking."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from smartlock.integrations.door import DoorMqtt
from smartlock.integrations.settings import MqttSettings
from smartlock.service import write_secret
from tests.door.helpers import DoorServer, door_server, levels
from tests.integrations.conftest import Mosquitto, Recorder
from tests.support import ManualClock, wait_for

STATE = "smartlock/front/state"
COMMAND = "smartlock/front/set"


CODE = "471108"


def code_file(tmp_path: Path, code: str = CODE) -> Path:
    path = tmp_path / "mqtt-code"
    write_secret(path, code)
    return path


@contextlib.contextmanager
def mqtt_door(tmp_path: Path, broker: Mosquitto, lock_delay: float = 0.3, clock: ManualClock | None = None,
              **mqtt: object) -> Iterator[tuple[DoorServer, DoorMqtt]]:
    if mqtt.get("mqtt_allow_unlock") and "mqtt_unlock_code_file" not in mqtt:
        mqtt["mqtt_unlock_code_file"] = code_file(tmp_path)
    with door_server(tmp_path, lock_delay=lock_delay) as door:
        door.pin.clear_states()  # the pin's history from here: a test sees any move MQTT caused
        bridge = DoorMqtt(door.app.state.service,
                          MqttSettings(mqtt_url=broker.url, door_name="front", **mqtt),
                          clock=clock or ManualClock()).start()
        try:
            wait_for(lambda: bridge.link.ready, what="the door connected to the broker")
            yield door, bridge
        finally:
            bridge.stop()


def states(recorder: Recorder) -> list[str]:
    return [json.loads(m.payload)["state"] for m in recorder.on(STATE)]


def audit(door: DoorServer, action: str, outcome: str) -> list[dict]:
    return [e for e in door.events.page(limit=100) if e["action"] == action and e["outcome"] == outcome]


def send_sentinel_lock(door: DoorServer, recorder: Recorder) -> None:
    """Publish a LOCK after the messages under test and wait until the door audited it: messages on one
    topic arrive in order, so everything before it has been handled (the clock of the bridge must leave
    the command bucket a token)."""
    before = len(audit(door, "lock", "accepted"))
    recorder.publish(COMMAND, "LOCK")
    wait_for(lambda: len(audit(door, "lock", "accepted")) > before, what="the sentinel LOCK")


def send_and_wait(bridge: DoorMqtt, recorder: Recorder, payloads: list[str | bytes],
                  topic: str = COMMAND) -> None:
    """Publish ``payloads`` then a sentinel LOCK on the command topic, and wait until the bridge has seen
    all of them (handled counts dropped and refused commands too): nothing is left in flight."""
    target = bridge.handled + len(payloads) + (1 if topic == COMMAND else 0) + 1
    for payload in payloads:
        recorder.publish(topic, payload)
    if topic != COMMAND:
        target -= 1
    recorder.publish(COMMAND, "LOCK")
    wait_for(lambda: bridge.handled >= target, what="the sentinel command handled")


def test_signed_unlock_publishes_locked_unlocked_locked(tmp_path, broker, recorder) -> None:
    with mqtt_door(tmp_path, broker) as (door, _):
        recorder.wait(STATE, what="the retained state")
        assert states(recorder)[-1] == "LOCKED"
        recorder.clear()
        door.pin.clear_states()
        assert door.signed("POST", "/unlock", b'{"person": "alice"}').status_code == 202
        wait_for(lambda: states(recorder)[-2:] == ["UNLOCKED", "LOCKED"], what="UNLOCKED then LOCKED")
        assert levels(door.pin)[-1] is True


def test_state_is_retained(tmp_path, broker, recorder) -> None:
    with mqtt_door(tmp_path, broker):
        recorder.wait(STATE)
        late = Recorder(broker.port)  # a subscriber that comes later gets the retained state at once
        try:
            seen = late.wait(STATE)
            assert seen.retain and json.loads(seen.payload)["state"] == "LOCKED"
        finally:
            late.close()


def test_lock_command_locks(tmp_path, broker, recorder) -> None:
    with mqtt_door(tmp_path, broker, lock_delay=60) as (door, _):
        assert door.signed("POST", "/unlock").status_code == 202
        recorder.wait(STATE, lambda m: json.loads(m.payload)["state"] == "UNLOCKED")
        recorder.publish(COMMAND, "LOCK")
        wait_for(lambda: door.relay.locked, what="the relay locked by MQTT")
        wait_for(lambda: states(recorder)[-2:] == ["UNLOCKED", "LOCKED"], what="LOCKED after UNLOCKED")
        rows = audit(door, "lock", "accepted")
        assert rows and rows[0]["source"] == "mqtt"


def test_unlock_refused_unless_allowed(tmp_path, broker, recorder) -> None:
    with mqtt_door(tmp_path, broker) as (door, bridge):
        door.pin.clear_states()
        for payload in ("UNLOCK", "OPEN", '{"action": "UNLOCK"}'):
            recorder.publish(COMMAND, payload)
        send_sentinel_lock(door, recorder)
        assert levels(door.pin) in ([], [True]), door.pin.states  # never unlocked
        refused = audit(door, "unlock", "refused")  # the first audited, the other two folded
        assert [row["reason"] for row in refused] == ["MQTT unlock not allowed"]
        assert bridge.refused == 3
        assert not audit(door, "unlock", "accepted")
        bridge.flush_refusals(force=True)
        assert audit(door, "unlock", "refused")[0]["reason"] == "2 more MQTT unlock(s) refused"


def test_allowed_unlock_with_code(tmp_path, broker, recorder) -> None:
    with mqtt_door(tmp_path, broker, mqtt_allow_unlock=True) as (door, _):
        door.pin.clear_states()
        recorder.publish(COMMAND, "UNLOCK")  # no code
        recorder.publish(COMMAND, '{"action": "UNLOCK", "code": "123456"}')
        send_sentinel_lock(door, recorder)
        assert False not in levels(door.pin)
        assert len(audit(door, "unlock", "refused")) == 1  # the second folded
        recorder.publish(COMMAND, f'{{"action": "UNLOCK", "code": "{CODE}"}}')
        wait_for(lambda: audit(door, "unlock", "accepted"), what="the coded unlock")
        assert False in levels(door.pin)
        assert audit(door, "unlock", "accepted")[0]["source"] == "mqtt"
        wait_for(lambda: door.relay.locked, what="relock")


def test_retained_unlock_ignored(tmp_path, broker, recorder) -> None:
    recorder.publish(COMMAND, "UNLOCK", retain=True)  # waiting on the broker before the door connects
    with mqtt_door(tmp_path, broker, mqtt_allow_unlock=True) as (door, _):
        send_sentinel_lock(door, recorder)
        assert False not in levels(door.pin)
        assert not audit(door, "unlock", "pending") and not audit(door, "unlock", "accepted")


def test_malformed_payloads_ignored(tmp_path, broker, recorder) -> None:
    clock = ManualClock()
    with mqtt_door(tmp_path, broker, mqtt_allow_unlock=True, clock=clock) as (door, _):
        door.pin.clear_states()
        bad = [b"unlock", b"UNLOCK ME", b"\xff\xfe", b"{", b"[]", b'{"action": "UNLOCK", "extra": 1}',
               b'{"action": 1}', b'{"action": "UNLOCK", "code": 5}', b"UNLOCK" + b" " * 300,
               b"x" * 100_000, b"REBOOT", b""]
        for payload in bad:
            recorder.publish(COMMAND, payload)
        recorder.publish("smartlock/front/set/extra", "UNLOCK")
        recorder.publish("smartlock/other/set", "UNLOCK")
        clock.advance(60)  # the bucket full again: the sentinel passes
        send_sentinel_lock(door, recorder)
        assert False not in levels(door.pin)
        assert not audit(door, "unlock", "accepted")


def test_broker_down_never_blocks_and_state_comes_back(tmp_path, broker, recorder) -> None:
    with mqtt_door(tmp_path, broker) as (door, bridge):
        recorder.wait(STATE)
        recorder.close()
        broker.kill()
        wait_for(lambda: not bridge.link.connected, what="the door noticing the outage")
        door.pin.clear_states()
        answer = door.signed("POST", "/unlock", b'{"person": "bob"}')  # the broker is down
        assert answer.status_code == 202
        wait_for(lambda: levels(door.pin)[-2:] == [False, True], what="unlock and relock without a broker")
        assert bridge.link.status()["connected"] is False
        broker.start()  # same port, no persistence: everything retained is gone
        wait_for(lambda: bridge.link.connected, timeout=60, what="reconnection")
        late = Recorder(broker.port)
        try:
            seen = late.wait(STATE, what="the state republished after the reconnection")
            assert json.loads(seen.payload)["state"] == "LOCKED" and seen.retain
            late.wait("homeassistant/lock/smartlock_front/lock/config", what="discovery republished")
            assert late.wait("smartlock/front/door/availability").payload == b"online"
        finally:
            late.close()
