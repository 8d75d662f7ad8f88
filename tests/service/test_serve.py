"""serve() in a real process: every stop signal ends it through the caller's clean-up, exit code 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.support import free_port, wait_until_up


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_stop_signal_runs_on_stop_and_the_callers_cleanup(signum: signal.Signals) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.service.serve_child", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", timeout=30, process=process)
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["status"] == "ok"
        process.send_signal(signum)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = output.decode()
    assert process.returncode == 0, text
    assert "on_stop ran" in text
    assert "serve returned" in text
    assert text.index("serve returned") < text.index("cleanup ran")
