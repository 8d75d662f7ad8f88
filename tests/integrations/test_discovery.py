"""Home Assistant discovery: what HA's MQTT lock, event, switch and image platforms require, retained on a
real broker, and re-sent when homeassistant/status says online."""

from __future__ import annotations

import json

import pytest

from smartlock.integrations.discovery import engine_configs, lock_config
from smartlock.integrations.settings import MqttSettings, parse_mqtt_url
from tests.integrations.test_door_mqtt import mqtt_door
from tests.integrations.test_engine_mqtt import engine_mqtt

# HA's schemas: required keys per platform (homeassistant/components/mqtt/<platform>.py)
REQUIRED = {"lock": {"command_topic"}, "event": {"state_topic", "event_types"},
            "switch": {"command_topic"}, "image": {"image_topic"}}
TOPIC_KEYS = ("command_topic", "state_topic", "image_topic", "availability_topic")


def check(topic: str, config: dict) -> str:
    parts = topic.split("/")
    assert parts[0] == "homeassistant" and parts[-1] == "config" and len(parts) == 5, topic
    component = parts[1]
    assert REQUIRED[component] <= set(config), (component, config)
    for key in TOPIC_KEYS:
        if key in config:
            assert config[key] and "#" not in config[key] and "+" not in config[key]
    assert config["unique_id"].startswith("smartlock_front_")
    assert config["device"]["identifiers"] == ["smartlock_front"]
    assert config["device"]["name"] == "smartlock front"
    json.dumps(config)  # serialisable
    return component


def test_payloads_meet_home_assistant_requirements() -> None:
    configs = [lock_config("front", allow_unlock=True, with_code=True),
               *engine_configs("front", images=True)]
    components = [check(topic, config) for topic, config in configs]
    assert sorted(components) == ["event", "image", "lock", "switch"]
    assert len({config["unique_id"] for _, config in configs}) == 4
    lock = configs[0][1]
    assert lock["payload_open"] == "OPEN" and "code_format" in lock
    assert "{{ code | tojson }}" in lock["command_template"]
    assert lock["state_locked"] == "LOCKED" and lock["state_jammed"] == "JAMMED"
    event = configs[1][1]
    assert event["event_types"] == ["unlocked", "recognised", "refused_unknown"]
    plain = lock_config("front", allow_unlock=False, with_code=False)[1]
    assert "payload_open" not in plain and "code_format" not in plain
    assert [c for c in engine_configs("front", images=False) if "image_topic" in c[1]] == []


def test_discovery_retained_and_resent_on_ha_online(tmp_path, broker, recorder) -> None:
    with mqtt_door(tmp_path, broker), engine_mqtt(broker):
        lock_topic = "homeassistant/lock/smartlock_front/lock/config"
        switch_topic = "homeassistant/switch/smartlock_front/face_unlock/config"
        for topic in (lock_topic, switch_topic, "homeassistant/event/smartlock_front/face/config"):
            check(topic, json.loads(recorder.wait(topic).payload))
        recorder.clear()
        recorder.publish("homeassistant/status", "online")
        recorder.wait(lock_topic, lambda m: not m.retain, what="discovery sent again")
        recorder.wait(switch_topic, lambda m: not m.retain, what="engine discovery sent again")


@pytest.mark.parametrize("url", ["http://h", "mqtt://u:secret@h", "mqtt://", "mqtt://h/path", "mqtt://h:99999"])
def test_bad_urls_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_mqtt_url(url)


def test_settings_consistency() -> None:
    from smartlock.errors import ConfigError

    assert parse_mqtt_url("mqtts://ha@broker").port == 8883
    with pytest.raises(ConfigError):
        MqttSettings.validated(mqtt_url="mqtt://h", mqtt_ca_file="ca.pem")
    with pytest.raises(ConfigError):
        MqttSettings.validated(mqtt_url="mqtt://h", mqtt_password_file="pw")
    with pytest.raises(ConfigError):
        MqttSettings.validated(door_name="front/door")
