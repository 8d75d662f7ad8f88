"""`smartlock service install|uninstall`: the unit of each part, checked by systemd's own parser."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from smartlock.cli import main
from smartlock.deploy.install import InstallRequest, next_steps, plan_install, uninstall, write_unit
from smartlock.deploy.systemd import PARTS, UnitSpec, exec_line, quote_exec_arg, render_unit
from smartlock.door.auth import generate_secret
from smartlock.errors import ConfigError
from tests.deploy.helpers import needs_systemd_analyze, one, settings, systemd_argv, verify

PYTHON = str(Path(sys.executable).absolute())
VIDEO = "/srv/door/entrance.mp4"


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    generate_secret(folder / "door.secret")
    for name in ("api-key", "camera-token"):
        (folder / name).write_text("s3cret-value\n")
        (folder / name).chmod(0o600)
    return folder


def part_flags(part: str, secrets: Path) -> list[str]:
    """A realistic command line of each part, as a user would install it."""
    return {
        "door": ["--pin", "11", "--secret-file", str(secrets / "door.secret"), "--lock-delay", "5"],
        "camera": ["--source", "picamera", "--width", "1280", "--height", "720",
                   "--token-file", str(secrets / "camera-token")],
        "recognition": ["--port", "5000", "--api-key-file", str(secrets / "api-key")],
        "engine": ["--camera-url", "http://10.0.0.5/stream.mjpg",
                   "--face-recognition-api-url", "http://10.0.0.9:5000/face-recognition",
                   "--door-api-url", "http://10.0.0.5:8080/unlock",
                   "--door-secret-file", str(secrets / "door.secret"), "--threshold", "0.85"],
        "collect": ["-min", "0.5", "-max", "0.8", "--camera-url", "http://10.0.0.5/stream.mjpg",
                    "--face-recognition-api-url", "http://10.0.0.9:5000/face-recognition"],
        "vision": ["--source", "picamera", "--camera-port", "8081", "--recognition-port", "5000",
                   "--model", str(secrets.parent / "model"), "--door-api-url", "http://10.0.0.5:8080/unlock",
                   "--door-secret-file", str(secrets / "door.secret")],
        "up": ["--pin", "11", "--host", "0.0.0.0", "--port", "8000"],
    }[part]


def door_request(secrets: Path, **fields) -> InstallRequest:
    return InstallRequest(part="door", flags=tuple(part_flags("door", secrets)), **fields)


def install(tmp_path: Path, part: str, flags: list[str], **request) -> tuple[Path, str]:
    plan = plan_install(InstallRequest(part=part, flags=tuple(flags), unit_dir=tmp_path / "units", **request),
                        systemd_version=252)
    write_unit(plan)
    return plan.path, plan.path.read_text()


@needs_systemd_analyze
@pytest.mark.parametrize("part", list(PARTS))
def test_each_part_gets_a_unit_systemd_accepts_and_runs_as_given(tmp_path, secrets, part):
    flags = part_flags(part, secrets)
    path, text = install(tmp_path, part, flags)

    assert path.name == f"smartlock-{part}.service"
    result = verify(path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert systemd_argv(path) == [PYTHON, "-m", "smartlock", part, *flags]
    assert one(text, "User") == "smartlock"
    assert one(text, "WorkingDirectory") == "/var/lib/smartlock"
    assert one(text, "StateDirectory") == "smartlock"
    assert one(text, "Restart") in ("always", "on-failure")
    assert int(one(text, "RestartSec")) >= 1
    assert one(text, "StartLimitIntervalSec") == "0"
    for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                      "UMask=0077", "SystemCallFilter=@system-service"):
        assert hardening in text.splitlines()
    assert "network-online.target" in one(text, "After")
    assert one(text, "WantedBy") == "multi-user.target"
    assert "s3cret-value" not in text


@needs_systemd_analyze
def test_exec_start_quoting_follows_systemd_not_the_shell(tmp_path):
    tricky = ["a b", 'say "hi"', "back\\slash", "100%", "$HOME", "${HOME}", "$$", ";", "", "it's",
              "tab\there", "ünïcode", "new\nline", "\\;", "--flag=x y"]
    spec = UnitSpec(part=PARTS["recognition"], command=(PYTHON, *tricky), data_dir=tmp_path / "data")
    path = tmp_path / "smartlock-recognition.service"
    path.write_text(render_unit(spec))

    assert verify(path).stderr == ""
    assert systemd_argv(path) == [PYTHON, *tricky]


def test_quoting_leaves_plain_words_alone_and_refuses_a_relative_program():
    assert quote_exec_arg("--pin") == "--pin"
    assert quote_exec_arg("/opt/smartlock/door.secret") == "/opt/smartlock/door.secret"
    assert quote_exec_arg("50%") == "50%%"
    assert quote_exec_arg("") == '""'
    with pytest.raises(ConfigError, match="absolute"):
        exec_line(["python", "-m", "smartlock"])


def test_the_door_unit_locks_on_stop_and_comes_back_after_a_crash(tmp_path, secrets):
    _, text = install(tmp_path, "door", part_flags("door", secrets))

    assert one(text, "KillSignal") == "SIGTERM"  # run_door turns it into a clean exit that locks the relay
    assert one(text, "KillMode") == "control-group"
    assert 5 <= int(one(text, "TimeoutStopSec")) <= 30
    # SIGKILL, a crash or an exit of any kind: started again one second later, locked from the first moment
    assert one(text, "Restart") == "always"
    assert one(text, "RestartSec") == "1"
    assert one(text, "StartLimitIntervalSec") == "0"
    assert one(text, "SupplementaryGroups") == "gpio"
    assert one(text, "DevicePolicy") == "closed"
    assert settings(text)["DeviceAllow"] == ["char-gpiochip rw", "char-*gpiomem* rw"]
    assert one(text, "RestrictAddressFamilies") == "AF_UNIX AF_INET AF_INET6"
    # the door listens on port 80 by default: the capability to bind it, and nothing else
    assert one(text, "AmbientCapabilities") == "CAP_NET_BIND_SERVICE"
    assert one(text, "CapabilityBoundingSet") == "CAP_NET_BIND_SERVICE"


def test_groups_and_devices_follow_what_the_part_really_opens(tmp_path, secrets):
    secret = str(secrets / "door.secret")
    _, mock_door = install(tmp_path, "door", ["-p", "11", "--pin-factory", "mock", "--port", "8080",
                                              "--secret-file", secret])
    assert "SupplementaryGroups" not in settings(mock_door)
    assert one(mock_door, "PrivateDevices") == "yes"
    assert one(mock_door, "CapabilityBoundingSet") == ""

    _, picamera = install(tmp_path, "camera", ["--port", "8081"])  # default source: the Pi camera
    assert one(picamera, "SupplementaryGroups") == "video"
    assert "AF_NETLINK" in one(picamera, "RestrictAddressFamilies")  # libcamera watches udev
    assert "PrivateDevices" not in settings(picamera) and "DevicePolicy" not in settings(picamera)

    _, file_camera = install(tmp_path, "camera", ["--source", VIDEO, "--port", "8081"])
    assert "SupplementaryGroups" not in settings(file_camera)
    assert one(file_camera, "PrivateDevices") == "yes"

    _, up = install(tmp_path, "up", ["--pin", "11", "--camera", "/dev/video0"])
    assert one(up, "SupplementaryGroups") == "gpio video"
    assert one(up, "KillMode") == "mixed"  # up stops its parts itself, the door last and locked
    assert "smartlock-door.service" in one(up, "Conflicts")

    _, engine = install(tmp_path, "engine", part_flags("engine", secrets))
    assert "smartlock-door.service" in one(engine, "After")
    assert one(engine, "ProtectClock") == "yes"

    _, vision = install(tmp_path, "vision", part_flags("vision", secrets))  # camera, recognition, engine
    assert one(vision, "SupplementaryGroups") == "video"
    assert "smartlock-door.service" in one(vision, "After")
    assert str(secrets.parent / "model") in one(vision, "ReadWritePaths")  # enrollment writes the gallery
    assert "smartlock-vision.service" in one(up, "Conflicts")  # up runs its own vision
    _, vision_file = install(tmp_path, "vision", [*part_flags("vision", secrets)[2:], "--source", VIDEO])
    assert "SupplementaryGroups" not in settings(vision_file)
    assert one(vision_file, "PrivateDevices") == "yes"


def test_a_growing_restart_delay_only_where_systemd_knows_it(tmp_path, secrets):
    request = door_request(secrets, unit_dir=tmp_path)
    old = plan_install(request, systemd_version=252).text
    new = plan_install(request, systemd_version=254).text
    unknown = plan_install(request, systemd_version=None).text
    assert "RestartSteps" not in old and "RestartSteps" not in unknown
    assert one(new, "RestartSteps") == "5" and one(new, "RestartMaxDelaySec") == "10"


def test_data_dir_outside_var_lib_is_made_writable_by_path(tmp_path, secrets):
    data = tmp_path / "data"
    data.mkdir()
    events = tmp_path / "audit"
    flags = [*part_flags("door", secrets), "--events-db", str(events / "door.sqlite3")]
    plan = plan_install(InstallRequest(part="door", flags=tuple(flags), unit_dir=tmp_path, data_dir=data))
    text = plan.text
    assert "StateDirectory" not in settings(text)
    assert one(text, "WorkingDirectory") == str(data)
    assert one(text, "ReadWritePaths") == f"{data} {events}"
    assert f"Environment=SMARTLOCK_DATA_DIR={data}" in text.splitlines()
    assert any(f"install -d -o smartlock -m 0700 {events}" in w for w in plan.warnings)

    up = plan_install(InstallRequest(part="up", flags=("--data-dir", "/var/lib/doorkeeper")))
    assert one(up.text, "StateDirectory") == "doorkeeper"
    with pytest.raises(ConfigError, match="differ"):
        plan_install(InstallRequest(part="up", flags=("--data-dir", "/var/lib/a"), data_dir=Path("/srv/b")))


def test_an_installation_under_home_keeps_homes_readable_and_says_so(tmp_path, secrets):
    plan = plan_install(door_request(secrets), python="/home/pi/smartlock/.venv/bin/python")
    assert one(plan.text, "ProtectHome") == "read-only"
    assert any("/opt/smartlock" in w for w in plan.warnings)
    assert one(plan.text, "ExecStart").startswith("/home/pi/smartlock/.venv/bin/python -m smartlock door")


@pytest.mark.parametrize(
    ("part", "flags", "message"),
    [
        ("door", ["--pin", "11", "--no-auth"], "UNSIGNED"),
        ("recognition", ["--model", "/var/lib/smartlock/model", "--no-auth"], "enroll a face"),
        ("door", ["--generate-secret", "/etc/smartlock/door.secret"], "one-off"),
        ("door", ["--secret-file", "/etc/smartlock/door.secret"], "--pin"),
        ("door", ["--pin", "11"], "--secret-file"),
        ("door", ["--pin", "11", "--secret-file", "door.secret"], "absolute path"),
        ("door", ["--pin", "eleven"], "not valid"),
        ("camera", ["--source", "videos/door.mp4", "--no-such-flag"], "not valid"),
        ("engine", ["--camera-url", "http://c/stream.mjpg", "--face-recognition-api-url", "http://r/fr",
                    "--door-api-url", "http://d/unlock", "--face-recognition-api-key", "k"],
         "--face-recognition-api-key-file FILE"),
        ("engine", ["--camera-url", "http://c/stream.mjpg"], "not valid"),
        ("garage", [], "unknown part"),
    ],
)
def test_unsafe_or_broken_command_lines_are_refused_before_writing(tmp_path, part, flags, message):
    with pytest.raises(ConfigError, match=message):
        plan_install(InstallRequest(part=part, flags=tuple(flags), unit_dir=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_tls_key_paths_are_not_mistaken_for_secret_values(tmp_path):
    plan = plan_install(InstallRequest(part="recognition", unit_dir=tmp_path, flags=(
        "--model", "/var/lib/smartlock/model", "--tls-cert", "/etc/smartlock/cert.pem",
        "--tls-key", "/etc/smartlock/key.pem")))
    assert "--tls-key /etc/smartlock/key.pem" in one(plan.text, "ExecStart")


def test_a_relative_camera_file_is_refused_with_its_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "door.mp4").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=str(tmp_path / "door.mp4")):
        plan_install(InstallRequest(part="camera", flags=("--source", "door.mp4")))


def test_no_auth_only_when_asked_for_and_then_loudly(tmp_path):
    plan = plan_install(InstallRequest(part="door", flags=("--pin", "11", "--no-auth"), unit_dir=tmp_path,
                                       allow_no_auth=True))
    assert plan.text.startswith("# Written by") and "UNSIGNED" in plan.text.splitlines()[1]
    assert any("UNSIGNED" in w for w in plan.warnings)


def test_root_is_not_a_service_user(tmp_path, secrets):
    with pytest.raises(ConfigError, match="not root"):
        plan_install(door_request(secrets, user="root"))


def test_readable_secrets_and_env_files_are_reported(tmp_path, secrets):
    (secrets / "door.secret").chmod(0o640)
    env = tmp_path / "engine.env"
    env.write_text("SMARTLOCK_API_KEY=abc\n")
    env.chmod(0o644)
    plan = plan_install(InstallRequest(part="engine", flags=tuple(part_flags("engine", secrets)),
                                       unit_dir=tmp_path, env_file=env))
    assert one(plan.text, "EnvironmentFile") == str(env)
    assert any(f"secret {secrets / 'door.secret'}" in w and "chmod 600" in w for w in plan.warnings)
    assert any(f"secret {env}" in w and "every user" in w for w in plan.warnings)
    assert "abc" not in plan.text


def test_next_steps_create_the_user_link_and_enable(tmp_path, secrets):
    plan = plan_install(door_request(secrets, unit_dir=tmp_path))
    steps = next_steps(plan, user_exists=lambda name: False, is_root=False)
    assert steps[0].startswith("sudo useradd --system") and steps[0].endswith(" smartlock")
    assert f"sudo systemctl link {plan.path}" in steps
    assert "sudo systemctl enable --now smartlock-door.service" in steps

    standard = plan_install(door_request(secrets))
    steps = next_steps(standard, user_exists=lambda name: True, is_root=True)
    assert steps[:2] == ["systemctl daemon-reload", "systemctl enable --now smartlock-door.service"]


def test_cli_install_then_uninstall(tmp_path, secrets, capsys):
    units = tmp_path / "units"
    secret = str(secrets / "door.secret")
    # service options may come before PART or among its flags, as in the synopsis
    assert main(["service", "install", "door", "--unit-dir", str(units), "--pin", "11",
                 "--secret-file", secret, "--user", "doorman"]) == 0
    out = capsys.readouterr().out
    unit = units / "smartlock-door.service"
    assert f"wrote {unit}" in out and "systemctl enable --now smartlock-door.service" in out
    text = unit.read_text()
    assert one(text, "User") == "doorman"
    assert one(text, "ExecStart").endswith(f"smartlock door --pin 11 --secret-file {secret}")
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644

    wants = units / "multi-user.target.wants"
    wants.mkdir()
    (wants / unit.name).symlink_to(unit)
    assert main(["service", "uninstall", "door", "--unit-dir", str(units)]) == 0
    assert not unit.exists() and not (wants / unit.name).is_symlink()
    assert "removed" in capsys.readouterr().out
    assert main(["service", "uninstall", "door", "--unit-dir", str(units)]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_cli_print_writes_nothing(tmp_path, secrets, capsys):
    assert main(["service", "install", "--print", "--unit-dir", str(tmp_path), "door", "--pin", "11",
                 "--secret-file", str(secrets / "door.secret")]) == 0
    assert "[Service]" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == [secrets]


def test_cli_reports_refusals_as_errors(tmp_path, capsys):
    assert main(["service", "install", "--unit-dir", str(tmp_path), "door", "--pin", "11", "--no-auth"]) == 2
    assert "UNSIGNED" in capsys.readouterr().err


def test_uninstall_refuses_a_running_unit(tmp_path):
    (tmp_path / "smartlock-camera.service").write_text("[Service]\n")
    with pytest.raises(ConfigError, match="disable --now"):
        uninstall("camera", tmp_path, is_active=lambda name: name == "smartlock-camera.service")
    assert (tmp_path / "smartlock-camera.service").exists()
