"""The Door API: signed POST /unlock and /lock, GET /status and /events, audit and refusal limits.

Authentication: /unlock, /lock, /status and /events need a signed request (see auth.py) unless the
app was built with ``auth=None`` (the CLI's ``--no-auth``); even then a request from a foreign
``Origin`` is refused, and an unlock or lock must be JSON or carry ``X-Smartlock-Request`` (routes.py).
/status is signed too because it tells whether the door is open right now and who came in last. Only
GET /health (no door data) and the OpenAPI pages are public.

Every refused request (4xx) and every door action is written to the audit before its answer is sent
(identical refusals from one address within a minute share a row); an unlock whose row cannot be
written is refused (503) and the door stays locked. Accepted reads of /status and /events are not
recorded (the dashboard polls them). More than
``limiter.max_refusals`` refusals from one address within a minute block it with 429 for a minute.
Request bodies over 64 KB are refused (413) before any of them is read into memory.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from smartlock.door.audit import AuditMiddleware
from smartlock.door.auth import RequestVerifier
from smartlock.door.events import EventLog
from smartlock.door.ratelimit import RefusalLimiter
from smartlock.door.relay import Relay
from smartlock.door.routes import router
from smartlock.door.service import DoorService, auth_mode_of
from smartlock.door.settings import DEFAULT_LOCK_DELAY
from smartlock.service import create_api_app

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The relay is locked and the start recorded before the first request; stopping locks it for good."""
    service: DoorService = app.state.service
    service.start()
    if app.state.verifier is None:
        logger.warning("AUTHENTICATION IS OFF (--no-auth): anyone on the network can unlock this door")
    if service.relay.simulated:
        logger.warning("the relay is simulated (%s): no real door moves", service.relay.factory_name)
    try:
        yield
    finally:
        service.stop("server shutdown")


def create_app(
    relay: Relay,
    auth: RequestVerifier | None,
    events: EventLog,
    lock_delay: float = DEFAULT_LOCK_DELAY,
    *,
    limiter: RefusalLimiter | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """Build the Door API around a relay; ``auth=None`` accepts unsigned requests (``--no-auth``)."""
    app = create_api_app(
        "smartlock door API", __doc__ or "", max_body_bytes=max_body_bytes, lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.service = service = DoorService(relay, events, lock_delay, auth_mode=auth_mode_of(auth))
    app.state.verifier = auth
    app.state.limiter = limiter = limiter or RefusalLimiter()
    app.include_router(router)
    app.add_middleware(AuditMiddleware, service=service, limiter=limiter)  # outermost: sees every answer
    return app
