"""Attacks on the MQTT integration, on a real mosquitto: each publishes what an attacker with publish rights
would, then a sentinel, waits until the bridge has handled everything, and checks that the relay never
moved and the audit stayed bounded. Time is a ManualClock: nothing sleeps to prove that nothing happened."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from smartlock.errors import ConfigError
from smartlock.integrations import door as door_module
from smartlock.integrations.discovery import lock_config
from smartlock.integrations.door import DoorMqtt, parse_command
from smartlock.integrations.engine import EngineMqtt
from smartlock.integrations.mqtt import MAX_PACKET, MAX_PAYLOAD, MAX_QUEUE
from smartlock.integrations.settings import MqttSettings
from tests.door.helpers import DoorServer, levels
from tests.integrations.conftest import Recorder
from tests.integrations.test_door_mqtt import CODE, COMMAND, audit, code_file, mqtt_door
from tests.support import ManualClock, wait_for

LOCK_CONFIG = "homeassistant/lock/smartlock_front/lock/config"


def flood(recorder: Recorder, payloads: list[str | bytes], topic: str = COMMAND) -> None:
    """Publish all (QoS 1, in order) and wait until the broker has taken the last one."""
    info = None
    for payload in payloads:
        info = recorder.client.publish(topic, payload, qos=1)
    if info is not None:
        info.wait_for_publish(30)


def attack(bridge: DoorMqtt, recorder: Recorder, payloads: list[str | bytes], topic: str = COMMAND) -> None:
    """Publish ``payloads`` on ``topic``, then a LOCK on the command topic, and wait until the bridge has
    handled that LOCK (``handled`` counts dropped and refused commands too): messages from one client
    arrive in order, so everything before it has been handled. Only payloads of at most MAX_PAYLOAD bytes
    on the command topic count."""
    counted = sum(1 for p in payloads if len(p) <= MAX_PAYLOAD) if topic == COMMAND else 0
    target = bridge.handled + counted + 1
    flood(recorder, payloads, topic)
    recorder.publish(COMMAND, "LOCK")
    wait_for(lambda: bridge.handled >= target, what="the sentinel LOCK handled")


def mqtt_rows(door: DoorServer) -> list[dict]:
    return [row for row in door.events.page(limit=1000) if row["source"] == "mqtt"]


def wrong(code: str = "000000") -> str:
    return json.dumps({"action": "UNLOCK", "code": code})


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# -- 1. brute force ------------------------------------------------------------------------------------


def test_wrong_codes_lock_mqtt_unlocks_out_doubling(tmp_path, broker, recorder, caplog) -> None:
    caplog.set_level(logging.INFO)
    clock = ManualClock()
    with mqtt_door(tmp_path, broker, clock=clock, mqtt_allow_unlock=True) as (door, bridge):
        door.pin.clear_states()
        guesses = [wrong(f"{n:06d}") for n in range(5)] + [wrong(CODE)]  # 5 wrong, then the right one
        attack(bridge, recorder, guesses)
        assert False not in levels(door.pin), door.pin.states  # the right code came too late
        assert not audit(door, "unlock", "accepted") and not audit(door, "unlock", "pending")
        assert bridge.lockout.seconds_left() == 60
        assert audit(door, "lock", "accepted")  # LOCK still works while locked out
        reasons = [row["reason"] for row in audit(door, "unlock", "refused")]
        assert reasons == ["MQTT unlocks locked out for 60 s after 5 wrong codes", "wrong code"]
        assert len(messages(caplog, "wrong unlock codes within")) == 1

        clock.advance(61)  # the lockout is over: the right code opens
        recorder.publish(COMMAND, wrong(CODE))
        wait_for(lambda: audit(door, "unlock", "accepted"), what="the unlock after the lockout")
        wait_for(lambda: door.relay.locked, what="relock")
        assert "5 more MQTT unlock(s) refused" in [row["reason"] for row in audit(door, "unlock", "refused")]

        guesses = [wrong(f"{n:06d}") for n in range(5)]  # guessing again: twice as long
        attack(bridge, recorder, guesses)
        assert bridge.lockout.seconds_left() == 120
        assert len(messages(caplog, "wrong unlock codes within")) == 2
        assert len(audit(door, "unlock", "accepted")) == 1


def test_short_code_and_unlock_without_code_refused(tmp_path, broker) -> None:
    with pytest.raises(ConfigError, match="--mqtt-unlock-code-file"):
        MqttSettings.validated(mqtt_url=broker.url, mqtt_allow_unlock=True)
    settings = MqttSettings(mqtt_url=broker.url, mqtt_allow_unlock=True,
                            mqtt_unlock_code_file=code_file(tmp_path, "4711x"))
    with pytest.raises(ConfigError, match="at least 6"):
        DoorMqtt(None, settings)  # type: ignore[arg-type]  # refused before the service is used


# -- 2. unlocks in clear text --------------------------------------------------------------------------


def test_plain_mqtt_with_unlocks_warns(tmp_path, broker, caplog) -> None:
    caplog.set_level(logging.WARNING)
    with mqtt_door(tmp_path, broker, mqtt_allow_unlock=True):
        pass
    assert len(messages(caplog, "travels in clear text")) == 1
    caplog.clear()
    with mqtt_door(tmp_path, broker):
        pass
    assert not messages(caplog, "travels in clear text")


# -- 3. audit flood ------------------------------------------------------------------------------------


def test_command_flood_cannot_erase_the_audit(tmp_path, broker, recorder, caplog) -> None:
    caplog.set_level(logging.INFO)
    clock = ManualClock()
    with mqtt_door(tmp_path, broker, clock=clock, lock_delay=60) as (door, bridge):
        door.pin.clear_states()
        attack(bridge, recorder, ["UNLOCK"] * 300)  # the sentinel LOCK dropped too: bucket empty
        assert levels(door.pin) in ([], [True]), door.pin.states
        assert bridge.bucket.dropped == 301 - door_module.COMMAND_RATE
        assert len(mqtt_rows(door)) == 1  # the first refusal; the other 9 that passed are folded
        assert len(messages(caplog, "command flood on")) == 1

        # a LOCK while the door is open always passes, even with the bucket empty
        assert door.signed("POST", "/unlock").status_code == 202
        wait_for(lambda: not door.relay.locked, what="the HTTP unlock")
        recorder.publish(COMMAND, "LOCK")
        wait_for(lambda: door.relay.locked, what="the MQTT LOCK during the flood")

        clock.advance(door_module.FOLD_WINDOW)  # the flood is over: the next command passes and is folded
        recorder.publish(COMMAND, "UNLOCK")
        wait_for(lambda: len(audit(door, "unlock", "refused")) == 3, what="the folded refusals audited")
        reasons = [row["reason"] for row in audit(door, "unlock", "refused")]
        assert reasons == ["MQTT unlock not allowed", "9 more MQTT unlock(s) refused",
                           "MQTT unlock not allowed"]
        assert messages(caplog, "command flood over: 291 command(s) dropped")
        assert len(mqtt_rows(door)) == 4  # 3 refusals + the LOCK, for 303 messages


# -- 4. huge payloads ----------------------------------------------------------------------------------


def test_huge_payloads_never_reach_the_door(tmp_path, broker, recorder) -> None:
    clock = ManualClock()
    with mqtt_door(tmp_path, broker, clock=clock, mqtt_allow_unlock=True) as (door, bridge):
        recorder.wait(LOCK_CONFIG)
        recorder.clear()
        door.pin.clear_states()
        assert bridge.link._client.max_queued_messages == MAX_QUEUE
        flood(recorder, [b"online" + b" " * 1_000_000, b"online" + b" " * 1000], topic="homeassistant/status")
        # the first dropped by the broker (more than MAX_PACKET), the second delivered, ignored for its size
        attack(bridge, recorder, [b"UNLOCK" + b" " * 1_000_000, b"UNLOCK" + b" " * (MAX_PACKET // 2)])
        assert bridge.link.oversized == 1  # the mid-sized one; the broker never sent the 1 MB one
        assert bridge.handled == 1  # only the sentinel reached the command handler
        assert False not in levels(door.pin)
        assert bridge.link.ha_online_announced == 0  # neither padded "online" re-announced
        assert bridge.link.connected


# -- 5. the code in logs and in HA's template ----------------------------------------------------------


def test_malformed_command_logs_no_code(tmp_path, broker, recorder, caplog) -> None:
    caplog.set_level(logging.INFO)
    with mqtt_door(tmp_path, broker, mqtt_allow_unlock=True) as (_, bridge):
        bad = json.dumps({"action": "UNLOCK", "code": CODE, "typo": 1})
        attack(bridge, recorder, [bad])
        assert messages(caplog, f"malformed {len(bad)}-byte command")
        assert CODE not in caplog.text


def test_command_template_escapes_the_code() -> None:
    template = lock_config("front", allow_unlock=True, with_code=True)[1]["command_template"]
    for code in ('12"34\\56', '123456", "action": "OPEN', "äöü123"):
        rendered = (template.replace("{{ value | tojson }}", json.dumps("UNLOCK"))
                    .replace("{{ code | tojson }}", json.dumps(code)))  # what HA's tojson filter does
        assert parse_command(rendered.encode()) == ("UNLOCK", code)


# -- 6. HA status storms -------------------------------------------------------------------------------


def test_ha_online_storm_announces_once(tmp_path, broker, recorder) -> None:
    clock = ManualClock()
    with mqtt_door(tmp_path, broker, clock=clock) as (_, bridge):
        recorder.wait(LOCK_CONFIG)
        recorder.clear()
        attack(bridge, recorder, ["online"] * 50, topic="homeassistant/status")
        assert (bridge.link.ha_online_announced, bridge.link.ha_online_ignored) == (1, 49)
        recorder.wait(LOCK_CONFIG, lambda m: not m.retain, what="one re-announcement")
        clock.advance(10)
        recorder.publish("homeassistant/status", "online")
        wait_for(lambda: len([m for m in recorder.on(LOCK_CONFIG) if not m.retain]) == 2,
                 what="the next re-announcement 10 s later")


# -- 7. door names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "hint"), [("Front", "'front'"), ("front-door", "'front_door'")])
def test_door_names_that_could_collide_are_refused(name: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=hint):
        MqttSettings.validated(door_name=name)


# -- the engine's switch -------------------------------------------------------------------------------


def test_switch_flood_dropped_but_off_always_passes(tmp_path: Path, broker, recorder) -> None:
    clock = ManualClock()
    bridge = EngineMqtt(MqttSettings(mqtt_url=broker.url, door_name="front"), clock=clock).start()
    try:
        wait_for(lambda: bridge.link.ready, what="the engine connected")
        wait_for(lambda: recorder.on("smartlock/front/face_unlock"), what="the switch state")
        flood(recorder, ["ON"] * 100, topic="smartlock/front/face_unlock/set")
        wait_for(lambda: bridge.bucket.dropped == 90, what="the flood dropped")
        assert bridge.face_unlock()
        recorder.publish("smartlock/front/face_unlock/set", "OFF")  # the bucket is empty
        wait_for(lambda: not bridge.face_unlock(), what="OFF during the flood")
        assert bridge.bucket.dropped == 90
    finally:
        bridge.close()
