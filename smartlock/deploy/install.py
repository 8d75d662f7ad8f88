"""`smartlock service install|uninstall`: turn a part's command line into a hardened systemd unit.

The part's own flags are parsed by the real `smartlock` parser before anything is written, so a unit
never holds a command line that would fail at boot. Secrets stay in files named by path: a flag that
carries a secret's value is refused, because a unit file and /proc/PID/cmdline are readable by all.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import smartlock
from smartlock.deploy.checks import Status, check_secret
from smartlock.deploy.systemd import (
    DEFAULT_DATA_DIR,
    DEFAULT_UNIT_DIR,
    DEFAULT_USER,
    PARTS,
    SEARCH_PATH,
    UnitSpec,
    check_user_name,
    render_unit,
    unit_name,
)
from smartlock.errors import ConfigError

SECRET_WORDS = ("key", "secret", "token", "password")
PATH_FLAGS = frozenset({"tls_key", "tls_cert"})  # paths despite their names
NO_AUTH_RISK = {
    "door": "accepts UNSIGNED unlock requests: anyone on the network could open the door. "
    "Use --secret-file FILE",
    "recognition": "lets anyone on the network enroll a face and then walk in. "
    "Use --api-key-file FILE or the generated key",
    "camera": "shows the camera to anyone on the network and stops signing its frames. Use --token-file FILE "
    "or the generated token",
}
# str-typed flags that may name a file (the Path-typed ones are found by their type)
PATH_LIKE = {"source", "camera", "haar_file_path", "camera_url"}
# flags whose path the part writes to: the folder itself, or the folder of the file
WRITES = {"events_db": "parent", "log_path": "dir", "data_dir": "dir"}
HOME_ROOTS = (Path("/home"), Path("/root"), Path("/run/user"))
GPIO_FACTORIES = ("auto", "lgpio", "rpigpio", "native")  # pigpio talks to its daemon over TCP


@dataclass(frozen=True)
class InstallRequest:
    part: str
    flags: tuple[str, ...] = ()
    unit_dir: Path = DEFAULT_UNIT_DIR
    user: str = DEFAULT_USER
    data_dir: Path | None = None
    env_file: Path | None = None
    allow_no_auth: bool = False


@dataclass(frozen=True)
class Plan:
    spec: UnitSpec
    path: Path
    text: str
    warnings: tuple[str, ...]


def _real_parser() -> argparse.ArgumentParser:
    from smartlock.cli import build_parser

    return build_parser()


def _subparser(parser: argparse.ArgumentParser, part: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[part]
    raise ConfigError("the smartlock parser has no sub-commands")  # pragma: no cover


def parse_part_flags(part: str, flags: Sequence[str],
                     parser_factory: Callable[[], argparse.ArgumentParser] = _real_parser,
                     ) -> tuple[argparse.Namespace, dict[str, Any], list[argparse.Action]]:
    """Parse ``smartlock PART FLAGS`` with the real parser: the full namespace, the options that were
    actually given (dest -> value), and the part's actions. ConfigError when the flags are invalid."""
    try:
        namespace = parser_factory().parse_args([part, *flags])
    except SystemExit:  # argparse has printed the usage and the reason
        raise ConfigError(f"these flags are not valid for `smartlock {part}` (see above)") from None
    sub = _subparser(parser_factory(), part)
    actions = [a for a in sub._actions if a.dest != argparse.SUPPRESS]
    for action in actions:
        action.default = argparse.SUPPRESS
    dests = {a.dest for a in actions}
    given = {k: v for k, v in vars(sub.parse_args(list(flags))).items() if k in dests}
    return namespace, given, actions


def _flag(action: argparse.Action) -> str:
    return max(action.option_strings, key=len) if action.option_strings else action.dest


def _refuse_unsafe_flags(part: str, given: dict[str, Any], actions: list[argparse.Action],
                         allow_no_auth: bool) -> list[str]:
    notes = []
    for action in actions:
        if action.dest not in given:
            continue
        if action.dest == "generate_secret":
            raise ConfigError("--generate-secret is a one-off command: run `smartlock door --generate-secret "
                              "FILE` once by hand, then install the door with --secret-file FILE")
        secret_word = any(w in action.dest for w in SECRET_WORDS)
        if action.nargs != 0 and secret_word and not action.dest.endswith("_file") \
                and action.dest not in PATH_FLAGS:
            hint = ("put the key in a file only the service user can read (chmod 600) and pass "
                    "--face-recognition-api-key-file FILE" if action.dest == "face_recognition_api_key"
                    else "pass the secret in a file (a --*-file flag)")
            raise ConfigError(f"{_flag(action)} puts a secret on the command line, where every user of the "
                              f"machine can read it (ps, /proc, the unit file): {hint}")
    if given.get("no_auth"):
        if not allow_no_auth:
            raise ConfigError(
                f"`smartlock {part} --no-auth` {NO_AUTH_RISK.get(part, 'turns authentication off')}; "
                "to install it anyway, add --allow-no-auth"
            )
        notes.append(f"WARNING: --no-auth: `smartlock {part}` "
                     f"{NO_AUTH_RISK.get(part, 'turns authentication off').split('. Use')[0]}.")
    return notes


