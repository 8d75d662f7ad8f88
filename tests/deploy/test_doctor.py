"""`smartlock doctor`: each check against fakes and against the real thing (mock pins, a video file)."""

from __future__ import annotations

import errno
import socket
import threading
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from smartlock.cli import main
from smartlock.deploy import checks
from smartlock.deploy.checks import CheckResult, Status
from smartlock.deploy.doctor import (
    DoctorOptions,
    Toolkit,
    exit_code,
    format_report,
    parse_parts,
    plan_checks,
    run_checks,
)
from smartlock.errors import CameraError, ConfigError
from tests.support import LOOPBACK, free_port

Usage = namedtuple("Usage", "total used free")
MB = 2**20


@pytest.fixture
def video(faces_dir: Path) -> Path:
    path = faces_dir / "video" / "pedestrians.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


# -- GPIO on gpiozero's real MockFactory -------------------------------------------------------------


@pytest.fixture
def mock_factory():
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    yield factory
    factory.close()


def test_gpio_claims_the_pin_locked_and_releases_it(mock_factory):
    result = checks.check_gpio(11, pin_factory=mock_factory)
    assert result.status is Status.OK, result
    assert "GPIO17 free on MockFactory" in result.detail and "pin HIGH" in result.detail
    pin = mock_factory.pin("BOARD11")
    assert pin.state is True  # left at the locked level (active-low relay: HIGH)
    assert checks.check_gpio(11, pin_factory=mock_factory).status is Status.OK  # released: free again


def test_gpio_active_high_relay_is_claimed_low(mock_factory):
    result = checks.check_gpio(11, active_high=True, pin_factory=mock_factory)
    assert result.status is Status.OK and "pin LOW" in result.detail


def test_gpio_pin_held_by_another_device_fails_with_a_fix(mock_factory):
    from gpiozero import OutputDevice

    holder = OutputDevice("BOARD11", pin_factory=mock_factory)
    try:
        result = checks.check_gpio(11, pin_factory=mock_factory)
    finally:
        holder.close()
    assert result.status is Status.FAIL
    assert "in use" in result.detail
    assert "systemctl stop smartlock-door" in result.fix


def test_gpio_pin_outside_the_header_fails(mock_factory):
    result = checks.check_gpio(41, pin_factory=mock_factory)
    assert result.status is Status.FAIL and "BOARD" in result.fix


def test_gpio_named_mock_factory_is_built_and_closed():
    made = []

    def make(name):
        from gpiozero.pins.mock import MockFactory

        made.append(MockFactory())
        return made[-1]

    assert checks.check_gpio(11, "mock", make_factory=make).status is Status.OK
    assert len(made) == 1 and not made[0].pins  # closed after the check


@pytest.mark.skipif(checks.on_a_pi(), reason="on a Raspberry Pi a real pin factory loads")
def test_gpio_off_a_pi_says_to_simulate():
    result = checks.check_gpio(11, "auto")
    assert result.status is Status.FAIL and "--pin-factory mock" in result.fix


# -- camera --------------------------------------------------------------------------------------------


def test_camera_reads_frames_from_a_real_video_file(video):
    import cv2

    capture = cv2.VideoCapture(str(video))
    ok, first = capture.read()
    capture.release()
    assert ok
    result = checks.check_camera(str(video), frames=3)
    assert result.status is Status.OK, result
    assert f"3 frames at {first.shape[1]}x{first.shape[0]}" in result.detail
    scaled = checks.check_camera(str(video), width=640, frames=2)
    assert scaled.status is Status.OK and "served scaled to 640x" in scaled.detail


