"""`smartlock up`: the plan of child commands, the data directory, pre-flight errors, and a real run."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from smartlock.errors import ConfigError
from smartlock.recognition.store import gallery_backend
from smartlock.web.up import engine_echo, service_echo
from smartlock.web.up_plan import (
    NO_CAMERA_HINT,
    DataLayout,
    EngineTuning,
    Plan,
    Ports,
    UpSettings,
    camera_source,
    local_host,
)
from tests.support import LOOPBACK, free_port, stop_process, wait_for, wait_until_up
from tests.web.media import person_video


def test_camera_source(tmp_path) -> None:
    with pytest.raises(ConfigError) as err:
        camera_source(None, webcam=tmp_path / "video0")
    assert str(err.value) == NO_CAMERA_HINT and "--camera path/to/video.mp4" in NO_CAMERA_HINT
    (tmp_path / "video0").touch()
    assert camera_source(None, webcam=tmp_path / "video0") == "0"
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    assert camera_source(str(video)) == str(video.resolve())
    for spec in ("0", "2", "/dev/video1", "rtsp://cam/stream", "http://cam/stream.mjpg", "picamera"):
        assert camera_source(spec) == spec
    with pytest.raises(ConfigError, match="no such file or folder"):
        camera_source(str(tmp_path / "missing.mp4"))


def test_gallery_backend(tmp_path) -> None:
    assert gallery_backend(tmp_path) is None
    (tmp_path / "gallery.json").write_text(json.dumps({"backend": "dlib"}))
    assert gallery_backend(tmp_path) == "dlib"
    (tmp_path / "gallery.json").write_text("{oops")
    with pytest.raises(ConfigError, match="unreadable"):
        gallery_backend(tmp_path)


def test_data_layout_makes_private_secrets_once(tmp_path) -> None:
    layout = DataLayout(tmp_path / "data")
    layout.prepare()
    secrets = (layout.door_secret, layout.api_key, layout.camera_token, layout.webhook_token)
    for secret in secrets:
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    for folder in (layout.root, layout.secrets, layout.web, layout.model, layout.log, layout.collected):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    before = {p: p.read_bytes() for p in secrets}
    layout.prepare()
    assert {p: p.read_bytes() for p in before} == before


def test_one_up_per_data_directory(tmp_path) -> None:
    layout = DataLayout(tmp_path / "data")
    held = layout.lock()
    with pytest.raises(ConfigError, match="another `smartlock up` is using"):
        layout.lock()
    held.close()
    layout.lock().close()


def test_the_plan_of_child_commands(tmp_path) -> None:
    layout = DataLayout(tmp_path)
    layout.prepare()
    ports = Ports(door=1001, recognition=1002, camera=1003)
    plan = Plan(UpSettings(host="0.0.0.0", port=8123), layout, ports, "clip.mp4")
    door = plan.door()
    assert door[1:4] == ["-m", "smartlock", "door"]
    assert door[door.index("--pin-factory") + 1] == "mock" and door[door.index("--pin") + 1] == "7"
    assert door[door.index("--host") + 1] == "127.0.0.1"  # the parts listen on loopback only
    vision = plan.vision(EngineTuning(threshold=0.85))
    assert vision[1:4] == ["-m", "smartlock", "vision"]
    assert vision[vision.index("--threshold") + 1] == "0.85"
    assert vision[vision.index("--webhook-url") + 1] == "http://127.0.0.1:8123/hooks/engine"
    assert vision[vision.index("--live-url") + 1] == "http://127.0.0.1:8123/hooks/engine/live"
    assert vision[vision.index("--door-api-url") + 1] == "http://127.0.0.1:1001/unlock"
    assert vision[vision.index("--camera-port") + 1] == "1003"
    assert vision[vision.index("--recognition-port") + 1] == "1002"
    assert vision[vision.index("--source") + 1] == "clip.mp4"
    assert vision[vision.index("--camera-token-file") + 1] == str(layout.camera_token)
    assert vision[vision.index("--face-recognition-api-key-file") + 1] == str(layout.api_key)
    assert vision[vision.index("--webhook-token-file") + 1] == str(layout.webhook_token)
    assert vision[vision.index("--model") + 1] == str(layout.model)
    assert "--backend" not in vision and "--camera-url" not in vision
    # the engine does the collector's job on the frames it analyses: the band ends at the threshold
    assert vision[vision.index("--collect-dir") + 1] == str(layout.collected)
    assert vision[vision.index("--collect-max-confidence") + 1] == "0.85"
    real = Plan(UpSettings(pin=12, backend="dlib"), layout, ports, None)
    assert real.door()[real.door().index("--pin") + 1] == "12"
    assert "--pin-factory" not in real.door()  # the default: the real pins of this machine
    vision = real.vision()
    assert "--source" not in vision and vision[vision.index("--backend") + 1] == "dlib"
    assert "--liveness-still-frame" not in vision  # the default, on
    framed = Plan(UpSettings(liveness_still_frame="off"), layout, ports, None).vision()
    assert framed[framed.index("--liveness-still-frame") + 1] == "off"
    flags = {"--liveness-timeout", "--spoof-lockout", "--spoof-lockout-minutes", "--liveness-model"}
    assert not flags & set(vision)  # the defaults
    model = tmp_path / "pad.onnx"
    model.write_bytes(b"onnx")
    tuned = Plan(UpSettings(liveness_timeout=5, spoof_lockout=1, spoof_lockout_minutes=60,
                            liveness_model=model), layout, ports, None).vision()
    assert [tuned[tuned.index(flag) + 1] for flag in ("--liveness-timeout", "--spoof-lockout",
            "--spoof-lockout-minutes", "--liveness-model")] == ["5", "1", "60", str(model)]
    with pytest.raises(ConfigError, match="no such file"):
        UpSettings.validated(liveness_model=tmp_path / "absent.onnx")
    with pytest.raises(ConfigError, match="--spoof-lockout: Input should be greater than or equal to 0"):
        UpSettings.validated(spoof_lockout=-1)  # the engine's limits
    assert local_host("::") == "127.0.0.1" and local_host("192.168.1.5") == "192.168.1.5"


def test_the_children_and_their_command_lines_come_from_one_place(tmp_path) -> None:
    from smartlock.door.client import DoorClient
    from smartlock.web.up import _child_specs

    layout = DataLayout(tmp_path)
    layout.prepare()
    plan = Plan(UpSettings(lock_delay=4), layout, Ports(door=1001, recognition=1002, camera=1003), "clip.mp4")
    commands = plan.commands(EngineTuning(threshold=0.85, keep_days=7, keep_unlocks=9))
    assert list(commands) == ["door", "vision"]
    assert commands["vision"] == plan.vision(EngineTuning(threshold=0.85, keep_days=7, keep_unlocks=9))
    vision = commands["vision"]
    assert vision[vision.index("--keep-days") + 1] == "7"
    assert vision[vision.index("--keep-unlocks") + 1] == "9"
    specs = _child_specs(plan, EngineTuning(), DoorClient(plan.door_url, None))
    assert [spec.name for spec in specs] == list(commands)
    assert specs[0].before_stop is not None  # the door is locked before it stops or restarts
    no_collector = plan.with_options(UpSettings(collect=False), None)
    assert "--collect-dir" not in no_collector.commands(EngineTuning())["vision"]
    assert no_collector.ports == plan.ports and no_collector.webhook_url == plan.webhook_url


def test_no_secret_reaches_a_child_command_line_or_environment(tmp_path) -> None:
    layout = DataLayout(tmp_path)
    layout.prepare()
    plan = Plan(UpSettings(), layout, Ports(door=1001, recognition=1002, camera=1003), None)
    argv = " ".join(" ".join(command) for command in plan.commands(EngineTuning()).values())
    for secret in (layout.api_key, layout.camera_token, layout.webhook_token):
        value = secret.read_text().strip()
        assert value not in argv
    door_key = json.loads(layout.door_secret.read_text())["key"]
    assert door_key not in argv
    assert "token=" not in argv


def test_child_settings_are_checked_by_the_childs_own_model(tmp_path) -> None:
    layout = DataLayout(tmp_path)
    with pytest.raises(ConfigError, match="--lock-delay"):
        UpSettings.validated(lock_delay=601)
    plan = Plan(UpSettings(lock_delay=600), layout, Ports(door=1, recognition=2, camera=3), None)
    door = plan.door()
    assert door[door.index("--lock-delay") + 1] == "600"


def test_terminal_filters() -> None:
    assert not service_echo('INFO uvicorn.access: 127.0.0.1 - "GET /health HTTP/1.1" 200')
    assert service_echo("INFO uvicorn.error: Started server process")
    assert not engine_echo("2024-01-01 INFO smartlock.engine: Analysing frame...")
    assert engine_echo("2024-01-01 INFO smartlock.engine: Door unlocked")
    assert engine_echo("2024-01-01 ERROR smartlock.engine: Error occurred")
    assert engine_echo("Traceback (most recent call last):")


def run_up(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smartlock", "up", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_preflight_errors_are_clear_and_start_nothing(tmp_path) -> None:
    data = tmp_path / "data"
    missing = run_up("--camera", str(tmp_path / "nope.mp4"), "--data-dir", str(data))
    assert missing.returncode == 2
    assert "no such file or folder" in missing.stderr
    assert not data.exists()
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = run_up("--camera", str(tmp_path), "--data-dir", str(data), "--port", str(port))
    assert taken.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in taken.stderr
    short = tmp_path / "pw"
    short.write_text("long enough password\n")
    os.chmod(short, 0o644)
    readable = run_up("--camera", str(tmp_path), "--data-dir", str(data), "--password-file", str(short))
    assert readable.returncode == 2 and f"chmod 600 {short}" in readable.stderr
    short.write_text("short\n")
    os.chmod(short, 0o600)
    weak = run_up("--camera", str(tmp_path), "--data-dir", str(data), "--password-file", str(short))
    assert weak.returncode == 2 and "at least 8 characters" in weak.stderr
    assert not data.exists()
    (data / "model").mkdir(parents=True)
    (data / "model" / "gallery.json").write_text(json.dumps({"backend": "arcface"}))
    mismatch = run_up("--camera", str(tmp_path), "--data-dir", str(data), "--backend", "dlib")
    assert mismatch.returncode == 2 and "pass --backend arcface" in mismatch.stderr


def _children(client: httpx.Client) -> dict[str, dict]:
    return {c["name"]: c for c in client.get("/api/system").json()["children"]}


def _all_running(client: httpx.Client) -> dict[str, dict] | None:
    children = _children(client)
    return children if all(c["state"] == "running" for c in children.values()) else None


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


@pytest.mark.slow
@pytest.mark.faces
@pytest.mark.timeout(300)
def test_a_real_run_setup_link_restarts_and_clean_stop(tmp_path, faces_dir: Path) -> None:
    """Every part as a real process: the setup link in the log, a killed part comes back, a new threshold
    restarts the engine with it, SIGTERM stops everything with the door locked."""
    stranger = next(iter(sorted((faces_dir / "strangers").iterdir())[0].glob("*.jpg")))
    video = person_video(stranger, tmp_path / "stranger.mp4", seconds=2)
    port = free_port()
    log_path = tmp_path / "up.log"
    data = tmp_path / "data"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "smartlock", "up", "--camera", str(video), "--data-dir", str(data),
             "--port", str(port), "--no-collector"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    base = f"http://{LOOPBACK}:{port}"
    try:
        wait_until_up(f"{base}/api/auth/state", timeout=60, process=process)
        match = re.search(r"open (http://\S+/setup\?token=(\S+)) once", log_path.read_text())
        assert match, log_path.read_text()
        client = httpx.Client(base_url=base, headers={"X-Smartlock-Request": "1"}, timeout=15)
        chosen = client.post("/api/auth/setup", json={"token": match[2], "password": "first password"})
        assert chosen.is_success
        children = wait_for(lambda: _all_running(client), timeout=120, interval=0.5,
                            what="every part running")
        assert list(children) == ["door", "vision"]  # camera, recognition and engine in one process
        camera_token = (data / "secrets" / "camera-token").read_text().strip()
        assert camera_token not in log_path.read_text()  # redacted from the parts' output

        # a part that dies is started again
        old_vision = children["vision"]["pid"]
        os.kill(old_vision, signal.SIGKILL)

        def vision_back() -> dict | None:
            vision = _children(client)["vision"]
            return vision if vision["restarts"] == 1 and vision["state"] == "running" else None

        vision = wait_for(vision_back, timeout=90, interval=0.3, what="the vision process started again")
        assert vision["restarts"] == 1 and vision["state"] == "running" and vision["pid"] != old_vision
        assert client.get("/api/camera/snapshot.jpg").content[:2] == b"\xff\xd8"

        # a new threshold takes effect without a restart of `up`: the engine runs again with it
        old_engine = vision["pid"]
        assert client.put("/api/settings", json={"threshold": 0.9}).is_success

        def new_engine() -> dict | None:
            engine = _children(client)["vision"]
            restarted = engine["pid"] not in (None, old_engine) and engine["state"] == "running"
            return engine if restarted else None

        engine = wait_for(new_engine, timeout=90, interval=0.3, what="the engine running with 0.9")
        argv = _cmdline(engine["pid"])
        assert argv[argv.index("--threshold") + 1] == "0.9"
        pids = [c["pid"] for c in client.get("/api/system").json()["children"]]
    except BaseException:
        print(log_path.read_text()[-6000:])
        raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60) if process.poll() is None else process.returncode
        stop_process(process)
    assert code == 0, log_path.read_text()[-3000:]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    text = log_path.read_text()
    assert "door locked" in text and "stopping door" in text
    assert text.index("stopping vision") < text.index("door locked") < text.index("stopping door")