def _check_paths(given: dict[str, Any], actions: list[argparse.Action]) -> list[Path]:
    """Every path the flags name; relative ones are refused (a service does not run in this folder)."""
    paths = []
    for action in actions:
        if action.dest not in given or given[action.dest] is None:
            continue
        value = given[action.dest]
        is_path = action.type is Path or (action.dest in PATH_LIKE and _looks_like_path(str(value)))
        if not is_path:
            continue
        path = Path(value)
        if not path.is_absolute():
            raise ConfigError(f"{_flag(action)} {value}: a service does not run in this folder; give an "
                              f"absolute path ({Path(value).absolute()})")
        paths.append(path)
    return paths


def _looks_like_path(value: str) -> bool:
    return not ("://" in value or value.isdigit() or value == "picamera") and bool(value)


def _is_camera_device(source: str | None) -> bool:
    return source is None or source == "picamera" or source.isdigit() or source.startswith("/dev/")


def _under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def plan_install(
    request: InstallRequest,
    *,
    python: str | None = None,
    systemd_version: int | None = None,
    parser_factory: Callable[[], argparse.ArgumentParser] = _real_parser,
    user_exists: Callable[[str], bool] | None = None,
    group_exists: Callable[[str], bool] | None = None,
) -> Plan:
    """Decide the unit for ``request``; nothing is written. ConfigError for what must not be installed."""
    if request.part not in PARTS:
        raise ConfigError(f"unknown part {request.part!r}; choose one of: {', '.join(PARTS)}")
    part = PARTS[request.part]
    user = check_user_name(request.user)
    namespace, given, actions = parse_part_flags(part.name, request.flags, parser_factory)
    notes = _refuse_unsafe_flags(part.name, given, actions, request.allow_no_auth)
    if part.name == "door":
        if namespace.pin is None:
            raise ConfigError("the door needs --pin: the physical (BOARD) pin that drives the relay")
        if not namespace.no_auth and namespace.secret_file is None:
            raise ConfigError("the door needs --secret-file FILE (create it once with "
                              "`smartlock door --generate-secret FILE`)")
    named_paths = _check_paths(given, actions)
    data_dir = _data_dir(request, given)

    writable = []
    for dest, how in WRITES.items():
        if dest in given and given[dest] is not None and not (part.name == "up" and dest == "data_dir"):
            path = Path(given[dest])
            writable.append(path.parent if how == "parent" else path)
    if part.name in ("recognition", "vision") and "model" in given:
        writable.append(Path(given["model"]))  # enrollment writes the gallery; the engine only reads it
    writable = [p for p in dict.fromkeys(writable) if not _under(p, [data_dir])]

    gpio = camera_device = False
    if part.name == "door":
        gpio = namespace.pin_factory in GPIO_FACTORIES
    elif part.name in ("camera", "vision"):
        camera_device = _is_camera_device(namespace.source)
    elif part.name == "up":  # up's flags are absent when not given (its saved settings apply then)
        gpio = getattr(namespace, "pin", None) is not None
        camera_device = _is_camera_device(getattr(namespace, "camera", None))
    groups = tuple(g for g, needed in (("gpio", gpio), ("video", camera_device)) if needed)

    python = python or str(Path(sys.executable).absolute())
    install_dirs = [Path(sys.prefix), Path(smartlock.__file__).resolve().parent.parent, Path(python).parent]
    env_file = request.env_file
    if env_file is not None and not env_file.is_absolute():
        raise ConfigError(f"--env-file {env_file}: give an absolute path ({env_file.absolute()})")
    read_paths = [*install_dirs, *named_paths, *([env_file] if env_file else [])]
    in_home = [p for p in dict.fromkeys([*read_paths, *writable, data_dir]) if _under(p, HOME_ROOTS)]

    spec = UnitSpec(
        part=part,
        command=(python, "-m", "smartlock", part.name, *request.flags),
        user=user,
        data_dir=data_dir,
        groups=groups,
        gpio=gpio,
        camera_device=camera_device,
        read_write=tuple(writable),
        read_only_home=bool(in_home),
        low_port=getattr(namespace, "port", 1024) < 1024,
        env_file=env_file,
        systemd_version=systemd_version,
        notes=tuple(notes),
    )
    warnings = list(notes)
    warnings += _warnings(spec, given, in_home, writable, user_exists or _user_exists,
                          group_exists or _group_exists)
    path = request.unit_dir.absolute() / unit_name(part.name)
    return Plan(spec=spec, path=path, text=render_unit(spec), warnings=tuple(warnings))


