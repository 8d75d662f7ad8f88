"""`smartlock up --mqtt-url` as real processes: a video of an enrolled person unlocks the door and the
broker sees discovery, the events and LOCKED -> UNLOCKED -> LOCKED; the switch off stops the unlocks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integrations.conftest import Recorder
from tests.support import LOOPBACK, free_port, stop_process, wait_for, wait_until_up
from tests.web.media import person_video

PERSON = "Ahmed_Chalabi"  # photos 1-3 enrol, photo 4 on the video is recognised (see tests/web/test_browser)
PASSWORD = "front door 2024!"
USERNAME = "admin"  # --password-file sets the password of the admin account "admin"
EVENT, STATE, SWITCH = "smartlock/front/event", "smartlock/front/state", "smartlock/front/face_unlock"


def events(recorder: Recorder, kind: str) -> list[dict]:
    found = [json.loads(m.payload) for m in recorder.on(EVENT)]
    return [e for e in found if e["event_type"] == kind]


def states(recorder: Recorder) -> list[str]:
    return [json.loads(m.payload)["state"] for m in recorder.on(STATE)]


@pytest.mark.slow
@pytest.mark.faces
@pytest.mark.timeout(400)
def test_up_real_unlock_on_the_broker(tmp_path: Path, broker, recorder, faces_dir: Path) -> None:
    photos = faces_dir / "people" / PERSON
    video = person_video(photos / f"{PERSON}_0004.jpg", tmp_path / "person.mp4", seconds=4)
    password = tmp_path / "password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    port = free_port()
    log_path = tmp_path / "up.log"
    transcript = tmp_path / "mosquitto_sub.txt"
    sub = None
    if shutil.which("mosquitto_sub"):
        with open(transcript, "wb") as out:
            sub = subprocess.Popen(["mosquitto_sub", "-h", LOOPBACK, "-p", str(broker.port), "-v", "-t", "#"],
                                   stdout=out, stderr=subprocess.STDOUT)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "smartlock", "up", "--camera", str(video), "--data-dir",
             str(tmp_path / "data"), "--port", str(port), "--password-file", str(password),
             "--lock-delay", "2", "--no-collector", "--mqtt-url", broker.url, "--door-name", "front",
             "--liveness", "off"],  # the video shows a photo: liveness would rightly refuse it
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://{LOOPBACK}:{port}"
    try:
        wait_until_up(f"{base}/api/auth/state", timeout=60, process=process)
        client = httpx.Client(base_url=base, headers={"X-Smartlock-Request": "1"}, timeout=60)
        assert client.post("/api/auth/login", json={"username": USERNAME, "password": PASSWORD}
                       ).status_code == 200
        wait_for(lambda: all(c["state"] == "running" for c in client.get("/api/system").json()["children"]),
                 timeout=120, interval=0.5, what="every part running")
        wait_for(lambda: client.get("/api/system").json()["mqtt"] == "connected", timeout=30,
                 what="the dashboard's health line showing MQTT connected")
        recorder.wait(SWITCH, lambda m: m.payload == b"ON", what="the switch on")
        assert json.loads(recorder.wait(STATE).payload)["state"] == "LOCKED"

        files = [("photos", (p.name, p.read_bytes(), "image/jpeg"))
                 for p in sorted(photos.glob("*.jpg"))[:3]]
        enrolled = client.post("/api/people/enroll", data={"name": PERSON}, files=files)
        assert enrolled.is_success, enrolled.text

        wait_for(lambda: events(recorder, "unlocked"), timeout=120, interval=0.2, what="an unlock")
        wait_for(lambda: "UNLOCKED" in states(recorder) and states(recorder)[-1] == "LOCKED", timeout=30,
                 what="UNLOCKED then LOCKED")
        unlocked = events(recorder, "unlocked")[0]
        assert unlocked["person"] == PERSON and unlocked["door"] == "front"
        assert any(e["person"] == PERSON for e in events(recorder, "recognised"))
        assert not recorder.on("smartlock/front/image")  # --mqtt-images is off

        # the switch off: recognised and reported, never unlocked
        recorder.publish("smartlock/front/face_unlock/set", "OFF")
        recorder.wait(SWITCH, lambda m: m.payload == b"OFF", what="the engine confirming OFF")
        unlocks, opened = len(events(recorder, "unlocked")), states(recorder).count("UNLOCKED")
        seen = len(events(recorder, "recognised"))
        wait_for(lambda: len(events(recorder, "recognised")) >= seen + 4, timeout=120, interval=0.2,
                 what="four more recognitions with face unlock off")
        assert len(events(recorder, "unlocked")) == unlocks
        assert states(recorder).count("UNLOCKED") == opened
    except BaseException:
        print(log_path.read_text()[-6000:])
        raise
    finally:
        stop_process(process, timeout=60)
        if sub is not None:
            stop_process(sub)
            print(transcript.read_text(errors="replace")[:20000])
