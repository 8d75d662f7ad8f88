"""`smartlock camera` as a real process: start-up errors, and a relay that outlives its upstream camera."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from smartlock.camera.api import create_app
from smartlock.camera.commands import RedactTokens, read_token
from smartlock.camera.mjpeg import part_timestamp
from smartlock.camera.sources import UrlSource
from smartlock.camera.stream import FrameHub
from smartlock.cli import main
from smartlock.errors import ConfigError
from tests.camera.media import decode, stream_parts
from tests.support import LOOPBACK, free_port, service_process, stop_process, uvicorn_server, wait_for


def test_bad_source_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-video.mp4"
    assert main(["camera", "--source", str(missing), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.startswith("smartlock camera: error: source")
    assert "no-such-video.mp4" in err and "no such file" in err


def test_token_file_must_hold_a_token(tmp_path: Path, video_file: Path, capsys) -> None:
    empty = tmp_path / "token"
    empty.write_text("  \n")
    empty.chmod(0o600)
    assert main(["camera", "--source", str(video_file), "--token-file", str(empty)]) == 2
    assert "is empty" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not found"):
        read_token(tmp_path / "absent")
    empty.write_text("abc123\n")
    assert read_token(empty) == "abc123"


def test_token_file_readable_by_others_is_refused(tmp_path: Path, video_file: Path, capsys) -> None:
    token = tmp_path / "token"
    token.write_text("abc123\n")
    token.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_token(token)
    assert main(["camera", "--source", str(video_file), "--token-file", str(token)]) == 2
    assert "chmod 600" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags", [["--quality", "0"], ["--rotation", "45"], ["--fps", "0"], ["--width", "-5"]]
)
def test_bad_flags_are_refused(flags: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["camera", *flags])
    assert exit_.value.code == 2
    assert "camera: error: argument" in capsys.readouterr().err


def test_access_log_lines_never_show_a_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/stream.mjpg?a=1&token=s3cret&b=2", "1.1", 200), None,
    )
    assert RedactTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /stream.mjpg?a=1&token=***&b=2 HTTP/1.1" 200'


def collect(url: str, seconds: float) -> dict[float, bytes]:
    """JPEG by capture timestamp, read from an MJPEG stream for about ``seconds``."""
    with httpx.Client() as client:
        parts = stream_parts(client, url, count=int(seconds * 20))
    return {part_timestamp(headers): body for headers, body in parts}


@pytest.mark.slow
def test_relay_passes_frames_through_and_survives_its_upstream_restarting(video_file: Path, tmp_path: Path):
    port = free_port()
    upstream_url = f"http://{LOOPBACK}:{port}"
    args = ["camera", "--source", str(video_file), "--host", LOOPBACK, "--port", str(port)]
    token = tmp_path / "token"
    token.write_text("relay-me\n")
    token.chmod(0o600)
    args_with_token = [*args, "--token-file", str(token)]
    source = UrlSource(f"{upstream_url}/stream.mjpg?token=relay-me")
    with service_process(
        args_with_token, f"{upstream_url}/health", log_path=tmp_path / "up1.log"
    ) as upstream:
        source.open()
        hub = FrameHub(source, backoff=(0.1, 0.5))
        with (
            uvicorn_server(create_app(hub), health_path="/health") as relay,
            httpx.Client(timeout=10) as client,
        ):
            with ThreadPoolExecutor(2) as pool:
                upstream_frames = pool.submit(collect, f"{upstream_url}/stream.mjpg?token=relay-me", 1.5)
                relayed_frames = pool.submit(collect, f"{relay}/stream.mjpg", 1.5)
                upstream_frames, relayed_frames = upstream_frames.result(), relayed_frames.result()
            common = set(upstream_frames) & set(relayed_frames)
            assert len(common) >= 5, "the relay does not keep the camera's capture timestamps"
            assert all(upstream_frames[t] == relayed_frames[t] for t in common), "frames were re-encoded"

            started = time.monotonic()
            code = stop_process(upstream)  # the upstream shuts down although the relay is connected
            assert code != -9 and time.monotonic() - started < 14, "upstream had to be killed"
            health = wait_for(
                lambda: (h := client.get(f"{relay}/health").json())["state"] == "failing" and h,
                what="relay to notice",
            )
            assert "cannot connect" in health["error"] or "ended" in health["error"]
            assert "relay-me" not in health["error"] and "relay-me" not in health["source"]
            assert client.get(f"{relay}/snapshot.jpg").status_code == 503
            upstream_log = (tmp_path / "up1.log").read_text()
            assert "/stream.mjpg?token=***" in upstream_log and "relay-me" not in upstream_log

            with service_process(args_with_token, f"{upstream_url}/health", log_path=tmp_path / "up2.log"):
                back = time.time()
                wait_for(lambda: client.get(f"{relay}/health").json()["state"] == "ok", what="reconnect")
                snapshot = client.get(f"{relay}/snapshot.jpg")
                assert snapshot.status_code == 200 and decode(snapshot.content).shape == (240, 320, 3)
                assert float(snapshot.headers["x-timestamp"]) > back - 1
