"""`smartlock door --tls-cert/--tls-key` serves HTTPS; DoorClient and `smartlock unlock` verify it."""

from __future__ import annotations

import contextlib
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smartlock.cli import main
from smartlock.door.auth import generate_secret
from smartlock.door.client import DoorClient
from smartlock.door.settings import DoorSettings
from smartlock.errors import ConfigError, DoorError
from tests.support import LOOPBACK, free_port, stop_process, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (mode 0600)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "door.crt", folder / "door.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=smartlock door test", "-addext", f"subjectAltName=IP:{LOOPBACK}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    key.chmod(0o600)
    return cert, key


@contextlib.contextmanager
def https_door(tmp_path: Path, cert: Path, key: Path) -> Iterator[str]:
    port = free_port()
    args = ["door", "-p", "11", "--pin-factory", "mock", "--host", LOOPBACK, "--port", str(port),
            "--secret-file", str(tmp_path / "door.secret"), "--events-db", str(tmp_path / "events.sqlite3"),
            "--lock-delay", "30", "--tls-cert", str(cert), "--tls-key", str(key)]
    process = subprocess.Popen([sys.executable, "-m", "smartlock", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"https://{LOOPBACK}:{port}"
    trusted = ssl.create_default_context(cafile=str(cert))

    def answers() -> bool:
        assert process.poll() is None, f"the door exited with {process.returncode}"
        try:
            return httpx.get(f"{url}/health", verify=trusted, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(answers, timeout=60, what="the https door")
        yield url
    finally:
        stop_process(process)


def test_the_door_serves_https_and_the_client_verifies_it(tmp_path, certificate):
    cert, key = certificate
    secret = generate_secret(tmp_path / "door.secret")
    with https_door(tmp_path, cert, key) as url:
        with DoorClient(f"{url}/unlock", secret, timeout=5.0, ca_file=cert) as client:
            client.unlock(person="alice", source="test")
            assert client.status()["locked"] is False
        untrusting = DoorClient(f"{url}/unlock", secret, timeout=5.0, tries=1)  # verifies by default
        with untrusting, pytest.raises(DoorError, match=r"(?i)certificate.verify.failed"):
            untrusting.lock()
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{url.removeprefix('https://')}/health", timeout=5.0)  # no plain HTTP
        assert main(["unlock", "--door-api-url", f"{url}/unlock", "--secret-file",
                     str(tmp_path / "door.secret"), "--ca-file", str(cert)]) == 0


def test_a_tls_key_others_can_read_is_refused(tmp_path, certificate, capsys):
    cert, key = certificate
    loose = tmp_path / "loose.key"
    loose.write_bytes(key.read_bytes())
    loose.chmod(0o644)
    generate_secret(tmp_path / "door.secret")
    code = main(["door", "-p", "11", "--pin-factory", "mock", "--port", str(free_port()), "--host", LOOPBACK,
                 "--secret-file", str(tmp_path / "door.secret"), "--events-db", str(tmp_path / "e.sqlite3"),
                 "--tls-cert", str(cert), "--tls-key", str(loose)])
    assert code == 2
    assert "chmod 600" in capsys.readouterr().err


def test_tls_flags_go_together_and_come_back_from_the_settings(tmp_path):
    with pytest.raises(ConfigError, match="go together"):
        DoorSettings.validated(pin=11, no_auth=True, tls_cert=tmp_path / "c.pem")
    settings = DoorSettings.validated(pin=11, no_auth=True, tls_cert=tmp_path / "c.pem",
                                      tls_key=tmp_path / "k")
    assert settings.tls
    assert "--tls-cert" in settings.to_argv() and "--tls-key" in settings.to_argv()


def test_the_client_refuses_other_schemes_and_unreadable_ca_files(tmp_path):
    with pytest.raises(ConfigError, match="http:// or https://"):
        DoorClient("ftp://door/unlock")
    with pytest.raises(ConfigError, match="CA file"):
        DoorClient("https://door/unlock", ca_file=tmp_path / "missing.pem")
