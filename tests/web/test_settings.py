"""The Settings page's settings: validation per field, persistence (0600, atomic, the command line winning at
start), which parts each change restarts, a failed restart leaving everything as it was; over HTTP too."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from smartlock.web.settings import (
    MIN_UNLOCK_CODE,
    RESTARTS,
    ApplyFailed,
    SettingsError,
    SettingsStore,
    SystemSettings,
)
from smartlock.web.supervisor import ApplyResult
from smartlock.web.up_plan import DataLayout, Plan, Ports, UpSettings, camera_source
from smartlock.web.up_settings import (
    Applier,
    command_line_fields,
    options_for,
    secret_files,
    split_user,
    start_settings,
    tuning,
)
from tests.support import LOOPBACK, free_port, stop_process, wait_for, wait_until_up
from tests.web.conftest import System


class FakeSupervisor:
    """Runs nothing: remembers each child's command line and which restarts were asked for."""

    def __init__(self, commands: dict[str, list[str]]) -> None:
        self.running = {name: list(argv) for name, argv in commands.items()}
        self.applied: list[list[str]] = []
        self.fail: str | None = None

    def argv(self, name: str) -> list[str]:
        return list(self.running[name])

    def apply(self, changes: list[tuple[str, list[str]]]) -> ApplyResult:
        names = [name for name, _ in changes]
        self.applied.append(names)
        if self.fail is not None:
            return ApplyResult(ok=False, restarted=names, failed=self.fail, reason="exited with code 2")
        for name, argv in changes:
            self.running[name] = list(argv)
        return ApplyResult(ok=True, restarted=names)


class Rig:
    def __init__(self, tmp_path: Path, options: UpSettings | None = None) -> None:
        self.layout = DataLayout(tmp_path / "data")
        self.layout.prepare()
        self.video = tmp_path / "clip.mp4"
        self.video.write_bytes(b"not really a video")
        self.options = options or UpSettings(camera=str(self.video))
        self.store = SettingsStore(self.layout.web / "settings.json", secrets_dir=self.layout.secrets)
        given = command_line_fields(self.options)
        current, flags, files = start_settings(self.store.saved, self.options, given)
        self.store.start_with(current, flags)
        effective = options_for(self.options, current, secret_files(current, files, self.store))
        plan = Plan(effective, self.layout, Ports(door=1001, recognition=1002, camera=1003),
                    camera_source(effective.camera))
        self.supervisor = FakeSupervisor(plan.commands(tuning(current)))
        self.locks: list[int] = []
        self.live: list[int] = []
        self.store.applier = Applier(plan, self.options, self.supervisor, self.store,  # type: ignore[arg-type]
                                     files, lambda: self.locks.append(1),
                                     lambda s: self.live.append(s.timeline_max_events))

    def argv_text(self) -> str:
        return " ".join(" ".join(argv) for argv in self.supervisor.running.values())


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def expected(names: list[str], collector: bool = True) -> list[str]:
    parts = {part for name in names for part in RESTARTS[name]}
    order = ["door", "vision", "dashboard"]
    return [p for p in order if p in parts]


