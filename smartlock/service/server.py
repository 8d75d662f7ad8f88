"""serve(): run one part's ASGI app with uvicorn until SIGINT, SIGTERM or SIGHUP, then return cleanly.

uvicorn re-raises the signal that stopped it once it has shut down, which for SIGTERM (what systemd and
`up` send) kills the process before the caller's ``finally`` blocks run; a door must still lock its
relay then. Here the signal ends the server and serve() simply returns, so the caller's clean-up runs.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import ssl
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType
from typing import Any, TypedDict, Unpack

import uvicorn

from smartlock.errors import ConfigError
from smartlock.service.secrets import check_private

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ServerOptions(TypedDict, total=False):
    """How make_server() and serve() run uvicorn (all optional)."""

    on_stop: Callable[[], None] | None
    log_level: str
    access_log: bool
    tls_cert: Path | None
    tls_key: Path | None
    graceful_timeout: int
    lifespan: str


def serve(app: Any, host: str, port: int, **options: Unpack[ServerOptions]) -> signal.Signals | None:
    """Serve ``app`` on ``host:port`` until a stop signal; returns that signal (None: stopped otherwise).

    ``on_stop`` runs in its own thread as soon as a stop is asked for: endless responses (an MJPEG
    stream) must be ended by their owner, or uvicorn waits for them. Proxy headers are never trusted
    here; the dashboard trusts them only from the addresses it is told to.
    """
    server = make_server(app, host, port, **options)
    server.run()
    return server.stopped_by


def make_server(
    app: Any,
    host: str,
    port: int,
    *,
    on_stop: Callable[[], None] | None = None,
    log_level: str = "info",
    access_log: bool = False,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    graceful_timeout: int = 5,
    lifespan: str = "on",
) -> _Server:
    """The uvicorn server serve() runs, for callers that set ``should_exit`` themselves (``up``)."""
    check_tls(tls_cert, tls_key)
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, log_level=log_level.lower(), access_log=access_log,
        proxy_headers=False, server_header=False, lifespan=lifespan,  # type: ignore[arg-type]
        timeout_graceful_shutdown=graceful_timeout,
        ssl_certfile=str(tls_cert) if tls_cert else None, ssl_keyfile=str(tls_key) if tls_key else None,
    )
    return _Server(config, on_stop)


def check_tls(tls_cert: Path | None, tls_key: Path | None) -> None:
    """ConfigError unless both or neither are given, the key is private (0600), and the certificate and
    key load and match: a part must refuse to start rather than serve with a readable key."""
    if tls_cert is None and tls_key is None:
        return
    if tls_cert is None or tls_key is None:
        raise ConfigError("--tls-cert and --tls-key go together")
    check_private(tls_key, "TLS key file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls_cert, tls_key)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"--tls-cert {tls_cert} / --tls-key {tls_key}: {err}") from err


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_stop = on_stop
        self._stop_started = threading.Event()
        self.stopped_by: signal.Signals | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self._stop_started.is_set():
            self._stop_started.set()
            self.stopped_by = signal.Signals(sig)
            logger.info("received %s: shutting down", signal.Signals(sig).name)
            if self._on_stop is not None:
                # This runs inside a signal handler: the owner's stop may block, so not here.
                threading.Thread(target=self._on_stop, name="serve-on-stop", daemon=True).start()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Unlike uvicorn's own: SIGHUP too, and no re-raise of the signal after the shutdown.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