class FakeCamera:
    """A camera that answers a size request with its own nearest mode, or never delivers a frame."""

    resizes_itself = True
    name = "device 0"

    def __init__(self, size=(640, 480), stall=False):
        self.size, self.stall = size, stall
        self.released = threading.Event()
        self.closed = False

    def read(self):
        if self.stall:
            self.released.wait()
            raise CameraError("interrupted")
        return SimpleNamespace(image=np.zeros((self.size[1], self.size[0], 3), np.uint8), jpeg=None)

    def interrupt(self):
        self.released.set()

    def close(self):
        self.closed = True


def test_camera_that_ignores_the_asked_size_is_a_warning():
    camera = FakeCamera(size=(640, 480))
    result = checks.check_camera("0", open_source=lambda spec, **size: camera)
    assert result.status is Status.WARN
    assert "delivers 640x480, not the 1280x720 asked for" in result.detail
    assert camera.closed
    exact = checks.check_camera("0", 640, 480, open_source=lambda spec, **size: FakeCamera((640, 480)))
    assert exact.status is Status.OK


def test_camera_without_frames_fails_after_the_timeout():
    camera = FakeCamera(stall=True)
    result = checks.check_camera("0", timeout=0.2, open_source=lambda spec, **size: camera)
    assert result.status is Status.FAIL and "no frames" in result.detail
    assert camera.released.is_set() and camera.closed


def test_camera_that_does_not_open_fails_with_a_fix():
    def refuse(spec, **size):
        raise CameraError("no camera could be opened")

    result = checks.check_camera(None, open_source=refuse)
    assert result.status is Status.FAIL and "python3-picamera2" in result.fix


# -- model ---------------------------------------------------------------------------------------------


def test_model_verifies_the_installed_arcface_weights_and_a_real_gallery(tmp_path):
    from smartlock.recognition.backends.weights import read_verified
    from smartlock.recognition.gallery import Gallery
    from smartlock.recognition.store import save_gallery

    empty = checks.check_model(tmp_path / "model")
    assert empty.status is Status.OK and "sha256" in empty.detail and "no gallery yet" in empty.detail
    assert checks.check_model(tmp_path / "model", must_exist=True).status is Status.FAIL

    hashes = {key: read_verified(path, None)[1] for key, (path, _) in checks.weight_files("arcface").items()}
    save_gallery(tmp_path / "model", Gallery.empty("arcface", hashes, 512))
    result = checks.check_model(tmp_path / "model")
    assert result.status is Status.OK and "0 people" in result.detail


def test_model_weights_failing_their_hash_are_reported(tmp_path):
    weights = tmp_path / "det.onnx"
    weights.write_bytes(b"not the real weights")
    files = {"detector:det.onnx": (weights, "0" * 64)}
    result = checks.check_model(tmp_path, "arcface", files=lambda backend: files)
    assert result.status is Status.FAIL and "integrity check" in result.detail


def test_model_gallery_made_with_other_weights_fails(tmp_path):
    (tmp_path / "gallery.json").write_text("{}")
    gallery = SimpleNamespace(backend="arcface", model_hashes={"detector:x.onnx": "ab"}, records=())
    result = checks.check_model(tmp_path, load_gallery=lambda path: gallery)
    assert result.status is Status.FAIL and "other arcface weights" in result.detail


def test_model_backend_runtime_missing(tmp_path):
    result = checks.check_model(tmp_path, "dlib", find_module=lambda name: None)
    assert result.status is Status.FAIL and "smartlock[dlib]" in result.fix


# -- ports, secrets, clock, disk -----------------------------------------------------------------------


def test_port_free_taken_and_privileged():
    assert checks.check_port(LOOPBACK, free_port()).status is Status.OK
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        result = checks.check_port(LOOPBACK, taken.getsockname()[1])
    assert result.status is Status.FAIL and "ss -ltnp" in result.fix

    def denied(host, port):
        raise OSError(errno.EACCES, "Permission denied")

    low = checks.check_port("0.0.0.0", 80, bind=denied)
    assert low.status is Status.WARN and "CAP_NET_BIND_SERVICE" in low.detail