def test_each_setting_restarts_only_the_parts_it_concerns(rig: Rig, tmp_path: Path) -> None:
    other = tmp_path / "frames"
    other.mkdir()
    steps: list[dict] = [
        {"lock_delay": 7.5}, {"threshold": 0.9}, {"keep_days": 5}, {"keep_unlocks": 50},
        {"timeline_max_events": 500}, {"camera": str(other)},
        {"mqtt_url": "mqtt://127.0.0.1:1883"}, {"mqtt_user": "ha", "mqtt_password": "pw-secret-1"},
        {"mqtt_images": True}, {"mqtt_allow_unlock": True, "mqtt_unlock_code": "123456-code"},
        {"door_name": "front_door"}, {"mqtt_password": "pw-secret-2"},  # the same command lines, a new file
        {"mqtt_unlock_code": "654321-code"}, {"liveness": False}, {"liveness_still_frame": False},
    ]
    for changes in steps:
        change = rig.store.change(changes)
        assert change.restarted == expected(list(changes)), changes
        assert rig.supervisor.applied[-1] == [p for p in change.restarted if p != "dashboard"]
    assert rig.live == [500]
    door = rig.supervisor.running["door"]
    assert door[door.index("--lock-delay") + 1] == "7.5"
    assert door[door.index("--mqtt-url") + 1] == "mqtt://ha@127.0.0.1:1883"
    vision = rig.supervisor.running["vision"]  # camera, recognition and engine in one process
    assert vision[vision.index("--threshold") + 1] == "0.9" and vision[vision.index("--keep-days") + 1] == "5"
    assert vision[vision.index("--collect-max-confidence") + 1] == "0.9"
    assert vision[vision.index("--source") + 1] == str(other)
    assert vision[vision.index("--liveness") + 1] == "off"  # the page turned it off: photos open the door
    assert vision[vision.index("--liveness-still-frame") + 1] == "off"
    # the secrets: in 0600 files named by path, never on a command line, never in the settings
    for name, value in (("mqtt-password", "pw-secret-2"), ("mqtt-unlock-code", "654321-code")):
        path = rig.layout.secrets / name
        assert path.read_text().strip() == value and stat.S_IMODE(path.stat().st_mode) == 0o600
        assert str(path) in rig.argv_text()
    saved = rig.store.path.read_text()
    for secret in ("pw-secret-1", "pw-secret-2", "123456-code", "654321-code"):
        assert secret not in rig.argv_text() and secret not in saved
    assert stat.S_IMODE(rig.store.path.stat().st_mode) == 0o600
    # nothing changed: nothing restarted
    before = len(rig.supervisor.applied)
    assert rig.store.change({"lock_delay": 7.5}).restarted == []
    assert len(rig.supervisor.applied) == before


def test_without_the_collector_the_threshold_restarts_the_engine_only(tmp_path: Path) -> None:
    rig = Rig(tmp_path, UpSettings(camera=str(tmp_path), collect=False))
    assert rig.store.change({"threshold": 0.7}).restarted == ["vision"]
    assert "--collect-dir" not in rig.supervisor.running["vision"]


BAD = [
    ({"lock_delay": 0}, "lock_delay"), ({"lock_delay": 601}, "lock_delay"),
    ({"lock_delay": "5"}, "lock_delay"),
    ({"lock_delay": True}, "lock_delay"), ({"lock_delay": None}, "lock_delay"),
    ({"threshold": 1.0}, "threshold"), ({"threshold": 0}, "threshold"), ({"threshold": "high"}, "threshold"),
    ({"keep_days": -1}, "keep_days"), ({"keep_unlocks": 0}, "keep_unlocks"),
    ({"keep_unlocks": 2.5}, "keep_unlocks"),
    ({"timeline_max_events": 10}, "timeline_max_events"),
    ({"camera": "/no/such/clip.mp4"}, "camera"), ({"camera": "rtsp://user:pw@cam/live"}, "camera"),
    ({"camera": "http://cam/video.cgi?user=a&pwd=secret"}, "camera"),
    ({"camera": "http://cam/s?token=t"}, "camera"),
    ({"camera": "ftp://cam/x"}, "camera"), ({"camera": "relative/clip.mp4"}, "camera"),
    ({"camera": "99"}, "camera"),
    ({"camera": "/dev/video63"}, "camera"), ({"camera": "/" + "x" * 300}, "camera"),
    ({"camera": "a\nb"}, "camera"), ({"camera": 0}, "camera"),
    ({"mqtt_url": "http://broker"}, "mqtt_url"), ({"mqtt_url": "mqtt://ha@broker"}, "mqtt_url"),
    ({"mqtt_url": "mqtt://broker:99999"}, "mqtt_url"), ({"mqtt_user": "a b"}, "mqtt_user"),
    ({"mqtt_user": "ha"}, "mqtt_url"), ({"mqtt_unlock_code": "123"}, "mqtt_unlock_code"),
    ({"mqtt_allow_unlock": True}, "mqtt_unlock_code"), ({"door_name": "Front Door"}, "door_name"),
    ({"mqtt_url": "mqtt://broker", "mqtt_password": "secret-pw"}, "mqtt_user"),
    ({"mqtt_password": " padded"}, "mqtt_password"), ({"mqtt_password": 5}, "mqtt_password"),
    ({"mqtt_password": "x" * 1025}, "mqtt_password"), ({"mqtt_images": "yes"}, "mqtt_images"),
    ({"bogus": 1}, "bogus"), ({"mqtt_password_set": True}, "mqtt_password_set"),
]


