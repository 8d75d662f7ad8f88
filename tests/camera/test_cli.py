"""`smartlock camera` as a real process: start-up errors, and a relay that outlives its upstream camera."""

from __future__ import annotations

import io
import logging
import socket
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from smartlock.camera.api import create_app
from smartlock.camera.commands import camera_token, page_url, read_token, show_token_url
from smartlock.camera.mjpeg import part_timestamp
from smartlock.camera.settings import CameraSettings
from smartlock.camera.signing import BAD_SIGNATURE, FrameVerifier, viewing_token
from smartlock.camera.sources import UrlSource
from smartlock.camera.stream import FrameHub
from smartlock.cli import main
from smartlock.errors import ConfigError
from smartlock.logs import RedactTokens
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


def test_without_a_token_file_the_camera_makes_one_in_the_data_dir(data_dir: Path, tmp_path: Path) -> None:
    token, path, created = camera_token(CameraSettings())
    assert created and path == data_dir / "camera" / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert token is not None and len(token) >= 40 and path.read_text().strip() == token
    assert camera_token(CameraSettings()) == (token, path, False)  # kept across restarts
    given = tmp_path / "secrets" / "camera-token"  # a --token-file that does not exist yet is made there
    other, at, created = camera_token(CameraSettings(token_file=given))
    assert created and at == given and other != token and read_token(given) == other
    assert camera_token(CameraSettings(no_auth=True)) == (None, None, False)


def test_the_ready_to_open_url_goes_to_a_terminal_only() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, piped = Terminal(), io.StringIO()
    assert show_token_url(CameraSettings(port=8081), "a/b+c", terminal)
    assert f"http://{socket.gethostname()}:8081/?token=a%2Fb%2Bc" in terminal.getvalue()
    assert not show_token_url(CameraSettings(port=8081), "a/b+c", piped) and piped.getvalue() == ""
    tls = CameraSettings(host="127.0.0.1", port=8443, tls_cert=Path("c.pem"), tls_key=Path("k.pem"))
    assert page_url(tls, "t") == "https://127.0.0.1:8443/?token=t"
    assert page_url(CameraSettings(host="::1", port=80), "t") == "http://[::1]:80/?token=t"


def test_access_log_lines_never_show_a_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/stream.mjpg?a=1&token=s3cret&b=2", "1.1", 200), None,
    )
    assert RedactTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /stream.mjpg?a=1&token=***&b=2 HTTP/1.1" 200'


def collect(url: str, seconds: float) -> dict[float, tuple[dict, bytes]]:
    """(headers, JPEG) by capture timestamp, read from an MJPEG stream for about ``seconds``."""
    with httpx.Client() as client:
        parts = stream_parts(client, url, count=int(seconds * 20))
    return {part_timestamp(headers): (headers, body) for headers, body in parts}


@pytest.mark.slow
def test_relay_passes_frames_through_and_survives_its_upstream_restarting(video_file: Path, tmp_path: Path):
    port = free_port()
    upstream_url = f"http://{LOOPBACK}:{port}"
    args = ["camera", "--source", str(video_file), "--host", LOOPBACK, "--port", str(port)]
    token = tmp_path / "token"
    token.write_text("relay-me\n")
    token.chmod(0o600)
    args_with_token = [*args, "--token-file", str(token)]
    # The relay presents the upstream's token as a Bearer header and checks its signatures, then signs
    # what it relays with a token of its own.
    source = UrlSource(f"{upstream_url}/stream.mjpg", token="relay-me")
    with service_process(
        args_with_token, f"{upstream_url}/health", log_path=tmp_path / "up1.log"
    ) as upstream:
        source.open()
        hub = FrameHub(source, backoff=(0.1, 0.5))
        with (
            uvicorn_server(create_app(hub, token="relay-own"), health_path="/health") as relay,
            httpx.Client(timeout=10, headers={"X-Token": viewing_token("relay-own")}) as client,
        ):
            with ThreadPoolExecutor(2) as pool:
                upstream_frames = pool.submit(
                    collect, f"{upstream_url}/stream.mjpg?token={viewing_token('relay-me')}", 1.5)
                relayed_frames = pool.submit(
                    collect, f"{relay}/stream.mjpg?token={viewing_token('relay-own')}", 1.5)
                upstream_frames, relayed_frames = upstream_frames.result(), relayed_frames.result()
            common = set(upstream_frames) & set(relayed_frames)
            assert len(common) >= 5, "the relay does not keep the camera's capture timestamps"
            same = all(upstream_frames[t][1] == relayed_frames[t][1] for t in common)
            assert same, "frames were re-encoded"
            relay_check, upstream_check = FrameVerifier("relay-own", max_age=600), FrameVerifier("relay-me")
            assert all(relay_check.check(*relayed_frames[t]) is None for t in sorted(common)), "not re-signed"
            assert all(upstream_check.check(*relayed_frames[t]) == BAD_SIGNATURE for t in common)
            assert source.gate is not None and source.gate.rejected.total == 0

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


@pytest.mark.slow
def test_the_camera_serves_https_and_the_engine_reads_it_signed(
    video_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import ssl
    import subprocess
    import sys

    from smartlock.engine.access import stream_opener
    from smartlock.engine.frames import LatestFrameReader

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    cert, key = tmp_path / "camera.crt", tmp_path / "camera.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=smartlock camera test", "-addext", f"subjectAltName=IP:{LOOPBACK}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    key.chmod(0o600)
    token_file = tmp_path / "camera-token"
    port = free_port()
    base = f"https://{LOOPBACK}:{port}"
    trusted = ssl.create_default_context(cafile=str(cert))
    args = ["camera", "--source", str(video_file), "--host", LOOPBACK, "--port", str(port),
            "--token-file", str(token_file), "--tls-cert", str(cert), "--tls-key", str(key)]
    with (tmp_path / "camera.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "smartlock", *args], stdout=log, stderr=log)
    try:
        def answers() -> bool:
            assert process.poll() is None, f"the camera exited with {process.returncode}"
            try:
                return httpx.get(f"{base}/health", verify=trusted, timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout=60, what="the https camera")
        token = read_token(token_file)
        with httpx.Client(base_url=base, verify=trusted, timeout=10) as client:
            assert client.get("/snapshot.jpg").status_code == 401
            viewer = {"Authorization": f"Bearer {viewing_token(token)}"}
            snapshot = client.get("/snapshot.jpg", headers=viewer)
            assert snapshot.status_code == 200 and decode(snapshot.content).shape == (240, 320, 3)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # how the engine trusts a self-signed camera
        url = f"{base}/stream.mjpg"
        with LatestFrameReader(url, opener=stream_opener(url, token)) as reader:
            frame = reader.wait_newer(0, timeout=20)
        assert frame is not None and reader.rejected is not None and reader.rejected.total == 0
    finally:
        stop_process(process)
    assert token not in (tmp_path / "camera.log").read_text()


def test_a_read_only_secret_folder_costs_only_the_viewing_token_file(tmp_path, caplog, monkeypatch) -> None:
    import errno

    from smartlock.camera import commands

    secret = tmp_path / "camera-token"
    secret.write_text("s3cret\n")

    def read_only(path, value):  # as /etc under systemd's ProtectSystem=strict
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(commands, "write_secret", read_only)
    assert commands.write_viewing_token(secret, "s3cret") is None
    assert "cannot keep the viewing token" in caplog.text and "s3cret" not in caplog.text
