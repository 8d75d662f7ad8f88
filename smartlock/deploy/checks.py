"""The checks `smartlock doctor` runs: each looks at one thing and says what to do when it is wrong.

Every check returns a ``CheckResult`` and takes what it touches (pin factory, camera opener, clock
readers, disk usage, socket binder) as keyword arguments with working defaults, so tests hand in fakes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import pwd
import shutil
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from smartlock.errors import SmartlockError


class Status(Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"  # the check could not tell; never a failure
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    fix: str = ""


APT_HINT = "a venv made with `python3 -m venv --system-site-packages` sees Raspberry Pi OS's apt packages"


def on_a_pi(model_file: Path = Path("/proc/device-tree/model")) -> bool:
    try:
        return "raspberry pi" in model_file.read_text(encoding="ascii", errors="replace").lower()
    except OSError:
        return False


# -- GPIO --------------------------------------------------------------------------------------------


def check_gpio(pin: int, factory: str = "auto", *, active_high: bool = False, pin_factory: Any = None,
               make_factory: Callable[[str], Any] | None = None, relay_class: Any = None) -> CheckResult:
    """Claim ``pin`` the way the door does (relay starts locked), read it back, release it.

    ``pin_factory`` (an object) is used as is and left open; otherwise ``make_factory(factory)`` builds one.
    """
    from smartlock.door.relay import Relay, make_pin_factory

    name = f"gpio BOARD{pin}"
    relay_class = relay_class or Relay
    owned = None
    try:
        if pin_factory is None:
            pin_factory = owned = (make_factory or make_pin_factory)(factory)
        relay = relay_class(pin, active_high=active_high, pin_factory=pin_factory)
        try:
            level, gpio, factory_name = relay.level, relay.gpio_name, relay.factory_name
        finally:
            relay.close()
    except SmartlockError as err:
        return CheckResult(name, Status.FAIL, str(err), _gpio_fix(str(err)))
    finally:
        if owned is not None and hasattr(owned, "close"):
            owned.close()
    simulated = " (simulated)" if factory_name == "MockFactory" else ""
    return CheckResult(name, Status.OK, f"{gpio} free on {factory_name}{simulated}; "
                       f"claimed locked (pin {level}) and released")


def _gpio_fix(message: str) -> str:
    if "in use" in message.lower() or "busy" in message.lower():
        return ("another program holds the pin: stop it (`sudo systemctl stop smartlock-door`) "
                "or use another pin")
    if ".lgd-nfy" in message:
        return ("lgpio creates pipes in the current directory: run from a writable folder "
                "(the service's WorkingDirectory is its data dir)")
    if "--pin must" in message or "cannot drive the relay" in message:
        return "choose a GPIO pin of the 40-pin header by its physical (BOARD) number, e.g. 11"
    if on_a_pi():
        return ("sudo apt install python3-lgpio, and " + APT_HINT +
                "; your user must be in the gpio group (`sudo adduser $USER gpio`)")
    return "off a Raspberry Pi only the simulated relay works: --pin-factory mock"


# -- camera ------------------------------------------------------------------------------------------


def check_camera(spec: str | None, width: int | None = None, height: int | None = None, fps: float = 24.0,
                 *, frames: int = 5, timeout: float = 15.0, open_source: Callable[..., Any] | None = None
                 ) -> CheckResult:
    """Open the source as `smartlock camera` would, read ``frames`` frames, compare their size."""
    from smartlock.camera.sources import camera_size
    from smartlock.camera.sources import open_source as default_open

    name = f"camera {spec or '(default)'}"
    try:
        source = (open_source or default_open)(spec, width=width, height=height, fps=fps)
    except Exception as err:  # picamera2 and OpenCV raise their own errors, not only CameraError
        return CheckResult(name, Status.FAIL, str(err) or repr(err), _camera_fix(spec, str(err)))
    sizes: list[tuple[int, int]] = []
    failure: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(frames):
                sizes.append(_frame_size(source.read()))
        except BaseException as err:  # reported below, whatever the source raised
            failure.append(err)

    started = time.monotonic()
    reader = threading.Thread(target=read, name="doctor-camera", daemon=True)
    reader.start()
    reader.join(timeout)
    elapsed = time.monotonic() - started
    if reader.is_alive():
        source.interrupt()
        reader.join(2.0)  # let a pacing sleep end before the capture is released under it
    source.close()
    if failure or len(sizes) < frames:
        why = str(failure[0]) if failure else f"{len(sizes)} of {frames} frames within {timeout:g} s"
        return CheckResult(f"camera {source.name}", Status.FAIL, f"opened, but no frames: {why}",
                           _camera_fix(spec, why))
    name = f"camera {source.name}"
    got = sizes[-1]
    rate = f"{(frames - 1) / elapsed:.1f} fps" if elapsed > 0 and frames > 1 else "1 frame"
    if source.resizes_itself:  # a camera was asked for a size; it may answer with its nearest mode
        wanted = camera_size(width, height)
        if got != wanted:
            detail = f"delivers {got[0]}x{got[1]}, not the {wanted[0]}x{wanted[1]} asked for ({rate})"
            return CheckResult(name, Status.WARN, detail,
                               "pass a --width/--height the camera supports (`v4l2-ctl --list-formats-ext`)")
        return CheckResult(name, Status.OK, f"{frames} frames at {got[0]}x{got[1]} ({rate})")
    scaled = ""
    if width or height:
        scaled = f", served scaled to {_scaled(got, width, height)}"
    return CheckResult(name, Status.OK, f"{frames} frames at {got[0]}x{got[1]}{scaled} ({rate})")


def _frame_size(frame: Any) -> tuple[int, int]:
    if frame.image is not None:
        return int(frame.image.shape[1]), int(frame.image.shape[0])
    from smartlock.camera.mjpeg import jpeg_size

    size = jpeg_size(frame.jpeg) if frame.jpeg is not None else None
    if size is None:
        raise SmartlockError("a frame was neither an image nor a readable JPEG")
    return int(size[0]), int(size[1])


def _scaled(size: tuple[int, int], width: int | None, height: int | None) -> str:
    if width and height:
        return f"{width}x{height}"
    if width:
        return f"{width}x{max(1, round(size[1] * width / size[0]))}"
    assert height
    return f"{max(1, round(size[0] * height / size[1]))}x{height}"


def _camera_fix(spec: str | None, message: str = "") -> str:
    if "numpy.dtype size changed" in message:
        # Raspberry Pi OS's simplejpeg (pulled by picamera2) is built for Debian's numpy 1.24; the venv
        # has numpy 2 (raspberrypi/picamera2#1211)
        return "install simplejpeg into the venv: `.venv/bin/pip install simplejpeg`"
    if spec is None or spec == "picamera":
        return ("Pi camera: sudo apt install python3-picamera2, " + APT_HINT +
                "; check the ribbon cable and `rpicam-hello --list-cameras`. USB: --camera /dev/video0")
    if spec.isdigit() or spec.startswith("/dev/"):
        return "check the device exists (`ls /dev/video*`) and that your user is in the video group"
    if "://" in spec:
        return "check the URL opens in a browser from this machine (and its token)"
    return "check the file or folder exists and holds a video or images OpenCV can read"


# -- model -------------------------------------------------------------------------------------------


def weight_files(backend: str) -> dict[str, tuple[Path, str | None]]:
    """The weights ``backend`` would load, keyed as its model_hashes() keys them, with the expected
    sha256 (None for user-supplied files, which are recorded, not checked). Raises SmartlockError."""
    from smartlock.recognition.backends.weights import package_dir

    if backend == "arcface":
        from smartlock.recognition.backends import arcface as a

        files = {}
        for role, variable, file_name in (("detector", "SMARTLOCK_ARCFACE_DETECTOR", a.DETECTOR_FILE),
                                          ("embedder", "SMARTLOCK_ARCFACE_EMBEDDER", a.EMBEDDER_FILE)):
            own = os.environ.get(variable)
            path = Path(own) if own else package_dir(
                a.WEIGHTS_PACKAGE, "the arcface backend's weights", a.WEIGHTS_INSTALL) / "model" / file_name
            files[f"{role}:{path.name}"] = (path, None if own else a.KNOWN_SHA256[file_name])
        return files
    if backend == "dlib":
        from smartlock.recognition.backends import dlib as d

        folder = package_dir(d.WEIGHTS_PACKAGE, "the dlib backend's weights", d.WEIGHTS_INSTALL) / "models"
        return {name: (folder / name, d.KNOWN_SHA256[name]) for name in (d.PREDICTOR_FILE, d.DESCRIPTOR_FILE)}
    raise SmartlockError(f"unknown recognition backend {backend!r}")


def _load_gallery(model_dir: Path) -> Any:
    from smartlock.recognition.store import load_gallery

    return load_gallery(model_dir)


RUNTIMES = {"arcface": ("onnxruntime", "pip install onnxruntime"),
            "dlib": ("dlib", "pip install 'smartlock[dlib]'")}


def check_model(model_dir: Path, backend: str | None = None, *, must_exist: bool = False,
                load_gallery: Callable[[Path], Any] | None = None,
                find_module: Callable[[str], Any] | None = None,
                files: Callable[[str], dict[str, tuple[Path, str | None]]] = weight_files) -> CheckResult:
    """The gallery in ``model_dir`` is whole, and the weights of its backend pass their sha256 check.

    Without a gallery only the weights are checked, unless ``must_exist`` (the engine's --model)."""
    import importlib.util

    from smartlock.recognition.backends.weights import read_verified

    name = f"model {model_dir}"
    gallery = None
    if (Path(model_dir) / "gallery.json").is_file():
        try:
            gallery = (load_gallery or _load_gallery)(Path(model_dir))
        except SmartlockError as err:
            return CheckResult(name, Status.FAIL, str(err),
                               "retrain (`smartlock train`) or restore the folder")
        backend = gallery.backend
    elif must_exist:
        return CheckResult(name, Status.FAIL, "no trained model here (gallery.json is missing)",
                           "train one: `smartlock train -d PHOTOS -o MODEL_DIR`, or copy it from the "
                           "machine that has it")
    backend = backend or "arcface"
    runtime, install = RUNTIMES.get(backend, (None, ""))
    if runtime and (find_module or importlib.util.find_spec)(runtime) is None:
        return CheckResult(name, Status.FAIL, f"the {backend} backend needs {runtime} (not installed)",
                           install)
    try:
        hashes = {key: read_verified(path, expected)[1] for key, (path, expected) in files(backend).items()}
    except SmartlockError as err:
        return CheckResult(name, Status.FAIL, str(err), "reinstall the package that ships the weights")
    if gallery is not None and gallery.model_hashes != hashes:
        return CheckResult(name, Status.FAIL, f"the gallery was made with other {backend} weights than the "
                           "installed ones", "install the weights it was made with, or retrain")
    people = "no gallery yet (an empty one is made at first start)" if gallery is None else \
        f"{len(set(r.person for r in gallery.records))} people, {len(gallery.records)} photos"
    return CheckResult(name, Status.OK, f"{backend} weights verified (sha256); {people}")


# -- ports, secrets, clock, disk ---------------------------------------------------------------------


def try_bind(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))