def _data_dir(request: InstallRequest, given: dict[str, Any]) -> Path:
    own = Path(given["data_dir"]) if request.part == "up" and given.get("data_dir") else None
    if own is not None and request.data_dir is not None and own != request.data_dir:
        raise ConfigError(f"`up --data-dir {own}` and the service's --data-dir {request.data_dir} differ: "
                          "give one")
    data_dir = own or request.data_dir or DEFAULT_DATA_DIR
    if not data_dir.is_absolute():
        raise ConfigError(f"--data-dir {data_dir}: give an absolute path ({data_dir.absolute()})")
    return data_dir


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _warnings(spec: UnitSpec, given: dict[str, Any], in_home: list[Path], writable: list[Path],
              user_exists: Callable[[str], bool], group_exists: Callable[[str], bool]) -> list[str]:
    warnings = []
    for path in in_home:
        warnings.append(f"{path} is under a home folder: the unit keeps homes read-only, and the user "
                        f"{spec.user} cannot read a private (0700) home; install under /opt/smartlock")
    for group in spec.groups:
        if not group_exists(group):
            warnings.append(f"the group {group} does not exist on this machine: the unit will not start "
                            "(Raspberry Pi OS has it; elsewhere simulate the relay with --pin-factory mock)")
    owner = spec.user if user_exists(spec.user) else None
    secret_files = [Path(v) for k, v in given.items()
                    if k.endswith("_file") and any(w in k for w in SECRET_WORDS) and v is not None]
    if spec.env_file is not None:
        secret_files.append(spec.env_file)
    for path in secret_files:
        result = check_secret(path, owner=owner)
        if result.status is not Status.OK:
            warnings.append(f"{result.name}: {result.detail}; fix: {result.fix}")
    for key in sorted(PATH_LIKE & given.keys()):
        if "token=" in str(given[key]):
            warnings.append(f"the {key.replace('_', '-')} URL carries a token: every user of this machine "
                            "can read it (ps, systemctl show); keep this machine's accounts trusted")
    for path in writable:
        if not path.is_dir():
            warnings.append(f"{path} must exist before the service starts (systemd makes it writable): "
                            f"sudo install -d -o {spec.user} -m 0700 {path}")
    return warnings


def next_steps(plan: Plan, *, user_exists: Callable[[str], bool] = _user_exists,
               is_root: bool | None = None) -> list[str]:
    """The commands that enable and start the unit just written."""
    sudo = "" if (os.geteuid() == 0 if is_root is None else is_root) else "sudo "
    name = plan.path.name
    steps = []
    if not user_exists(plan.spec.user):
        steps.append(f"{sudo}useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "
                     f"{plan.spec.user}")
    if plan.path.parent.resolve() not in [p.resolve() for p in SEARCH_PATH]:
        steps.append(f"{sudo}systemctl link {plan.path}")
    steps += [f"{sudo}systemctl daemon-reload", f"{sudo}systemctl enable --now {name}",
              f"systemctl status {name}; journalctl -u {name} -f"]
    return steps


def write_unit(plan: Plan) -> None:
    from smartlock.fileio import atomic_write

    try:
        atomic_write(plan.path, plan.text.encode("utf-8"), mode=0o644)
    except PermissionError as err:
        raise ConfigError(f"cannot write {plan.path} ({err.strerror}): run the command with sudo") from err


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def unit_active(name: str) -> bool:
    """Whether systemd runs the unit now (False where systemd is not the init system)."""
    if not systemd_running():
        return False
    try:
        result = subprocess.run(["systemctl", "is-active", "--quiet", name], timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def uninstall(part: str, unit_dir: Path = DEFAULT_UNIT_DIR, *,
              is_active: Callable[[str], bool] = unit_active) -> list[Path]:
    """Remove ``smartlock-PART.service`` and its enablement links; refuses while it runs."""
    if part not in PARTS:
        raise ConfigError(f"unknown part {part!r}; choose one of: {', '.join(PARTS)}")
    name = unit_name(part)
    if is_active(name):
        raise ConfigError(f"{name} is running: stop it first with `sudo systemctl disable --now {name}`")
    removed = []
    candidates = [unit_dir / name, *sorted(unit_dir.glob(f"*.wants/{name}"))]
    for path in candidates:
        if path.is_symlink() or path.exists():
            try:
                path.unlink()
            except PermissionError as err:
                raise ConfigError(f"cannot remove {path} ({err.strerror}): run it with sudo") from err
            removed.append(path)
    return removed