@pytest.mark.parametrize(("changes", "field"), BAD)
def test_a_bad_value_names_its_field_and_changes_nothing(rig: Rig, changes: dict, field: str) -> None:
    before = rig.store.current
    with pytest.raises(SettingsError) as err:
        rig.store.change(changes)
    assert err.value.field == field and err.value.status == 400 and str(err.value)
    assert rig.store.current == before
    assert not rig.store.path.exists() and rig.supervisor.applied == []
    assert not (rig.layout.secrets / "mqtt-password").exists()


def test_not_an_object_or_empty(rig: Rig) -> None:
    for body in ([], "x", {}):
        with pytest.raises(SettingsError, match="JSON object"):
            rig.store.change(body)


def test_a_failed_restart_leaves_the_old_settings_and_secrets_and_locks_the_door(rig: Rig) -> None:
    rig.store.change({"mqtt_url": "mqtt://127.0.0.1:1883", "mqtt_user": "ha",
                      "mqtt_password": "old-password"})
    saved = rig.store.path.read_bytes()
    current = rig.store.current
    running = dict(rig.supervisor.running)
    rig.supervisor.fail = "door"
    with pytest.raises(ApplyFailed) as err:
        rig.store.change({"lock_delay": 9, "mqtt_password": "new-password"})
    assert err.value.failed == "door" and "door did not start with the new settings" in str(err.value)
    assert "the old settings are back in place" in str(err.value) and "the door is locked" in str(err.value)
    assert rig.locks == [1]
    assert rig.store.current == current and rig.store.path.read_bytes() == saved
    assert (rig.layout.secrets / "mqtt-password").read_text().strip() == "old-password"
    assert rig.supervisor.running == running


def test_saved_settings_come_back_and_command_line_flags_win_at_start(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.store.change({"lock_delay": 9, "threshold": 0.85, "keep_unlocks": 20})
    saved = json.loads(rig.store.path.read_text())
    assert saved["lock_delay"] == 9 and saved["threshold"] == 0.85
    # the next start: the saved settings, except what `up` is given as a flag
    again = SettingsStore(rig.store.path, secrets_dir=rig.layout.secrets)
    assert again.saved.lock_delay == 9 and again.saved.keep_unlocks == 20
    options = UpSettings(lock_delay=4, camera=str(rig.video))
    current, flags, _ = start_settings(again.saved, options, command_line_fields(options))
    assert current.lock_delay == 4 and current.threshold == 0.85
    assert flags["lock_delay"] == "--lock-delay 4" and flags["camera"] == "--camera"
    again.start_with(current, flags)
    # a change of another setting does not save the flag's value
    again.change({"threshold": 0.8})
    assert json.loads(rig.store.path.read_text())["lock_delay"] == 9


def test_the_still_frame_rule_given_at_start_wins_over_the_saved_setting(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.store.change({"liveness_still_frame": False})
    assert json.loads(rig.store.path.read_text())["liveness_still_frame"] is False
    options = UpSettings(camera=str(rig.video), liveness_still_frame="on")
    current, flags, _ = start_settings(rig.store.saved, options, {"camera", "liveness_still_frame"})
    assert current.liveness_still_frame is True
    assert flags["liveness_still_frame"] == "--liveness-still-frame on"
    ports = Ports(door=1001, recognition=1002, camera=1003)
    vision = Plan(options_for(options, current, {}), rig.layout, ports, None).vision()
    assert "--liveness-still-frame" not in vision  # on: the engine's default


def test_which_flags_count_as_given() -> None:
    assert command_line_fields(UpSettings(lock_delay=5)) == {"lock_delay"}
    from_argparse = UpSettings(**{name: field.get_default(call_default_factory=True)
                                  for name, field in UpSettings.model_fields.items()} | {"port": 9000})
    assert command_line_fields(from_argparse) == {"port"}


def test_mqtt_flags_come_as_a_group_and_their_secret_files_stay_in_use(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("flag-password\n")
    password.chmod(0o600)
    options = UpSettings(camera=str(tmp_path), mqtt_url="mqtt://ha@127.0.0.1:1883",
                         mqtt_password_file=password)
    rig = Rig(tmp_path, options)
    assert rig.store.current.mqtt_user == "ha" and rig.store.current.mqtt_password_set
    assert rig.store.from_command_line["mqtt_url"].startswith("--mqtt")
    assert str(password) in " ".join(rig.supervisor.running["door"])
    rig.store.change({"door_name": "back_door"})  # the flag's password file stays in use ...
    assert str(password) in " ".join(rig.supervisor.running["door"])
    # ... and is kept in the data directory for a start without the flags
    assert (rig.layout.secrets / "mqtt-password").read_text().strip() == "flag-password"
    rig.store.change({"mqtt_password": "page-password"})
    assert str(rig.layout.secrets / "mqtt-password") in " ".join(rig.supervisor.running["door"])
    assert split_user("mqtts://u@h:8883") == ("mqtts://h:8883", "u") and split_user(None) == (None, None)


def test_a_settings_file_from_before_the_settings_page_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"threshold": 0.85}))
    assert SettingsStore(path).current == SystemSettings(threshold=0.85)
    path.write_text(json.dumps({"threshold": 0.85, "camera": str(tmp_path / "gone.mp4"), "lock_delay": 4}))
    store = SettingsStore(path)  # a moved video: the rest still counts
    assert store.current.camera is None and store.current.lock_delay == 4
    path.write_text("{oops")
    assert SettingsStore(path).current == SystemSettings()