def check_port(host: str, port: int, *, bind: Callable[[str, int], None] = try_bind) -> CheckResult:
    name = f"port {host}:{port}"
    try:
        bind(host, port)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            return CheckResult(name, Status.FAIL, "in use by another program",
                               f"find it with `sudo ss -ltnp 'sport = :{port}'`; stop it, "
                               "or choose another --port")
        if err.errno == errno.EACCES and port < 1024:
            return CheckResult(name, Status.WARN, "ports below 1024 need root or CAP_NET_BIND_SERVICE",
                               "the unit of `smartlock service install` grants the capability; "
                               "by hand, use a port from 1024")
        return CheckResult(name, Status.FAIL, f"cannot listen: {err.strerror or err}",
                           "check --host is an address of this machine")
    return CheckResult(name, Status.OK, "free")


def check_secret(path: Path, *, owner: str | None = None) -> CheckResult:
    """A secret file exists, is readable by its owner only, and (``owner``) belongs to the service user."""
    name = f"secret {path}"
    try:
        info = Path(path).stat()
    except FileNotFoundError:
        return CheckResult(name, Status.FAIL, "missing",
                           "create it (door: `smartlock door --generate-secret FILE`; others: a random "
                           "token, e.g. `openssl rand -hex 32 > FILE`), then chmod 600 it")
    except OSError as err:
        return CheckResult(name, Status.FAIL, f"cannot be read: {err.strerror or err}",
                           "run doctor as the user the service runs as (or with sudo)")
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISREG(info.st_mode):
        return CheckResult(name, Status.FAIL, "not a regular file", "point to the file holding the secret")
    if mode & (stat.S_IRWXO):
        return CheckResult(name, Status.FAIL, f"mode {mode:04o}: every user can read it", f"chmod 600 {path}")
    if owner is not None:
        try:
            uid = pwd.getpwnam(owner).pw_uid
        except KeyError:
            uid = None
        if uid is not None and info.st_uid != uid:
            return CheckResult(name, Status.FAIL, f"owned by uid {info.st_uid}, not by {owner}",
                               f"sudo chown {owner}: {path}")
    if mode & stat.S_IRWXG:
        return CheckResult(name, Status.WARN, f"mode {mode:04o}: its group can read it", f"chmod 600 {path}")
    return CheckResult(name, Status.OK, f"mode {mode:04o}")


