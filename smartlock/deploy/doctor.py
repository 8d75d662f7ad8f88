"""`smartlock doctor`: which checks the chosen parts need, running them, and the printed report."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from smartlock.deploy import checks
from smartlock.deploy.checks import CheckResult, Status
from smartlock.errors import ConfigError

ALL_PARTS = ("up", "door", "camera", "recognition", "engine", "collect", "vision")
# The ports each part listens on by default (up's own parts use free loopback ports).
DEFAULT_PORTS = {"door": 80, "camera": 80, "recognition": 5000, "up": 8000}


@dataclass(frozen=True)
class DoctorOptions:
    parts: tuple[str, ...] = ("up",)
    pin: int | None = None
    pin_factory: str = "auto"
    active_high: bool = False
    camera: str | None = None
    width: int | None = None
    height: int | None = None
    model: Path | None = None
    backend: str | None = None
    host: str = "0.0.0.0"
    ports: tuple[int, ...] = ()
    data_dir: Path | None = None
    secret_files: tuple[Path, ...] = ()
    user: str | None = None
    min_free_mb: float = 1024.0


def _default_data_dir() -> Path:
    from smartlock.config import default_data_dir

    return default_data_dir()


@dataclass(frozen=True)
class Toolkit:
    """The check functions doctor calls; tests replace the ones that touch hardware."""

    gpio: Callable[..., CheckResult] = checks.check_gpio
    camera: Callable[..., CheckResult] = checks.check_camera
    model: Callable[..., CheckResult] = checks.check_model
    port: Callable[..., CheckResult] = checks.check_port
    secret: Callable[..., CheckResult] = checks.check_secret
    clock: Callable[..., CheckResult] = checks.check_clock
    disk: Callable[..., CheckResult] = checks.check_disk
    data_dir: Callable[[], Path] = _default_data_dir


def parse_parts(text: str) -> tuple[str, ...]:
    parts = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [p for p in parts if p not in ALL_PARTS]
    if unknown or not parts:
        raise ConfigError(f"--parts {text!r}: choose among {', '.join(ALL_PARTS)} (comma-separated)")
    return parts


def plan_checks(options: DoctorOptions, toolkit: Toolkit | None = None) -> list[Callable[[], CheckResult]]:
    """The checks the chosen parts need, in the order they are printed; nothing runs yet."""
    kit = toolkit or Toolkit()
    parts = set(options.parts)
    every = "up" in parts
    data_dir = options.data_dir or kit.data_dir()
    planned: list[Callable[[], CheckResult]] = []
    add = planned.append

    if every or "door" in parts:
        if options.pin is not None:
            add(functools.partial(kit.gpio, options.pin, options.pin_factory,
                                  active_high=options.active_high))
        elif "door" in parts:
            add(_fixed("gpio", Status.FAIL, "no --pin given: the door needs the relay's pin",
                       "pass the physical (BOARD) pin the relay is wired to, e.g. --pin 11"))
        else:
            add(_fixed("gpio", Status.SKIP, "no --pin: `up` simulates the relay",
                       "on the Pi, pass the relay's BOARD pin: --pin 11"))
    if every or parts & {"camera", "vision"} or options.camera is not None:
        add(functools.partial(kit.camera, options.camera, options.width, options.height))
    if every or parts & {"recognition", "vision"}:  # vision: the recognition API's gallery, in its process
        model = options.model or data_dir / "model"
        add(functools.partial(kit.model, model, options.backend))
    elif options.model is not None:  # the engine or collector recognising in-process
        add(functools.partial(kit.model, options.model, options.backend, must_exist=True))
    for port in _ports(options, parts):
        add(functools.partial(kit.port, options.host, port))
    if not options.ports and {"door", "camera"} <= parts:
        add(_fixed("ports", Status.WARN, "door and camera both listen on port 80 by default",
                   "on one machine, give one of them another --port (and check that port here: --port N)"))
    secrets = list(options.secret_files)
    if every and (data_dir / "secrets").is_dir():
        secrets += sorted(p for p in (data_dir / "secrets").iterdir() if p.is_file())
    for path in secrets:
        add(functools.partial(kit.secret, path, owner=options.user))
    add(kit.clock)
    add(functools.partial(kit.disk, data_dir, options.min_free_mb))
    return planned


def _ports(options: DoctorOptions, parts: set[str]) -> list[int]:
    if options.ports:
        return list(dict.fromkeys(options.ports))
    return sorted({DEFAULT_PORTS[p] for p in parts if p in DEFAULT_PORTS})


def _fixed(name: str, status: Status, detail: str, fix: str = "") -> Callable[[], CheckResult]:
    return lambda: CheckResult(name, status, detail, fix)


def run_checks(planned: Sequence[Callable[[], CheckResult]]) -> list[CheckResult]:
    """Run every check; one that crashes is reported as failed and the others still run."""
    results = []
    for check in planned:
        try:
            results.append(check())
        except Exception as err:  # a bug or an unexpected library error must not hide the other checks
            name = getattr(getattr(check, "func", check), "__name__", "check").removeprefix("check_")
            results.append(CheckResult(name, Status.FAIL, f"the check itself failed: {err!r}"))
    return results


LABELS = {Status.OK: "ok", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.UNKNOWN: "??",
          Status.SKIP: "skip"}


def format_report(results: Sequence[CheckResult]) -> str:
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for result in results:
        lines.append(f"  {LABELS[result.status]:<4}  {result.name:<{width}}  {result.detail}")
        if result.fix and result.status is not Status.OK:
            lines.append(f"  {'':<4}  {'':<{width}}  fix: {result.fix}")
    counts = {status: sum(r.status is status for r in results) for status in Status}
    warns, fails = counts[Status.WARN], counts[Status.FAIL]
    summary = f"{counts[Status.OK]} ok, {warns} warning{'' if warns == 1 else 's'}, {fails} failed"
    if counts[Status.UNKNOWN]:
        summary += f", {counts[Status.UNKNOWN]} unknown"
    if counts[Status.SKIP]:
        summary += f", {counts[Status.SKIP]} skipped"
    return "\n".join([*lines, summary])


def exit_code(results: Sequence[CheckResult]) -> int:
    return 1 if any(r.status is Status.FAIL for r in results) else 0
