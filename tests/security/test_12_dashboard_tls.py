"""Row 12: `up --tls-cert/--tls-key` serves the dashboard over HTTPS, and its session cookie is Secure.

Attacked: the dashboard as its own process, served as `up` serves it, with a self-signed certificate for
127.0.0.1 made here by the openssl command. Asserted: HTTPS works with that certificate, the same port
answers nothing in clear text, the cookie is Secure under TLS (and not without), and `smartlock up`
refuses a key other users can read before starting anything.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from smartlock.web.routes.guards import COOKIE, CSRF_HEADER
from tests.support import free_port
from tests.web.conftest import CREDENTIALS
from tests.web.serve_dashboard import dashboard_process, fake_dashboard, served

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """(cert, key): self-signed for IP 127.0.0.1, the key 0600."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    key.chmod(0o600)
    return cert, key


def test_https_dashboard_sets_a_secure_cookie(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    trust = ssl.create_default_context(cafile=str(cert))
    port = free_port()
    flags = ("--tls-cert", str(cert), "--tls-key", str(key))
    with dashboard_process(tmp_path / "data", port, *flags, log=tmp_path / "dashboard.log", verify=trust):
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=trust,
                          headers={CSRF_HEADER: "1"}) as client:
            answer = client.post("/api/auth/login", json=CREDENTIALS)
            assert answer.status_code == 200
            cookie = answer.headers["set-cookie"]
            assert cookie.startswith(f"{COOKIE}=") and "Secure" in cookie and "HttpOnly" in cookie
            assert client.get("/api/system").status_code == 200  # the session works over HTTPS
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"http://127.0.0.1:{port}/api/auth/login", json=CREDENTIALS,
                       headers={CSRF_HEADER: "1"}, timeout=5)  # no clear-text service on that port
        with pytest.raises(httpx.HTTPError):  # and the certificate is what a client checks
            httpx.get(f"https://127.0.0.1:{port}/api/auth/state", timeout=5)


def test_plain_http_cookie_is_not_secure(tmp_path: Path) -> None:
    dashboard = fake_dashboard(tmp_path)
    with served(dashboard) as url:
        answer = httpx.post(f"{url}/api/auth/login", json=CREDENTIALS, headers={CSRF_HEADER: "1"})
        assert answer.status_code == 200 and "secure" not in answer.headers["set-cookie"].lower()


def test_up_refuses_a_readable_key_or_half_a_pair(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    key.chmod(0o644)
    photos = tmp_path / "photos"
    photos.mkdir()
    base = [sys.executable, "-m", "smartlock", "up", "--camera", str(photos), "--data-dir",
            str(tmp_path / "data"), "--port", str(free_port())]
    run = subprocess.run([*base, "--tls-cert", str(cert), "--tls-key", str(key)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode != 0 and f"chmod 600 {key}" in run.stdout + run.stderr
    run = subprocess.run([*base, "--tls-cert", str(cert)], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "--tls-cert and --tls-key go together" in run.stdout + run.stderr
    assert not (tmp_path / "data" / "secrets").exists()  # nothing started, nothing made