TIME_ERROR = 5  # adjtimex(2) state: the clock is not synchronised
STA_UNSYNC = 0x0040


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
                ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
                ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
                ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11)]


def kernel_clock_synchronised() -> tuple[bool, float] | None:
    """What the kernel says (adjtimex(2) with modes=0, a read any user may do): synchronised, and the
    maximum error in seconds; None when it cannot be asked. NTP daemons (systemd-timesyncd, chrony,
    ntpd) keep this state."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR and not timex.status & STA_UNSYNC, timex.maxerror / 1e6


def check_clock(*, synced_flag: Path = Path("/run/systemd/timesync/synchronized"),
                kernel: Callable[[], tuple[bool, float] | None] = kernel_clock_synchronised) -> CheckResult:
    name = "clock"
    fix = ("enable network time: `sudo timedatectl set-ntp true` (systemd-timesyncd), and let the machine "
           "reach an NTP server; the door refuses unlocks signed more than 30 s away from its own clock")
    if synced_flag.exists():
        return CheckResult(name, Status.OK, "synchronised (systemd-timesyncd)")
    answer = kernel()
    if answer is None:
        return CheckResult(name, Status.UNKNOWN, "cannot tell whether the clock is synchronised", fix)
    synced, max_error = answer
    if synced:
        return CheckResult(name, Status.OK, f"synchronised (kernel; max error {max_error * 1000:.0f} ms)")
    return CheckResult(name, Status.WARN, "the kernel says the clock is not synchronised", fix)


def check_disk(path: Path, min_free_mb: float = 1024.0, *,
               disk_usage: Callable[[Path], Any] = shutil.disk_usage) -> CheckResult:
    """Free space where the data dir is (or will be): unlock frames, collected frames and events."""
    existing = Path(path).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    usage = disk_usage(existing)
    free_mb = usage.free / 2**20
    name = f"disk {path}"
    detail = f"{free_mb:,.0f} MB free of {usage.total / 2**20:,.0f} MB"
    fix = "free some space or choose a --data-dir on a larger disk"
    if free_mb < min_free_mb:
        return CheckResult(name, Status.FAIL, f"{detail}; need {min_free_mb:,.0f} MB", fix)
    if free_mb < 2 * min_free_mb:
        return CheckResult(name, Status.WARN, f"{detail}; keep at least {min_free_mb:,.0f} MB", fix)
    return CheckResult(name, Status.OK, detail)
