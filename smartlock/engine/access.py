"""How the engine and the collector reach the camera and the recognition API with their secrets, and keep
those secrets out of their logs.

Secrets come from 0600 files (``--face-recognition-api-key-file``, ``--camera-token-file``), so `up` never
puts them on a command line or in the environment; the older ``--face-recognition-api-key`` and
``$SMARTLOCK_API_KEY`` still work. A camera token read from a file never travels at all: the reader proves
it holds it (``Authorization: Smartlock-Proof``, see ``smartlock.camera.signing``), so a rogue server at the
camera URL cannot learn it, and verifies every frame's signature with it. A ``?token=`` someone put in
``--camera-url`` is masked in every log line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from smartlock.engine.settings import API_KEY_ENV
from smartlock.errors import ConfigError
from smartlock.logs import redact_url
from smartlock.service import read_secret

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from smartlock.engine.frames import StreamOpener

def recognition_api_key(key_file: Path | None, key: str | None = None) -> str | None:
    """The recognition API key: from ``key_file`` (0600) when given, else ``key``, else $SMARTLOCK_API_KEY."""
    if key_file is not None:
        return read_secret(key_file, "recognition API key file")
    if key:
        logger.warning("--face-recognition-api-key puts the key on the command line, where every user of "
                       "this machine can read it (ps, /proc): use --face-recognition-api-key-file FILE")
    return key or os.environ.get(API_KEY_ENV) or None


def camera_token(token_file: Path | None) -> str | None:
    return read_secret(token_file, "camera token file") if token_file is not None else None


def stream_opener(url: str, token: str | None) -> StreamOpener:
    """The frame reader's ``opener`` for ``url``. With ``token`` each connection proves it holds the token
    (``Authorization: Smartlock-Proof``) and every frame must be signed with it (the reader's ``rejected``
    counts the drops); ConfigError when that URL cannot carry a header."""
    from smartlock.camera.signing import FrameGate
    from smartlock.engine.frames import StreamOpener

    if token is None:
        return StreamOpener()
    if not url.startswith(("http://", "https://")):
        raise ConfigError("--camera-token-file needs an http(s) --camera-url")
    gate = FrameGate(token, where=redact_url(url))
    return StreamOpener(token=token, gate=gate)
