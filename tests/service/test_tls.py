"""check_tls(): every HTTP part refuses to start with a readable key, half a pair, or a mismatched pair."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from smartlock.errors import ConfigError
from smartlock.service.server import check_tls

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def test_a_private_matching_pair_passes(tmp_path: Path) -> None:
    check_tls(*self_signed(tmp_path, "a"))
    check_tls(None, None)


def test_refusals(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "a")
    other_cert, _ = self_signed(tmp_path, "b")
    with pytest.raises(ConfigError, match="go together"):
        check_tls(cert, None)
    with pytest.raises(ConfigError, match=f"--tls-cert {other_cert}"):
        check_tls(other_cert, key)
    os.chmod(key, 0o644)
    with pytest.raises(ConfigError, match=f"chmod 600 {key}"):
        check_tls(cert, key)
