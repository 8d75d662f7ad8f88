"""Deploy test helpers: systemd's own verdict on a unit file, and the command line systemd would run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is missing: apt-get install -y systemd"
)

_WORD = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "$": "$", "'": "'"}


def verify(unit: Path) -> subprocess.CompletedProcess:
    """`systemd-analyze verify` on ``unit``, offline (no running systemd is needed)."""
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                          timeout=60)


def systemd_argv(unit: Path) -> list[str]:
    """The argv systemd would execute for ExecStart=, as systemd itself parsed it.

    With debug logging, `verify` dumps the loaded unit, including each command line re-quoted by
    systemd (C escapes inside double quotes); ``$$`` becomes ``$`` only when the command is started."""
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "SYSTEMD_LOG_LEVEL": "debug"})
    lines = [line for line in result.stdout.splitlines() if "Command Line:" in line]  # the dump: stdout
    assert len(lines) == 1, result.stdout[-2000:] + result.stderr[-2000:]
    text = lines[0].split("Command Line:", 1)[1].strip()
    argv = []
    for match in _WORD.finditer(text):
        quoted, bare = match.groups()
        word = bare if bare is not None else _unescape(quoted)
        argv.append(word.replace("$$", "$"))
    return argv


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "x":
                out.append(chr(int(text[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def settings(text: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file (all sections), values in order of appearance."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def one(text: str, key: str) -> str:
    values = settings(text).get(key, [])
    assert len(values) == 1, f"{key}: {values}"
    return values[0]
