"""Row 7: no secret where another user of the machine can read it. A real `smartlock up`: no child's command
line (/proc/<pid>/cmdline, readable by every user) or environment holds the door key, the recognition API
key, the camera token or the webhook token, and no log under the data directory (nor up's own output)
quotes any of them; the engine's and collector's URL logging masks ``token=`` values, tracebacks included."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartlock.engine.commands import configure_logging
from smartlock.engine.sinks import WebhookSink
from tests.engine import system
from tests.support import LOOPBACK, free_port, stop_process, wait_for, wait_until_up


def secrets_of(data: Path) -> dict[str, str]:
    folder = data / "secrets"
    values = {
        "door key": json.loads((folder / "door-secret.json").read_text())["key"],
        "recognition API key": (folder / "recognition-api-key").read_text().strip(),
        "camera token": (folder / "camera-token").read_text().strip(),
        "webhook token": (folder / "webhook-token").read_text().strip(),
    }
    assert all(len(value) >= 16 for value in values.values()), "secrets should be long random strings"
    return values


def ppid(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^PPid:\s+(\d+)", status, re.MULTILINE)
    return int(match[1]) if match else None


def descendants(root: int) -> list[int]:
    """Every living process below ``root`` (children, their children, ...), found by walking /proc."""
    parents = {int(p.name): ppid(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, of in parents.items() if of == parent]
        found += children
        frontier += children
    return found


def exposed(pid: int) -> str:
    """What any user (cmdline) or the process's own user (environ) can read of ``pid``."""
    parts = []
    for name in ("cmdline", "environ"):
        with_nul = Path(f"/proc/{pid}/{name}").read_bytes()
        parts.append(with_nul.replace(b"\0", b" ").decode("utf-8", "replace"))
    return "\n".join(parts)


def smartlock_part(pid: int) -> str | None:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    if b"smartlock" in argv:
        index = argv.index(b"smartlock")
        return argv[index + 1].decode() if index + 1 < len(argv) else None
    return None


@pytest.fixture
def up(tmp_path: Path, faces_dir: Path) -> Iterator[tuple[subprocess.Popen, Path, Path]]:
    video = system.face_video(faces_dir, tmp_path / "face.mp4", seconds=4.0, fps=15.0)
    data, output = tmp_path / "data", tmp_path / "up.out"
    port = free_port()
    with open(output, "wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "smartlock", "up", "--camera", str(video), "--data-dir", str(data),
             "--port", str(port)],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_until_up(f"http://{LOOPBACK}:{port}/health", timeout=120, process=process)
        yield process, data, output
    except BaseException:
        print(output.read_text()[-5000:])
        raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        stop_process(process, timeout=60)


@pytest.mark.slow
@pytest.mark.faces
@pytest.mark.timeout(420)
def test_no_secret_on_a_child_command_line_in_its_environment_or_in_a_log(up) -> None:
    process, data, output = up
    engine_log = data / "log" / "log.txt"  # `smartlock vision`: camera, recognition API and engine

    def logged(path: Path, needle: str) -> bool:
        return path.exists() and needle in path.read_text(errors="replace")

    # every part running: the camera and recognition APIs (token- and key-protected) serve and the engine
    # has recognised frames
    wait_for(lambda: logged(engine_log, "camera API serving"), timeout=240, interval=0.5,
             what="the vision process serving the camera")
    wait_for(lambda: logged(engine_log, "Face recognition request took"), timeout=120, interval=0.5,
             what="the engine recognising frames")
    children = descendants(process.pid)
    parts = {smartlock_part(pid) for pid in children}
    assert {"door", "vision"} <= parts, parts

    secrets = secrets_of(data)
    for pid in [process.pid, *children]:
        try:
            text = exposed(pid)
        except OSError:  # ended meanwhile (a short-lived helper): nothing left to read
            continue
        for what, value in secrets.items():
            assert value not in text, f"the {what} is readable in /proc/{pid} ({smartlock_part(pid)})"
        assert "token=" not in text and "SMARTLOCK_API_KEY" not in text

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=90) == 0
    logs = [p for p in data.rglob("*") if p.is_file() and "secrets" not in p.relative_to(data).parts
            and (p.suffix in (".txt", ".log") or ".txt." in p.name or "log" in p.name)]
    assert engine_log in logs
    for path in [*logs, output]:
        text = path.read_text(errors="replace")
        for what, value in secrets.items():
            assert value not in text, f"the {what} is in {path}"


# -- the engine's own log lines: URLs and tracebacks -------------------------------------------------------


TOKEN = "camera-token-0123456789abcdef"


@pytest.fixture
def engine_logging(tmp_path: Path) -> Iterator[Path]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(tmp_path / "log", secrets=[TOKEN, "short"])
        yield tmp_path / "log" / "log.txt"
    finally:
        for handler in root.handlers:
            if handler not in saved[0]:
                handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_urls_tracebacks_and_the_webhook_never_show_a_token_in_the_log(engine_logging: Path, capsys) -> None:
    log = logging.getLogger("smartlock.engine.frames")
    log.info("Video stream opened: http://cam:8080/stream.mjpg?token=%s&fps=2", TOKEN)
    try:
        raise ConnectionError(f"GET http://cam:8080/stream.mjpg?token={TOKEN}: refused")
    except ConnectionError:
        log.exception("Reading the video stream failed")
    log.error("header was Bearer %s", TOKEN)  # a secret read at start is masked wherever it shows up

    import httpx

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, request=request)

    sink = WebhookSink(f"http://127.0.0.1:9/hooks/engine?token={TOKEN}", token=TOKEN,
                       transport=httpx.MockTransport(refuse))
    sink.emit({"event": "unlocked"})
    sink.close()
    assert sink.failed == 1
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = engine_logging.read_text()
    assert "Traceback" in text and "ConnectionError" in text and "Webhook" in text
    assert "token=***" in text and "Bearer ***" in text
    assert TOKEN not in text and TOKEN not in capsys.readouterr().out