@pytest.mark.parametrize(("mode", "status"), [(0o600, Status.OK), (0o400, Status.OK), (0o640, Status.WARN),
                                              (0o644, Status.FAIL), (0o606, Status.FAIL)])
def test_secret_permissions(tmp_path, mode, status):
    path = tmp_path / "door.secret"
    path.write_text("x")
    path.chmod(mode)
    result = checks.check_secret(path)
    assert result.status is status
    if status is not Status.OK:
        assert f"chmod 600 {path}" in result.fix


def test_secret_missing_or_owned_by_someone_else(tmp_path):
    assert checks.check_secret(tmp_path / "nope").status is Status.FAIL
    path = tmp_path / "token"
    path.write_text("x")
    path.chmod(0o600)
    other = "nobody" if path.stat().st_uid != 65534 else "root"
    result = checks.check_secret(path, owner=other)
    assert result.status is Status.FAIL and f"chown {other}:" in result.fix


def test_clock_sources_in_order(tmp_path):
    flag = tmp_path / "synchronized"
    never = lambda: pytest.fail("the kernel is asked only without timesyncd's flag")  # noqa: E731
    flag.touch()
    assert checks.check_clock(synced_flag=flag, kernel=never).status is Status.OK
    flag.unlink()
    assert checks.check_clock(synced_flag=flag, kernel=lambda: (True, 0.05)).status is Status.OK
    unsynced = checks.check_clock(synced_flag=flag, kernel=lambda: (False, 16.0))
    assert unsynced.status is Status.WARN and "set-ntp true" in unsynced.fix
    assert checks.check_clock(synced_flag=flag, kernel=lambda: None).status is Status.UNKNOWN


def test_the_kernel_clock_can_be_asked_here():
    answer = checks.kernel_clock_synchronised()
    assert answer is None or (isinstance(answer[0], bool) and answer[1] >= 0)


def test_disk_thresholds_and_a_data_dir_not_made_yet(tmp_path):
    seen = []

    def usage(free_mb):
        def disk_usage(path):
            seen.append(path)
            return Usage(100_000 * MB, 0, free_mb * MB)
        return disk_usage

    assert checks.check_disk(tmp_path / "a" / "b", 1024, disk_usage=usage(5000)).status is Status.OK
    assert seen == [tmp_path]  # the nearest folder that exists
    assert checks.check_disk(tmp_path, 1024, disk_usage=usage(1500)).status is Status.WARN
    assert checks.check_disk(tmp_path, 1024, disk_usage=usage(100)).status is Status.FAIL
    assert checks.check_disk(tmp_path, 1).status is Status.OK  # the real disk


# -- planning, running, reporting ----------------------------------------------------------------------


def recording_toolkit(calls: list, tmp_path: Path) -> Toolkit:
    def record(kind):
        def check(*args, **kwargs):
            calls.append((kind, args, kwargs))
            return CheckResult(kind, Status.OK, "fine")
        return check

    return Toolkit(**{kind: record(kind) for kind in ("gpio", "camera", "model", "port", "secret", "clock",
                                                      "disk")},
                   data_dir=lambda: tmp_path)


def test_up_plans_every_check_and_reads_its_secrets(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "door-secret.json").write_text("{}")
    calls: list = []
    results = run_checks(plan_checks(DoctorOptions(parts=("up",), pin=11, pin_factory="mock"),
                                     recording_toolkit(calls, tmp_path)))
    kinds = [kind for kind, _, _ in calls]
    assert kinds == ["gpio", "camera", "model", "port", "secret", "clock", "disk"]
    assert calls[0][1] == (11, "mock")
    assert calls[2][1][0] == tmp_path / "model"
    assert calls[3][1] == ("0.0.0.0", 8000)
    assert calls[4][1] == (tmp_path / "secrets" / "door-secret.json",)
    assert exit_code(results) == 0


