"""The engine's start-up check of the door (smartlock.engine.preflight.check_door) against real doors on
127.0.0.1: each wrong flag is a ConfigError naming it, the door stays locked and records the refusal; a
door that is not up yet is a warning, not a failure."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from smartlock.door.auth import generate_secret
from smartlock.engine.preflight import check_door
from smartlock.engine.settings import EngineSettings
from smartlock.errors import ConfigError
from tests.door.helpers import DoorServer, door_server
from tests.support import LOOPBACK, free_port, uvicorn_server


def settings(door_url: str, secret_file: Path | None = None) -> EngineSettings:
    return EngineSettings(camera_url=f"http://{LOOPBACK}:1/stream.mjpg",
                          face_recognition_api_url=f"http://{LOOPBACK}:2", door_api_url=door_url,
                          door_secret_file=secret_file)


def untouched(door: DoorServer) -> None:
    """The door is locked, nothing was unlocked, and the refusal is in its audit."""
    assert door.relay.locked
    assert door.events.last("unlock", "accepted") is None
    assert door.events.last("status", "refused") is not None


@pytest.fixture
def door(tmp_path: Path) -> Iterator[DoorServer]:
    with door_server(tmp_path / "door") as server:
        yield server


def test_a_door_that_accepts_the_signature_passes(door: DoorServer, caplog) -> None:
    caplog.set_level(logging.INFO, "smartlock.engine.preflight")
    check_door(settings(door.url + "/unlock", door.secret_path))
    assert "accepts the engine's requests" in caplog.text
    assert door.events.last("status", "refused") is None


def test_no_secret_file_against_a_signing_door_names_the_flag(door: DoorServer) -> None:
    with pytest.raises(ConfigError, match=r"requires signed requests.*--door-secret-file"):
        check_door(settings(door.url + "/unlock"))
    untouched(door)


def test_another_doors_secret_is_named(door: DoorServer, tmp_path: Path) -> None:
    other = tmp_path / "other.secret"
    generate_secret(other)
    with pytest.raises(ConfigError, match=r"--door-secret-file .*other.secret is not this door's secret"):
        check_door(settings(door.url + "/unlock", other))
    untouched(door)


def test_the_right_key_id_with_a_wrong_key_is_named(door: DoorServer, tmp_path: Path) -> None:
    document = json.loads(door.secret_path.read_text())
    document["key"] = base64.urlsafe_b64encode(b"k" * 32).decode("ascii")
    forged = tmp_path / "forged.secret"
    fd = os.open(forged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle)
    with pytest.raises(ConfigError, match=r"has the door's key id .* but not its key"):
        check_door(settings(door.url + "/unlock", forged))
    untouched(door)


def test_a_missing_secret_file_is_named(door: DoorServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        check_door(settings(door.url + "/unlock", tmp_path / "nowhere.secret"))


def test_a_url_that_is_no_door_is_named(door: DoorServer) -> None:
    with pytest.raises(ConfigError, match=r"--door-api-url .* answered 404: no smartlock door"):
        check_door(settings(door.url + "/api/v2/unlock", door.secret_path))
    elsewhere = FastAPI()
    elsewhere.add_api_route("/status", lambda: {"ok": True}, methods=["GET"])
    with uvicorn_server(elsewhere) as url, pytest.raises(ConfigError, match="not as a smartlock door does"):
        check_door(settings(url + "/unlock", door.secret_path))
    with pytest.raises(ConfigError, match="must start with http"):
        check_door(settings(door.url.replace("http", "ftp") + "/unlock"))


def test_https_against_a_plain_http_door_is_named(door: DoorServer) -> None:
    with pytest.raises(ConfigError, match="speaks plain HTTP: use http://"):
        check_door(settings(door.url.replace("http://", "https://") + "/unlock", door.secret_path))


def test_a_door_not_up_yet_is_a_warning_and_start_goes_on(caplog) -> None:
    caplog.set_level(logging.WARNING, "smartlock.engine.preflight")
    check_door(settings(f"http://{LOOPBACK}:{free_port()}/unlock"))  # returns: nothing listens there
    assert "No door answers" in caplog.text and "--door-api-url" in caplog.text


def test_a_no_auth_door_with_a_secret_passes_with_a_warning(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, "smartlock.engine.preflight")
    with door_server(tmp_path / "door", no_auth=True) as door:
        check_door(settings(door.url + "/unlock", door.secret_path))
        check_door(settings(door.url + "/unlock"))
    assert "accepts unsigned requests" in caplog.text


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "door.crt", folder / "door.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=smartlock preflight test", "-addext", f"subjectAltName=IP:{LOOPBACK}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@contextlib.contextmanager
def https_server(app: object, cert: Path, key: Path) -> Iterator[str]:
    """A real uvicorn with TLS on 127.0.0.1 (the door's app), in a thread."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", lifespan="off",
                            ssl_certfile=str(cert), ssl_keyfile=str(key))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the https door did not start"
        time.sleep(0.02)
    try:
        yield f"https://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_tls_mistakes_are_named(door: DoorServer, certificate) -> None:
    cert, key = certificate
    with https_server(door.app, cert, key) as url:
        with pytest.raises(ConfigError, match="TLS certificate is not trusted"):
            check_door(settings(url + "/unlock", door.secret_path))
        with pytest.raises(ConfigError, match="says http://, but the door there does not speak plain HTTP"):
            check_door(settings(url.replace("https://", "http://") + "/unlock", door.secret_path))
        check_door(settings(url + "/unlock", door.secret_path), ca_file=cert)  # trusted: passes
