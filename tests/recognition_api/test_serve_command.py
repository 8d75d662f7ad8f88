"""The `smartlock recognition` command: flags, settings, API key file, refusing a damaged model."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from smartlock.cli import build_parser
from smartlock.errors import ConfigError
from smartlock.recognition.settings import GENERATED_KEY_FILE, RecognitionSettings
from smartlock.service import read_secret
from tests.recognition.conftest import load_backend
from tests.support import free_port, service_process


def test_flags_and_defaults() -> None:
    args = build_parser().parse_args(["recognition"])
    assert (args.model, args.host, args.port, args.api_key_file) == (Path("model"), "0.0.0.0", 5000, None)
    assert (args.no_auth, args.tls_cert, args.tls_key) == (False, None, None)
    settings = RecognitionSettings.from_args(args)
    assert settings.key_file == Path("model") / GENERATED_KEY_FILE  # secure by default: a key, generated
    assert not settings.tls
    args = build_parser().parse_args(
        ["recognition", "--model", "m", "--host", "127.0.0.1", "--port", "5001", "--api-key-file", "k"]
    )
    assert (args.model, args.host, args.port, args.api_key_file) == (Path("m"), "127.0.0.1", 5001, Path("k"))


def test_flags_fill_the_settings_model() -> None:
    args = build_parser().parse_args(["recognition", "--threads", "2", "--max-upload-mb", "1.5",
                                      "--log-level", "debug", "--access-log"])
    settings = RecognitionSettings.from_args(args)
    assert (settings.threads, settings.max_upload_bytes, settings.log_level, settings.access_log) == (
        2, int(1.5 * 2**20), "DEBUG", True)
    assert settings.to_argv() == ["--threads", "2", "--max-upload-mb", "1.5", "--log-level", "DEBUG",
                                  "--access-log"]
    assert RecognitionSettings.from_args(build_parser().parse_args(["recognition"])) == RecognitionSettings()
    for bad, flag in (({"threads": 0}, "--threads"), ({"max_upload_mb": 2000}, "--max-upload-mb"),
                      ({"log_level": "loud"}, "--log-level"), ({"port": 0}, "--port")):
        with pytest.raises(ConfigError, match=flag):
            RecognitionSettings.validated(**bad)
    with pytest.raises(ConfigError, match="treads: Extra inputs are not permitted"):
        RecognitionSettings.validated(treads=2)


def test_no_auth_and_a_key_file_exclude_each_other() -> None:
    assert RecognitionSettings.validated(no_auth=True).key_file is None
    assert RecognitionSettings.validated(api_key_file="k").key_file == Path("k")
    with pytest.raises(ConfigError, match="--no-auth and --api-key-file exclude each other"):
        RecognitionSettings.validated(no_auth=True, api_key_file="k")
    flags = ["--no-auth", "--tls-cert", "c.pem", "--tls-key", "k.pem"]
    settings = RecognitionSettings.from_args(build_parser().parse_args(["recognition", *flags]))
    assert settings.tls and sorted(settings.to_argv()) == sorted(flags)
    again = build_parser().parse_args(["recognition", *settings.to_argv()])
    assert RecognitionSettings.from_args(again) == settings  # `up` and `service install` build argv so
    with pytest.raises(ConfigError, match="--tls-cert and --tls-key go together"):
        RecognitionSettings.validated(tls_cert="c.pem")


def test_the_api_key_file_must_be_private(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("  s3cret\n")
    key.chmod(0o600)
    assert read_secret(key, "API key file") == "s3cret"
    key.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_secret(key, "API key file")
    key.chmod(0o600)
    key.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_secret(key, "API key file")
    with pytest.raises(ConfigError, match="not found"):
        read_secret(tmp_path / "missing", "API key file")


def run_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smartlock", "recognition", *args],
                          capture_output=True, text=True, timeout=120)


def test_a_damaged_model_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "gallery.json").write_text("{not json")
    result = run_command("--model", str(tmp_path), "--port", "1")
    assert result.returncode == 2
    assert "gallery.json is corrupt" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flags_are_refused(tmp_path: Path) -> None:
    empty_key = tmp_path / "key"
    empty_key.write_text("")
    empty_key.chmod(0o600)
    shared_key = tmp_path / "shared-key"
    shared_key.write_text("s3cret")
    shared_key.chmod(0o644)
    for args, message in (
        (["--no-auth", "--api-key-file", str(shared_key)], "--no-auth and --api-key-file exclude each other"),
        (["--tls-cert", str(shared_key)], "--tls-cert and --tls-key go together"),
        (["--tls-cert", str(shared_key), "--tls-key", str(shared_key)], "chmod 600"),
        (["--api-key-file", str(empty_key)], "is empty"),
        (["--api-key-file", str(shared_key)], "chmod 600"),
        (["--threads", "0"], "--threads: Input should be greater than or equal to 1"),
        (["--max-upload-mb", "0"], "--max-upload-mb"),
        (["--backend", "nope", "--model", str(tmp_path / "new")], "unknown recognition backend 'nope'"),
    ):
        result = run_command(*args)
        assert result.returncode == 2, args
        assert message in result.stderr, result.stderr


@pytest.mark.slow
def test_a_key_others_can_read_is_refused_not_served(tmp_path: Path) -> None:
    """Whoever loosened the generated key's mode is told so, rather than served with a key others may have
    read."""
    load_backend("arcface")  # a new gallery's default backend; skips when not installed
    model = tmp_path / "model"
    model.mkdir()
    (model / GENERATED_KEY_FILE).write_text("was-private")
    (model / GENERATED_KEY_FILE).chmod(0o644)
    result = run_command("--model", str(model), "--host", "127.0.0.1", "--port", str(free_port()))
    assert result.returncode == 2 and "chmod 600" in result.stderr, result.stderr
    assert "was-private" not in result.stderr


def _self_signed(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    return cert, key


@pytest.mark.slow
def test_tls_serves_https_with_the_key_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_backend("arcface")  # a new gallery's default backend; skips when not installed
    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # how a client trusts a self-signed certificate
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    args = ["recognition", "--model", str(tmp_path / "model"), "--host", "127.0.0.1", "--port", str(port),
            "--tls-cert", str(cert), "--tls-key", str(key)]
    log = tmp_path / "recognition.log"
    with service_process(args, ready_url=f"{url}/health", log_path=log), \
            httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=cert), timeout=60) as https:
        assert https.get("/health").json()["status"] == "ok"
        assert https.get("/people").status_code == 401
        api_key = read_secret(tmp_path / "model" / GENERATED_KEY_FILE)
        assert https.get("/people", headers={"X-API-Key": api_key}).json() == {"people": []}
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/people", headers={"X-API-Key": api_key}, timeout=10)
    assert f"serving on https://127.0.0.1:{port}" in log.read_text()
