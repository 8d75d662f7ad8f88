"""systemd unit files for smartlock's parts: systemd's own quoting, per-part hardening, rendering.

Nothing here touches the machine: ``render_unit`` turns a ``UnitSpec`` into the text of a unit file.
What each part needs (groups, devices, restart and stop behaviour) is in ``PARTS``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from smartlock.errors import ConfigError

UNIT_PREFIX = "smartlock-"
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_USER = "smartlock"
DEFAULT_DATA_DIR = Path("/var/lib/smartlock")
# Where systemd looks for system units; a unit written elsewhere has to be `systemctl link`ed.
SEARCH_PATH = tuple(Path(p) for p in (
    "/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system", "/lib/systemd/system",
))
# RestartSteps= / RestartMaxDelaySec= (a growing restart delay) exist from systemd 254; Debian 12 and
# Raspberry Pi OS Bookworm ship 252, which would warn about them, so they are written only when known.
RESTART_STEPS_SINCE = 254

_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@+=:,./%$-]+")
_SAFE_PATH = re.compile(r"/[A-Za-z0-9_@+=:,./-]*")
_UNIT_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class Part:
    """What one part needs from systemd."""

    name: str
    summary: str
    restart: str = "on-failure"
    restart_sec: int = 5
    max_restart_sec: int = 60
    stop_timeout: int = 15
    kill_mode: str = "control-group"
    after_parts: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()


PARTS: dict[str, Part] = {
    part.name: part
    for part in (
        # The door relocks in its signal handler and again when the process ends; a door that is down
        # keeps everyone out, so it always comes back, fast, and never gives up.
        Part("door", "Door API: the strike's relay behind signed unlock requests",
             restart="always", restart_sec=1, max_restart_sec=10, stop_timeout=10),
        Part("camera", "camera served as MJPEG"),
        Part("recognition", "Face Recognition API", stop_timeout=30),
        Part("engine", "engine: recognises faces on the camera stream and unlocks the door",
             after_parts=("door", "camera", "recognition")),
        Part("collect", "data collector: saves frames for later enrollment",
             after_parts=("camera", "recognition")),
        Part("vision", "camera, recognition and engine in one process: sees faces and unlocks the door",
             stop_timeout=30, after_parts=("door",)),
        # `up` stops its parts itself, in order, locking the door before stopping it: only the main
        # process gets SIGTERM (KillMode=mixed); SIGKILL reaches every child if it takes too long.
        Part("up", "every part on this machine, with the dashboard", restart="always",
             stop_timeout=60, kill_mode="mixed",
             conflicts=("door", "camera", "recognition", "engine", "collect", "vision")),
    )
}


def unit_name(part: str) -> str:
    return f"{UNIT_PREFIX}{part}.service"


@dataclass(frozen=True)
class UnitSpec:
    """Everything a unit file says, decided by ``smartlock.deploy.install``."""

    part: Part
    command: tuple[str, ...]  # argv; command[0] is an absolute path
    user: str = DEFAULT_USER
    data_dir: Path = DEFAULT_DATA_DIR
    groups: tuple[str, ...] = ()  # supplementary groups: gpio for a real relay, video for a camera
    gpio: bool = False  # drives real GPIO: allow the gpiochip / gpiomem devices
    camera_device: bool = False  # opens a camera device: devices stay visible (libcamera needs several)
    read_write: tuple[Path, ...] = ()  # writable besides the data dir
    read_only_home: bool = False  # something the part reads or writes lives under /home, /root
    low_port: bool = False  # listens below 1024: needs CAP_NET_BIND_SERVICE
    env_file: Path | None = None
    systemd_version: int | None = None
    notes: tuple[str, ...] = field(default=())  # comment lines at the top (e.g. --no-auth)


def quote_exec_arg(arg: str) -> str:
    """``arg`` written for ExecStart= so that systemd passes exactly ``arg`` to the program.

    systemd splits ExecStart= on whitespace, undoes "double"/'single' quotes and C escapes, replaces
    %-specifiers when loading and $VARIABLES when starting, and treats an unquoted lone ``;`` as a
    command separator. So ``%`` and ``$`` are doubled always, and any word that is not plain goes in
    double quotes with backslash escapes. This is not shell quoting: shlex.quote's 'x' leaves $ alone.
    """
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if escaped and _PLAIN_WORD.fullmatch(escaped):
        return escaped
    body = []
    for char in escaped:
        if char in '\\"':
            body.append("\\" + char)
        elif char == "\n":
            body.append("\\n")
        elif char == "\t":
            body.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            body.append(f"\\x{ord(char):02x}")
        else:
            body.append(char)
    return '"' + "".join(body) + '"'


def exec_line(argv: tuple[str, ...] | list[str]) -> str:
    if not argv or not argv[0].startswith("/"):
        raise ConfigError(f"ExecStart= needs an absolute program path, not {argv[:1]}")
    return " ".join(quote_exec_arg(arg) for arg in argv)


def unit_path(path: Path, what: str) -> str:
    """A path for a directive other than ExecStart=: absolute and made of characters that need no
    quoting (systemd would read spaces as separators and % as a specifier)."""
    text = str(path)
    if not _SAFE_PATH.fullmatch(text):
        raise ConfigError(
            f"{what} {text!r}: a path in a unit must be absolute and use only letters, digits and _@+=:,./-"
        )
    return text


def check_user_name(name: str) -> str:
    if not _UNIT_USER.fullmatch(name) or name == "root":
        raise ConfigError(f"--user {name!r}: name a dedicated system user (not root), e.g. smartlock")
    return name


def systemd_version(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> int | None:
    """The installed systemd's version from `systemctl --version` ("systemd 252 (...)"), None if unknown."""
    try:
        result = run(["systemctl", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"systemd (\d+)", result.stdout or "")
    return int(match.group(1)) if match else None


def render_unit(spec: UnitSpec) -> str:
    """The text of ``smartlock-PART.service`` for ``spec``."""
    part = spec.part
    data_dir = unit_path(spec.data_dir, "--data-dir")
    lines = [
        f"# Written by `smartlock service install {part.name}`: run that command again to change it.",
        *(f"# {note}" for note in spec.notes),
        "[Unit]",
        f"Description=smartlock {part.name}: {part.summary}",
        "Wants=network-online.target",
    ]
    after = ["network-online.target"]
    if spec.gpio or spec.camera_device:
        # Device nodes of built-in hardware exist once udev has been triggered and modules loaded; a
        # device that shows up later is picked up by the restart below.
        after += ["systemd-udev-trigger.service", "systemd-modules-load.service"]
    after += [unit_name(name) for name in part.after_parts]
    lines.append("After=" + " ".join(after))
    if part.conflicts:
        lines.append("Conflicts=" + " ".join(unit_name(name) for name in part.conflicts))
    lines.append("StartLimitIntervalSec=0")  # keep retrying with the delay below, never give up
    lines += ["", "[Service]", "Type=exec", f"User={check_user_name(spec.user)}"]
    if spec.groups:
        lines.append("SupplementaryGroups=" + " ".join(spec.groups))
    lines.append(f"ExecStart={exec_line(spec.command)}")
    lines += _data_dir_lines(spec, data_dir)
    lines += [f"Environment=SMARTLOCK_DATA_DIR={data_dir}", "Environment=PYTHONUNBUFFERED=1"]
    if spec.env_file is not None:
        lines.append(f"EnvironmentFile={unit_path(spec.env_file, '--env-file')}")
    lines += [f"Restart={part.restart}", f"RestartSec={part.restart_sec}"]
    if spec.systemd_version is not None and spec.systemd_version >= RESTART_STEPS_SINCE:
        lines += ["RestartSteps=5", f"RestartMaxDelaySec={part.max_restart_sec}"]
    lines += [
        "KillSignal=SIGTERM",  # the parts stop cleanly on SIGTERM; the door locks before it exits
        f"KillMode={part.kill_mode}",
        f"TimeoutStopSec={part.stop_timeout}",
        "",
        *_sandbox_lines(spec),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def _data_dir_lines(spec: UnitSpec, data_dir: str) -> list[str]:
    lines = []
    if spec.data_dir.parent == Path("/var/lib"):
        # systemd creates /var/lib/NAME owned by the user, and keeps it writable under ProtectSystem=strict.
        lines += [f"StateDirectory={spec.data_dir.name}", "StateDirectoryMode=0700"]
    # The working directory is the data dir: relative defaults (recognition's `model`, the engine's `log`)
    # land there, and lgpio creates its notification pipes (.lgd-nfy*) in the current directory.
    lines.append(f"WorkingDirectory={data_dir}")
    return lines


def _sandbox_lines(spec: UnitSpec) -> list[str]:
    writable = list(spec.read_write)
    if spec.data_dir.parent != Path("/var/lib"):
        writable.insert(0, spec.data_dir)
    lines = [
        "UMask=0077",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ProtectHome={'read-only' if spec.read_only_home else 'yes'}",
    ]
    if writable:
        lines.append("ReadWritePaths=" + " ".join(unit_path(p, "writable path") for p in writable))
    lines += [
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectHostname=yes",
        "ProtectProc=invisible",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RemoveIPC=yes",
    ]
    if spec.camera_device:
        # libcamera (picamera2) watches udev over netlink; /dev/video*, /dev/media* and /dev/dma_heap/*
        # differ between Pi models, so the devices stay visible and the video group grants access.
        lines.append("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK")
    else:
        lines.append("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6")
    if spec.gpio and not spec.camera_device:
        # lgpio opens /dev/gpiochipN; RPi.GPIO and the native factory map /dev/gpiomem (Pi 5: gpiomem0..4).
        lines += ["DevicePolicy=closed", "DeviceAllow=char-gpiochip rw", "DeviceAllow=char-*gpiomem* rw"]
    elif not spec.gpio and not spec.camera_device:
        lines += ["PrivateDevices=yes", "ProtectClock=yes"]
    lines += ["SystemCallFilter=@system-service", "SystemCallErrorNumber=EPERM"]
    if spec.low_port:
        lines += ["CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE"]
    else:
        lines.append("CapabilityBoundingSet=")
    return lines
