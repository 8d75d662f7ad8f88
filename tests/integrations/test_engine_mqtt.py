"""The engine on a real mosquitto: events published, the "face unlock" switch obeyed and kept across
restarts, the unlock frame published only with --mqtt-images."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from smartlock.engine.engine import Engine, LoopSettings
from smartlock.engine.policy import UnlockPolicy
from smartlock.engine.sinks import TeeSink
from smartlock.integrations.engine import EngineMqtt
from smartlock.integrations.settings import MqttSettings
from tests.engine.fakes import (
    ClockStop,
    EndlessFrames,
    FakeDoor,
    ListSink,
    ScriptedRecognizer,
    always,
    api_face,
)
from tests.integrations.conftest import Mosquitto, Recorder
from tests.support import ManualClock, free_port, wait_for

SWITCH = "smartlock/front/face_unlock"
SWITCH_SET = "smartlock/front/face_unlock/set"
EVENT = "smartlock/front/event"
IMAGE = "smartlock/front/image"


@contextlib.contextmanager
def engine_mqtt(broker: Mosquitto, **mqtt: object) -> Iterator[EngineMqtt]:
    bridge = EngineMqtt(MqttSettings(mqtt_url=broker.url, door_name="front", **mqtt)).start()
    try:
        wait_for(lambda: bridge.link.ready, what="the engine connected")
        yield bridge
    finally:
        bridge.close()


def make_engine(bridge: EngineMqtt) -> tuple[Engine, FakeDoor, ListSink, ManualClock]:
    clock = ManualClock()
    door, sink = FakeDoor(), ListSink()
    engine = Engine(EndlessFrames(clock), ScriptedRecognizer([api_face("alice", 0.95)]), door,
                    UnlockPolicy(0.8, 2, 1.5), detector=always(True), events=TeeSink(sink, bridge),
                    settings=LoopSettings(fps=2, max_fps=10, block_time=6), clock=clock,
                    face_unlock=bridge.face_unlock, on_unlock_frame=bridge.unlock_frame)
    return engine, door, sink, clock


def run_frames(engine: Engine, clock: ManualClock, frames: int) -> None:
    stop = ClockStop(clock)
    done = 0
    while done < frames:
        done += engine.step(stop)


def payloads(recorder: Recorder, topic: str) -> list[bytes]:
    return [m.payload for m in recorder.on(topic)]


def test_switch_off_stops_unlocks_and_survives_a_restart(broker, recorder) -> None:
    with engine_mqtt(broker, mqtt_images=True) as bridge:
        recorder.wait(SWITCH, lambda m: m.payload == b"ON", what="the switch published ON (nothing retained)")
        recorder.publish(SWITCH_SET, "OFF")
        recorder.wait(SWITCH, lambda m: m.payload == b"OFF", what="the engine confirming OFF")
        assert bridge.face_unlock() is False
        engine, door, _, clock = make_engine(bridge)
        run_frames(engine, clock, 6)
        assert door.calls == []  # recognised, never unlocked
        assert engine.stats.unlocks_switched_off >= 1
        seen = recorder.wait(EVENT, what="a recognised event")
        event = json.loads(seen.payload)
        assert event["event_type"] == "recognised" and event["person"] == "alice"
        assert event["door"] == "front" and 0.8 <= event["confidence"] <= 1
        assert not recorder.on(IMAGE)

    recorder.clear()
    with engine_mqtt(broker, mqtt_images=True) as bridge:  # a restart: the retained OFF is read back
        wait_for(lambda: bridge._known, what="the switch state read back")
        assert bridge.face_unlock() is False
        late = Recorder(broker.port)
        try:
            assert late.wait(SWITCH).payload == b"OFF"  # the engine did not overwrite it with ON
        finally:
            late.close()
        recorder.publish(SWITCH_SET, "ON")
        wait_for(bridge.face_unlock, what="face unlock back on")
        engine, door, _, clock = make_engine(bridge)
        run_frames(engine, clock, 3)
        assert [label for label, _ in door.opened] == ["alice"]
        unlocked = recorder.wait(EVENT, lambda m: json.loads(m.payload)["event_type"] == "unlocked")
        assert json.loads(unlocked.payload)["person"] == "alice"
        image = recorder.wait(IMAGE, what="the unlock frame")
        assert image.payload[:2] == b"\xff\xd8"  # a JPEG


def test_bad_switch_commands_are_ignored(broker, recorder) -> None:
    with engine_mqtt(broker) as bridge:
        recorder.wait(SWITCH, lambda m: m.payload == b"ON")
        for payload in (b"off please", b"\xff", b"", b"x" * 10_000, b"TOGGLE"):
            recorder.publish(SWITCH_SET, payload)
        recorder.publish(SWITCH_SET, "OFF", retain=True)  # retained: ignored
        recorder.publish(SWITCH_SET, b"ON")  # the sentinel: handled after all of the above
        wait_for(lambda: payloads(recorder, SWITCH).count(b"ON") >= 2, what="the sentinel's echo")
        assert bridge.face_unlock() is True
        assert b"OFF" not in payloads(recorder, SWITCH)
        recorder.publish(SWITCH_SET, b"", retain=True)  # clear the retained command


def test_images_off_by_default(broker, recorder) -> None:
    with engine_mqtt(broker) as bridge:
        recorder.wait(SWITCH)
        engine, door, _, clock = make_engine(bridge)
        run_frames(engine, clock, 3)
        assert door.opened
        recorder.wait(EVENT, lambda m: json.loads(m.payload)["event_type"] == "unlocked")
        assert not recorder.on(IMAGE)
        assert not [m for m in recorder.messages if m.topic.startswith("homeassistant/image/")]


def test_the_switch_is_remembered_on_disk_for_a_restart_while_the_broker_is_down(broker, recorder,
                                                                                tmp_path) -> None:
    state = tmp_path / "face-unlock"
    settings = MqttSettings(mqtt_url=broker.url, door_name="front")
    bridge = EngineMqtt(settings, state_file=state).start()
    try:
        recorder.wait(SWITCH, lambda m: m.payload == b"ON", what="the switch published ON")
        recorder.publish(SWITCH_SET, "OFF")
        wait_for(lambda: state.exists() and state.read_text().strip() == "OFF", what="OFF saved on disk")
        assert oct(state.stat().st_mode & 0o777) == "0o600"
    finally:
        bridge.close()
    nobody = MqttSettings(mqtt_url=f"mqtt://127.0.0.1:{free_port()}", door_name="front")  # no broker there
    restarted = EngineMqtt(nobody, state_file=state).start()
    try:
        assert restarted.face_unlock() is False  # at once: no broker needed to stay shut
    finally:
        restarted.close()
    state.write_text("garbled\n")
    assert EngineMqtt(nobody, state_file=state).face_unlock() is False  # unreadable state: shut
    state.unlink()
    assert EngineMqtt(nobody, state_file=state).face_unlock() is True  # first start: as without MQTT
