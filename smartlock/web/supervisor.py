"""Runs the parts of `smartlock up` as child processes: ordered start, restart with backoff, ordered stop.

One monitor thread owns every child: it starts them (waiting for each to answer its health URL before
starting the next), restarts one that exits with a growing delay, and on stop ends them in reverse order
(the door last), calling a child's ``before_stop`` hook first (the door is locked before it is stopped).
Children run in their own session, so a Ctrl-C in the terminal reaches only `up`, which stops them in
order; on Linux they also get SIGTERM if `up` itself dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import httpx

from smartlock.logs import redact_url

logger = logging.getLogger("smartlock.up")  # the name `up` prints its own lines under, too

def redact(line: str) -> str:
    """A child's output line with any secret it quotes in a URL masked (children never get secrets in
    their argv, but an upstream camera URL given by a user may carry one)."""
    return redact_url(line)


@dataclass
class ChildSpec:
    """How to run one part: the command, where it answers when ready, how to stop it."""

    name: str
    argv: list[str]
    health_url: str | None = None
    env: dict[str, str] | None = None
    ready_timeout: float = 60.0
    stop_timeout: float = 10.0
    settle: float = 1.5  # without a health URL: ready once it has run this long
    before_stop: Callable[[], None] | None = None
    echo: Callable[[str], bool] | None = None  # which output lines reach the terminal (default: all)


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen | None = None
    state: str = "waiting"  # waiting | starting | running | restarting | stopped
    restarts: int = 0
    started_at: float = 0.0
    next_start: float = 0.0
    backoff: float = 0.0
    last_exit: int | None = None
    output: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    reader: threading.Thread | None = None


@dataclass
class ApplyResult:
    """What ``Supervisor.apply`` did: the parts restarted with their new command lines, or why not."""

    ok: bool
    restarted: list[str]
    failed: str | None = None  # the part that did not come up with its new command line
    reason: str | None = None  # its exit code and last output
    reverted: bool = True  # on failure: every part touched runs its old command line again


@dataclass
class _ApplyJob:
    changes: list[tuple[str, list[str]]]
    done: threading.Event = field(default_factory=threading.Event)
    result: ApplyResult | None = None


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, a function that makes the calling (child) process get SIGTERM when its parent dies.

    Resolved here, in the parent: between fork and exec the child must not import or allocate much."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_signal() -> None:  # pragma: no cover - runs in the child
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return set_signal


_SET_PDEATHSIG = _parent_death_signal()


class Supervisor:
    """Start, watch and stop a list of child processes (see the module docstring)."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        stable_after: float = 60.0,
        poll_interval: float = 0.2,
        fail_fast: bool = True,
        output: TextIO | None = None,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique: {names}")
        self._children = {spec.name: _Child(spec) for spec in specs}
        self._order = names
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.poll_interval = poll_interval
        self.fail_fast = fail_fast
        self.failure: str | None = None  # why the first start failed (fail_fast), for the caller to show
        self._output = output if output is not None else sys.stderr
        self._output_lock = threading.Lock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._restart_requests: dict[str, list[str] | None] = {}
        self._apply_jobs: list[_ApplyJob] = []
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    # -- public API -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("supervisor already started")
        self._thread = threading.Thread(target=self._run, name="smartlock-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop every child in reverse order and wait for it (idempotent)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            self._stopped.set()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)

    def restart(self, name: str, argv: list[str] | None = None) -> None:
        """Stop ``name`` and start it again now (with a new command line when ``argv`` is given)."""
        if name not in self._children:
            raise KeyError(name)
        with self._lock:
            self._restart_requests[name] = argv
        self._wake.set()

    def apply(self, changes: Sequence[tuple[str, list[str]]], timeout: float = 600.0) -> ApplyResult:
        """Restart the named parts, in the order given, with new command lines, and wait until each runs
        again (a part with a ``before_stop`` hook, the door, is locked first). When one does not come up,
        every part touched goes back to its old command line and the answer says which failed and why."""
        for name, _ in changes:
            if name not in self._children:
                raise KeyError(name)
        job = _ApplyJob([(name, list(argv)) for name, argv in changes])
        if not job.changes:
            return ApplyResult(ok=True, restarted=[])
        with self._lock:
            if self._stopped.is_set() or self._thread is None:
                return ApplyResult(ok=False, restarted=[], reason="the parts are not running", reverted=True)
            self._apply_jobs.append(job)
        self._wake.set()
        if not job.done.wait(timeout) or job.result is None:
            return ApplyResult(ok=False, restarted=[], reason="the restart did not finish in time",
                               reverted=False)
        return job.result

    def argv(self, name: str) -> list[str]:
        return list(self._children[name].spec.argv)

    def status(self) -> list[dict]:
        now = time.monotonic()
        rows = []
        with self._lock:
            for name in self._order:
                child = self._children[name]
                process = child.process
                rows.append(
                    {
                        "name": name,
                        "state": child.state,
                        "pid": process.pid if process is not None and process.poll() is None else None,
                        "restarts": child.restarts,
                        "uptime": round(now - child.started_at, 1)
                        if child.state in ("running", "starting")
                        else None,
                        "last_exit": child.last_exit,
                        "last_output": list(child.output)[-3:],
                    }
                )
        return rows

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """True once every child has been started and answered its health URL (for tests and `up`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(child.state == "running" for child in self._children.values()):
                return True
            if self._stopped.is_set():
                return False
            time.sleep(0.05)
        return False

    # -- the monitor thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            for name in self._order:
                if self._stop.is_set():
                    break
                child = self._children[name]
                self._spawn(child)
                self._await_ready(child)
                if self.fail_fast and child.state != "running" and not self._stop.is_set():
                    self._fail(child)
                    break
            while not self._stop.is_set():
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                if self._stop.is_set():
                    break
                self._handle_apply_jobs()
                self._handle_restart_requests()
                self._check_children()
        except Exception:  # the monitor must never die silently: log and stop everything
            logger.exception("supervisor failed; stopping every part")
        finally:
            self._shutdown()
            self._stopped.set()
            with self._lock:
                jobs, self._apply_jobs = self._apply_jobs, []
            for job in jobs:  # stopping: nothing was applied
                job.result = ApplyResult(ok=False, restarted=[], reason="`up` is stopping")
                job.done.set()

    def _fail(self, child: _Child) -> None:
        process = child.process
        code = process.poll() if process is not None else None
        if child.reader is not None and code is not None:
            child.reader.join(timeout=2)
        tail = "\n    ".join(list(child.output)[-8:]) or "(no output)"
        what = f"exited with code {code}" if code is not None else "did not become ready"
        self.failure = f"{child.spec.name} {what} while starting; its last output:\n    {tail}"
        logger.error("%s", self.failure)
        self._stop.set()

    def _await_ready(self, child: _Child) -> None:
        url = child.spec.health_url
        if url is None:
            if not self._stop.wait(child.spec.settle) and child.process is not None \
                    and child.process.poll() is None:
                child.state = "running"
            return
        deadline = time.monotonic() + child.spec.ready_timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            if child.process is None or child.process.poll() is not None:
                return  # exited: the main loop restarts it
            try:
                httpx.get(url, timeout=1.0)
            except httpx.HTTPError:
                self._stop.wait(0.1)
                continue
            child.state = "running"
            logger.info("%s is up (%s)", child.spec.name, url)
            return
        if not self._stop.is_set():
            logger.warning("%s did not answer %s within %.0f s; going on", child.spec.name, url,
                        child.spec.ready_timeout)

    def _handle_restart_requests(self) -> None:
        with self._lock:
            requests, self._restart_requests = self._restart_requests, {}
        for name, argv in requests.items():
            child = self._children[name]
            logger.info("restarting %s on request", name)
            self._terminate(child)
            if argv is not None:
                child.spec.argv = list(argv)
            child.backoff = 0.0
            self._spawn(child)
            self._await_ready(child)

    def _handle_apply_jobs(self) -> None:
        with self._lock:
            jobs, self._apply_jobs = self._apply_jobs, []
        for job in jobs:
            try:
                job.result = self._apply(job.changes)
            finally:
                job.done.set()

    def _apply(self, changes: list[tuple[str, list[str]]]) -> ApplyResult:
        touched: list[tuple[_Child, list[str]]] = []
        for name, argv in changes:
            if self._stop.is_set():
                break
            child = self._children[name]
            touched.append((child, list(child.spec.argv)))
            logger.info("restarting %s with its new settings", name)
            self._restart_with(child, argv)
            if child.state == "running":
                continue
            reason = self._why_not_running(child)
            logger.error("%s did not come up with its new settings (%s): going back to the old ones", name,
                         reason)
            for earlier, old_argv in reversed(touched):
                self._restart_with(earlier, old_argv)
            reverted = all(earlier.state == "running" for earlier, _ in touched)
            return ApplyResult(ok=False, restarted=[c.spec.name for c, _ in touched], failed=name,
                               reason=reason, reverted=reverted)
        if self._stop.is_set():
            names = [c.spec.name for c, _ in touched]
            return ApplyResult(ok=False, restarted=names, reason="`up` is stopping")
        return ApplyResult(ok=True, restarted=[c.spec.name for c, _ in touched])

    def _restart_with(self, child: _Child, argv: list[str]) -> None:
        if child.spec.before_stop is not None:
            try:
                child.spec.before_stop()
            except Exception as err:
                logger.warning("before restarting %s: %s", child.spec.name, err)
        self._terminate(child)
        child.spec.argv = list(argv)
        child.backoff = 0.0
        child.output.clear()  # what the new command line says, not the old one's last words
        self._spawn(child)
        self._await_ready(child)

    def _why_not_running(self, child: _Child) -> str:
        process = child.process
        code = process.poll() if process is not None else None
        if code is not None and child.reader is not None:
            child.reader.join(timeout=2)
        tail = " | ".join(list(child.output)[-3:]) or "no output"
        what = f"exited with code {code}" if code is not None else "did not become ready"
        return f"{what}; last output: {tail}"

    def _check_children(self) -> None:
        now = time.monotonic()
        for name in self._order:
            child = self._children[name]
            process = child.process
            if process is not None:
                code = process.poll()
                if code is None:
                    if child.state == "starting" and child.spec.health_url is None:
                        child.state = "running"
                    elif child.state == "starting":
                        self._probe(child)
                    continue
                self._reap(child, code, now)
            if child.state == "restarting" and now >= child.next_start:
                child.restarts += 1
                self._spawn(child)

    def _probe(self, child: _Child) -> None:
        try:
            httpx.get(child.spec.health_url or "", timeout=0.5)
        except httpx.HTTPError:
            return
        child.state = "running"
        logger.info("%s is up again", child.spec.name)

    def _reap(self, child: _Child, code: int, now: float) -> None:
        if child.reader is not None:
            child.reader.join(timeout=2)
        ran_for = now - child.started_at
        child.process = None
        child.last_exit = code
        if ran_for >= self.stable_after or child.backoff == 0.0:
            child.backoff = self.backoff_initial
        else:
            child.backoff = min(self.backoff_max, child.backoff * 2)
        child.state = "restarting"
        child.next_start = now + child.backoff
        tail = " | ".join(list(child.output)[-3:])
        logger.error(
            "%s exited with code %s after %.1f s; restarting in %.1f s%s",
            child.spec.name, code, ran_for, child.backoff, f" (last output: {tail})" if tail else "",
        )

    def _spawn(self, child: _Child) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(child.spec.env or {})}
        kwargs: dict = {"start_new_session": True}
        if _SET_PDEATHSIG is not None:
            kwargs["preexec_fn"] = _SET_PDEATHSIG
        try:
            process = subprocess.Popen(
                child.spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                **kwargs,
            )
        except OSError as err:
            logger.error("cannot start %s (%s): %s", child.spec.name, child.spec.argv[0], err)
            child.output.append(str(err))
            child.state = "restarting"
            child.backoff = min(self.backoff_max, max(self.backoff_initial, child.backoff * 2))
            child.next_start = time.monotonic() + child.backoff
            return
        with self._lock:
            child.process = process
            child.started_at = time.monotonic()
            child.state = "starting"
        child.reader = threading.Thread(
            target=self._pump, args=(child.spec, process, child.output), daemon=True
        )
        child.reader.start()
        logger.info("started %s (pid %d)", child.spec.name, process.pid)

    def _pump(self, spec: ChildSpec, process: subprocess.Popen, tail: deque[str]) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            line = redact(raw.decode("utf-8", "replace").rstrip())
            tail.append(line)
            if spec.echo is not None and not spec.echo(line):
                continue
            with self._output_lock, contextlib.suppress(Exception):
                self._output.write(f"{spec.name:>11} | {line}\n")
                self._output.flush()
        process.stdout.close()

    def _terminate(self, child: _Child) -> None:
        process = child.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=child.spec.stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0f s: killing it", child.spec.name,
                            child.spec.stop_timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if child.reader is not None:
            child.reader.join(timeout=2)
        child.last_exit = process.returncode
        child.process = None

    def _shutdown(self) -> None:
        for name in reversed(self._order):
            child = self._children[name]
            if child.spec.before_stop is not None:
                try:
                    child.spec.before_stop()
                except Exception as err:
                    logger.warning("before stopping %s: %s", name, err)
            if child.process is not None:
                logger.info("stopping %s", name)
            self._terminate(child)
            child.state = "stopped"
