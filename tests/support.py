"""Helpers shared by the tests: free ports, real uvicorn servers in a thread, real service processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import httpx

LOOPBACK = "127.0.0.1"
T = TypeVar("T")


class ManualClock:
    """A clock that moves only when a test sets ``now`` or calls ``advance``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_for(
    predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.02, what: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns a truthy value (returned); AssertionError after ``timeout`` s.

    The timeout only bounds a broken test: a passing test waits for the event itself, never for a time.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers (any status), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError as err:
            last_error = err
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s: {last_error}")


@contextlib.contextmanager
def uvicorn_server(app, port: int | None = None, health_path: str = "/openapi.json") -> Iterator[str]:
    """Serve an ASGI app with a real uvicorn on 127.0.0.1 in a thread; yields the base URL."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def service_process(
    args: Sequence[str],
    ready_url: str,
    timeout: float = 90.0,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
) -> Iterator[subprocess.Popen]:
    """Run ``python -m smartlock ARGS`` as a real process until ``ready_url`` answers; stop it after."""
    merged_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    output = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "smartlock", *args], env=merged_env, stdout=output, stderr=subprocess.STDOUT
    )
    try:
        wait_until_up(ready_url, timeout=timeout, process=process)
        yield process
    finally:
        stop_process(process)
        if log_path:
            output.close()


def stop_process(process: subprocess.Popen, timeout: float = 15.0) -> int:
    """SIGTERM, then SIGKILL if it does not end in time; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    return process.returncode