def test_separate_parts_plan_only_what_they_need(tmp_path):
    calls: list = []
    planned = plan_checks(DoctorOptions(parts=("door", "camera")), recording_toolkit(calls, tmp_path))
    results = run_checks(planned)
    kinds = [kind for kind, _, _ in calls]
    assert kinds == ["camera", "port", "clock", "disk"]
    # no --pin for the door: a failure that says what to pass; both default to port 80: a warning
    assert [(r.name, r.status) for r in results if r.status is not Status.OK] == [
        ("gpio", Status.FAIL), ("ports", Status.WARN)]
    assert exit_code(results) == 1

    calls.clear()
    plan = plan_checks(DoctorOptions(parts=("engine",), model=Path("/m"), ports=(9000,)),
                       recording_toolkit(calls, tmp_path))
    run_checks(plan)
    assert calls[0][0] == "model" and calls[0][2] == {"must_exist": True}
    assert ("port", ("0.0.0.0", 9000), {}) in calls

    calls.clear()  # vision: the camera and the gallery its recognition API serves, in one process
    run_checks(plan_checks(DoctorOptions(parts=("vision",), camera="/dev/video0", ports=(8081, 5000)),
                           recording_toolkit(calls, tmp_path)))
    assert [kind for kind, _, _ in calls] == ["camera", "model", "port", "port", "clock", "disk"]
    assert calls[0][1][0] == "/dev/video0" and calls[1][1][0] == tmp_path / "model"


def test_a_crashing_check_fails_alone():
    def broken():
        raise RuntimeError("boom")

    results = run_checks([broken, lambda: CheckResult("clock", Status.OK, "fine")])
    assert results[0].status is Status.FAIL and "boom" in results[0].detail
    assert results[1].status is Status.OK


def test_report_lists_fixes_for_what_is_not_ok():
    report = format_report([CheckResult("clock", Status.OK, "synchronised", "never shown"),
                            CheckResult("gpio BOARD11", Status.FAIL, "busy", "stop the door"),
                            CheckResult("disk /", Status.WARN, "low", "free space"),
                            CheckResult("clock", Status.UNKNOWN, "cannot tell")])
    assert "never shown" not in report
    assert "FAIL  gpio BOARD11  busy" in report and "fix: stop the door" in report
    assert report.splitlines()[-1] == "1 ok, 1 warning, 1 failed, 1 unknown"


def test_parts_are_checked_by_name():
    assert parse_parts("door, camera,door") == ("door", "camera")
    assert parse_parts("vision") == ("vision",)
    with pytest.raises(ConfigError, match="choose among"):
        parse_parts("door,garage")


def test_doctor_command_on_mock_pins_and_a_video(tmp_path, video, capsys):
    port = free_port()
    code = main(["doctor", "--parts", "door,camera", "--pin", "11", "--pin-factory", "mock",
                 "--camera", str(video), "--host", LOOPBACK, "--port", str(port), "--data-dir", str(tmp_path),
                 "--min-free-mb", "1"])
    out = capsys.readouterr().out
    assert code == 0, out  # the clock may only warn
    assert "ok    gpio BOARD11" in out
    assert f"ok    camera file {video}" in out
    assert f"ok    port {LOOPBACK}:{port}" in out
    assert "ok    disk" in out


def test_doctor_command_fails_on_a_missing_secret(tmp_path, capsys):
    code = main(["doctor", "--parts", "engine", "--secret-file", str(tmp_path / "door.secret"),
                 "--data-dir", str(tmp_path), "--min-free-mb", "1"])
    assert code == 1
    assert "generate-secret" in capsys.readouterr().out


def test_picamera_with_the_wrong_numpy_says_how_to_fix_it():
    def numpy_clash(spec, **size):
        raise ValueError("numpy.dtype size changed, may indicate binary incompatibility")

    result = checks.check_camera("picamera", open_source=numpy_clash)
    assert result.status is Status.FAIL and "pip install simplejpeg" in result.fix