def test_the_unlock_code_minimum_is_the_doors() -> None:
    pytest.importorskip("paho.mqtt")
    from smartlock.integrations.door import MIN_CODE

    assert MIN_UNLOCK_CODE == MIN_CODE


# -- over HTTP, against the dashboard with fake parts (tests/web/conftest.py) ---------------------------


def test_the_api_validates_saves_and_never_answers_a_secret(system: System) -> None:
    client = system.client()
    answer = client.get("/api/settings").json()
    assert answer["settings"]["lock_delay"] == 3.0 and answer["liveness"] in (False, True)
    assert answer["restarts"]["lock_delay"] == ["door"]
    refused = client.put("/api/settings", json={"lock_delay": 0})
    assert refused.status_code == 400
    assert refused.json()["field"] == "lock_delay" and "lock delay" in refused.json()["message"]
    assert not (system.tmp / "web" / "settings.json").exists()
    assert client.put("/api/settings", json=[1]).status_code in (400, 422)
    changed = client.put("/api/settings", json={"lock_delay": 6, "mqtt_url": "mqtt://127.0.0.1:1883",
                                                "mqtt_user": "ha", "mqtt_password": "hunter2-secret"})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["settings"]["lock_delay"] == 6 and body["settings"]["mqtt_password_set"] is True
    assert "Saved" in body["message"] and body["restarted"] == []  # no parts behind this dashboard
    for text in (changed.text, client.get("/api/settings").text, client.get("/api/system").text):
        assert "hunter2-secret" not in text
    saved = system.tmp / "web" / "settings.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600 and "hunter2-secret" not in saved.read_text()
    assert client.get("/settings").status_code == 200
    anonymous = system.client(signed_in=False)
    assert anonymous.put("/api/settings", json={"lock_delay": 9}).status_code == 401
    assert anonymous.get("/settings", follow_redirects=False).status_code == 303
    no_header = system.client()
    no_header.headers.pop("X-Smartlock-Request")
    assert no_header.put("/api/settings", json={"lock_delay": 9}).status_code == 403
    assert json.loads(saved.read_text())["lock_delay"] == 6


# -- a real `smartlock up`: every part a real process ---------------------------------------------------


def _frames(folder: Path) -> Path:
    from tests.web.fakes import jpeg

    folder.mkdir()
    for index in range(3):
        (folder / f"{index}.jpg").write_bytes(jpeg(320, 240, (80 + 40 * index, 120, 150)))
    return folder


def _sign_in(base: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, headers={"X-Smartlock-Request": "1"}, timeout=120)
    answer = client.post("/api/auth/login", json={"username": "admin", "password": password})
    assert answer.status_code == 200, answer.text
    return client


def _parts(client: httpx.Client) -> dict[str, dict]:
    return {child["name"]: child for child in client.get("/api/system").json()["children"]}


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_real_up_restarts_only_what_a_change_concerns(tmp_path: Path) -> None:
    frames = _frames(tmp_path / "frames")
    password_file = tmp_path / "password"
    password_file.write_text("settings page test\n")
    password_file.chmod(0o600)
    port, data, log_path = free_port(), tmp_path / "data", tmp_path / "up.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "smartlock", "up", "--camera", str(frames), "--data-dir", str(data),
             "--port", str(port), "--password-file", str(password_file), "--no-collector"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    base = f"http://{LOOPBACK}:{port}"
    saved = data / "web" / "settings.json"
    try:
        wait_until_up(f"{base}/api/auth/state", timeout=60, process=process)
        client = _sign_in(base, "settings page test")
        wait_for(lambda: all(p["state"] == "running" for p in _parts(client).values()), timeout=120,
                 interval=0.5, what="every part running")
        before = {name: part["pid"] for name, part in _parts(client).items()}
        assert client.get("/api/door/status").json()["lock_delay"] == 3.0
        assert client.get("/api/settings").json()["from_command_line"] == {"camera": "--camera"}

        # the lock delay: only the door restarts, and uses it
        answer = client.put("/api/settings", json={"lock_delay": 7.5})
        assert answer.status_code == 200, answer.text
        assert answer.json()["restarted"] == ["door"] and "restarted: door" in answer.json()["message"]
        after = {name: part["pid"] for name, part in _parts(client).items()}
        assert after["door"] not in (None, before["door"])
        others = [name for name in after if name != "door"]
        assert [after[name] for name in others] == [before[name] for name in others]
        assert client.get("/api/door/status").json()["lock_delay"] == 7.5
        door = _cmdline(after["door"])
        assert door[door.index("--lock-delay") + 1] == "7.5"
        assert json.loads(saved.read_text())["lock_delay"] == 7.5
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600

        # a bad value: 400 naming the field, nothing restarted, nothing saved
        stored = saved.read_bytes()
        refused = client.put("/api/settings", json={"lock_delay": 601})
        assert refused.status_code == 400 and refused.json()["field"] == "lock_delay"
        assert {name: part["pid"] for name, part in _parts(client).items()} == after
        assert saved.read_bytes() == stored
        assert client.get("/api/door/status").json()["lock_delay"] == 7.5

        # a camera source the camera cannot open: 502, the old camera back, nothing saved, door locked
        broken = tmp_path / "not-a-video.mp4"
        broken.write_text("no frames here")
        failed = client.put("/api/settings", json={"camera": str(broken)})
        assert failed.status_code == 502, failed.text
        assert failed.json()["failed"] == "vision"  # the camera runs in the vision process
        assert "the old settings are back in place" in failed.json()["message"]
        parts = _parts(client)
        assert all(part["state"] == "running" for part in parts.values())
        vision = _cmdline(parts["vision"]["pid"])
        assert vision[vision.index("--source") + 1] == str(frames)
        assert parts["door"]["pid"] == after["door"]
        assert saved.read_bytes() == stored
        assert client.get("/api/door/status").json()["locked"] is True

        # MQTT: door and engine restart; the password only in a 0600 file, never on a command line
        broker = f"mqtt://127.0.0.1:{free_port()}"  # nobody listens: the parts keep trying in the background
        mqtt = client.put("/api/settings", json={"mqtt_url": broker, "mqtt_user": "ha",
                                                 "mqtt_password": "mqtt-secret-on-page"})
        assert mqtt.status_code == 200, mqtt.text
        assert mqtt.json()["restarted"] == ["door", "vision"]
        parts = _parts(client)
        secret_file = data / "secrets" / "mqtt-password"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        for name in ("door", "vision"):
            argv = _cmdline(parts[name]["pid"])
            assert argv[argv.index("--mqtt-password-file") + 1] == str(secret_file)
            assert "mqtt-secret-on-page" not in " ".join(argv)
        assert "mqtt-secret-on-page" not in client.get("/api/settings").text
        assert "mqtt-secret-on-page" not in saved.read_text()
    except BaseException:
        print(log_path.read_text()[-6000:])
        raise
    finally:
        stop_process(process, timeout=30)
    assert "mqtt-secret-on-page" not in log_path.read_text()


def test_a_viewer_can_neither_read_nor_change_the_settings(system: System) -> None:
    system.dashboard.accounts.add("reception", "viewer password 1", "viewer")
    viewer = httpx.Client(base_url=system.url, headers={"X-Smartlock-Request": "1"}, timeout=10)
    signed = viewer.post("/api/auth/login", json={"username": "reception", "password": "viewer password 1"})
    assert signed.status_code == 200, signed.text
    before = system.dashboard.settings.current
    assert viewer.put("/api/settings", json={"lock_delay": 9}).status_code == 403
    assert viewer.put("/api/settings", json={"threshold": 0.95}).status_code == 403
    assert viewer.get("/api/settings").status_code == 403
    assert system.dashboard.settings.current == before
    assert not (system.tmp / "web" / "settings.json").exists()
