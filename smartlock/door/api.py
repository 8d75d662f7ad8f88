"""The Door API: signed POST /unlock and /lock, GET /status and /events, audit and refusal limits.

Authentication: /unlock, /lock, /status and /events need a signed request (see auth.py) unless the
app was built with ``auth=None`` (the CLI's ``--no-auth``). /status is signed too because it tells
whether the door is open right now and who came in last. Only GET /health (no door data) and the
OpenAPI pages are public.

Every refused request (4xx) and every door action is written to the audit before its answer is sent;
accepted reads of /status and /events are not recorded (the dashboard polls them). More than
``limiter.max_refusals`` refusals from one address within a minute block it with 429 for a minute.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from smartlock.config import StrictModel
from smartlock.docs_ui import mount_api_docs
from smartlock.door.auth import HEADER_KEY_ID, RequestVerifier
from smartlock.door.events import MAX_PAGE, EventLog
from smartlock.door.lock import DoorLock
from smartlock.door.ratelimit import RefusalLimiter
from smartlock.door.relay import Relay
from smartlock.errors import AuthError, RelayError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
AUDIT_KEY = "smartlock.audit"  # per-request dict in the ASGI scope: what the handler learnt, for the audit
_ACTIONS = {path: path[1:] for path in ("/unlock", "/lock", "/status", "/events", "/health")}


class UnlockRequest(StrictModel):
    """Optional body of POST /unlock: who is let in, and why; stored in the audit."""

    person: str | None = Field(None, max_length=200, description="Recognised person")
    confidence: float | None = Field(None, ge=0.0, le=1.0, description="Recognition confidence")
    source: str | None = Field(None, max_length=200, description="Who asks: engine, dashboard, cli, ...")


class Refused(Exception):
    """A request the door answers with ``status`` and ``{"message": message}``; the door is untouched."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class DoorService:
    """What the app drives: the relay, the unlock window and the audit; stop() leaves it locked."""

    def __init__(self, relay: Relay, events: EventLog, lock_delay: float) -> None:
        self.relay = relay
        self.events = events
        self.door = DoorLock(relay, lock_delay, on_change=self._on_change)
        self.last_unlock: dict[str, Any] | None = events.last("unlock", "accepted")
        self._stopped = False
        self._stop_lock = threading.Lock()

    def door_state(self) -> tuple[str, str | None]:
        """("locked" | "unlocked" | "unknown", "HIGH" | "LOW" | None), read back from the pin."""
        try:
            return ("locked" if self.relay.locked else "unlocked"), self.relay.level
        except RelayError:
            return "unknown", None

    def record(self, action: str, outcome: str, **fields: Any) -> int:
        door, level = self.door_state()
        return self.events.add(action, outcome, door=door, pin_level=level, **fields)

    def _on_change(self, action: str, reason: str) -> None:
        outcome = "info" if action == "relock" else "error"
        self.record(action, outcome, reason=reason)

    def start(self, auth_mode: str) -> None:
        self.relay.lock()
        door, level = self.door_state()
        logger.info(
            "door service started: relay on %s (%s), %s, pin reads %s; auth: %s",
            self.relay.pin_name, self.relay.gpio_name, door, level, auth_mode,
        )
        self.record("start", "info", reason=f"service started; auth: {auth_mode}")

    def stop(self, why: str) -> None:
        """Lock the relay for good and record it (once); later calls do nothing."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            self.door.close()
        except RelayError as err:
            logger.critical("door service stopping (%s) but the relay did not lock: %s", why, err)
            self.record("stop", "error", reason=f"service stopped ({why}); relay did NOT lock: {err}")
            return
        door, level = self.door_state()
        logger.info("door service stopping (%s): relay %s, %s reads %s", why, door, self.relay.pin_name,
                    level)
        self.events.add("stop", "info", reason=f"service stopped ({why})", door=door, pin_level=level)


class AuditMiddleware:
    """Outermost layer: 429 for blocked addresses; audits and counts every refused request."""

    def __init__(self, app: Any, service: DoorService, limiter: RefusalLimiter) -> None:
        self.app = app
        self.service = service
        self.limiter = limiter

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        address = scope["client"][0] if scope.get("client") else "unknown"
        blocked_for = self.limiter.blocked_for(address)
        if blocked_for > 0:
            await _send_json(
                send, 429, {"message": f"too many refused requests from {address}; try again later"},
                {"retry-after": str(math.ceil(blocked_for))},
            )
            return
        audit: dict[str, Any] = {}
        scope[AUDIT_KEY] = audit

        async def send_after_audit(message: dict[str, Any]) -> None:
            # The refusal is on disk before the client hears about it.
            if message["type"] == "http.response.start":
                audit["status"] = code = message["status"]
                if 400 <= code < 500 and code != 429 and not audit.get("recorded"):
                    self._refuse(scope, address, audit, code)
            await send(message)

        try:
            await self.app(scope, receive, send_after_audit)
        except Exception as err:
            if "status" not in audit:
                self._audit(scope, address, audit, 500, "error", f"internal error: {type(err).__name__}")
            raise

    def _refuse(self, scope: dict[str, Any], address: str, audit: dict[str, Any], code: int) -> None:
        self._audit(scope, address, audit, code, "refused", audit.get("reason") or HTTPStatus(code).phrase)
        if self.limiter.record_refusal(address):
            reason = (
                f"more than {self.limiter.max_refusals} refused requests within {self.limiter.window:.0f} s:"
                f" blocked for {self.limiter.block:.0f} s"
            )
            logger.warning("address %s %s", address, reason)
            self.service.record("block", "info", client=address, reason=reason)

    def _audit(self, scope: dict[str, Any], address: str, audit: dict[str, Any], code: int, outcome: str,
               reason: str) -> None:
        path = scope.get("path", "")
        self.service.record(
            _ACTIONS.get(path, "request"), outcome, status=code, method=scope.get("method"), path=path[:200],
            client=address, key_id=audit.get("key_id"), reason=reason[:500],
        )


async def _send_json(send: Any, status: int, content: dict[str, Any], headers: dict[str, str]) -> None:
    body = json.dumps(content).encode("utf-8")
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def create_app(
    relay: Relay,
    auth: RequestVerifier | None,
    events: EventLog,
    lock_delay: float = 3.0,
    *,
    limiter: RefusalLimiter | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """Build the Door API around a relay; ``auth=None`` accepts unsigned requests (``--no-auth``)."""
    service = DoorService(relay, events, lock_delay)
    limiter = limiter or RefusalLimiter()
    auth_mode = "none (unsigned requests accepted)" if auth is None else "hmac-sha256"

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        service.start(auth_mode)
        if auth is None:
            logger.warning("AUTHENTICATION IS OFF (--no-auth): anyone on the network can unlock this door")
        if relay.simulated:
            logger.warning("the relay is simulated (%s): no real door moves", relay.factory_name)
        try:
            yield
        finally:
            service.stop("server shutdown")

    app = FastAPI(
        title="smartlock door API",
        description=__doc__,
        version="1",
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
    )
    mount_api_docs(app)
    app.state.service = service
    app.state.limiter = limiter
    app.add_middleware(AuditMiddleware, service=service, limiter=limiter)

    @app.exception_handler(Refused)
    async def refused(request: Request, err: Refused) -> JSONResponse:
        request.scope[AUDIT_KEY]["reason"] = err.message
        return JSONResponse({"message": err.message}, status_code=err.status, headers=err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"message": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        request.scope[AUDIT_KEY]["reason"] = message
        return JSONResponse({"message": message}, status_code=422)

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):  # str.isdigit() alone accepts "²"
                raise Refused(400, "Content-Length must be a number")
            if int(declared) > max_body_bytes:
                raise Refused(413, f"the body is larger than {max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise Refused(413, f"the body is larger than {max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def authenticate(request: Request, body: bytes) -> str | None:
        if auth is None:
            return None
        claimed = request.headers.get(HEADER_KEY_ID)
        request.scope[AUDIT_KEY]["key_id"] = claimed[:64] if claimed else None
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
        query = request.scope.get("query_string") or b""
        signed_path = (raw_path + (b"?" + query if query else b"")).decode("latin-1")
        try:
            return auth.verify(request.method, signed_path, request.headers, body)
        except AuthError as err:
            raise Refused(401, str(err), {"www-authenticate": "Smartlock-HMAC-SHA256"}) from err

    async def signed(request: Request) -> tuple[str | None, bytes]:
        body = await read_body(request)
        return authenticate(request, body), body

    def audit(request: Request, action: str, outcome: str, status: int, **fields: Any) -> None:
        request.scope[AUDIT_KEY]["recorded"] = True
        client = request.client.host if request.client else "unknown"
        service.record(action, outcome, status=status, method=request.method, path=request.url.path,
                       client=client, **fields)

    unlock_body = {"application/json": {"schema": UnlockRequest.model_json_schema()}}

    @app.post(
        "/unlock",
        status_code=202,
        summary="Unlock the door for the lock delay (extends an open window)",
        openapi_extra={"requestBody": {"required": False, "content": unlock_body}},
    )
    async def unlock(request: Request) -> JSONResponse:
        key_id, body = await signed(request)
        payload = parse_unlock(body)
        client = request.client.host if request.client else "unknown"
        who = payload.model_dump()
        try:
            seconds = service.door.unlock()
        except RelayError as err:
            logger.error("unlock from %s failed, the door stays locked: %s", client, err)
            audit(request, "unlock", "error", 503, key_id=key_id, reason=str(err), **who)
            raise Refused(503, "the relay cannot be driven; the door stays locked") from err
        if auth is None:
            logger.warning("UNSIGNED unlock accepted from %s (--no-auth) %s", client, who)
        else:
            logger.info("unlock accepted from %s, key %s %s", client, key_id, who)
        audit(request, "unlock", "accepted", 202, key_id=key_id, **who)
        service.last_unlock = service.events.last("unlock", "accepted")
        return JSONResponse({"status": "unlocked", "locked": False, "seconds_left": seconds}, status_code=202)

    @app.post("/lock", summary="Lock the door now")
    async def lock(request: Request) -> dict[str, Any]:
        key_id, _ = await signed(request)
        try:
            service.door.lock()
        except RelayError as err:
            logger.error("lock request failed: %s", err)
            audit(request, "lock", "error", 503, key_id=key_id, reason=str(err))
            raise Refused(503, f"the relay cannot be driven: {err}") from err
        audit(request, "lock", "accepted", 200, key_id=key_id)
        return {"status": "locked", "locked": True}

    @app.get("/status", summary="Whether the door is locked, seconds left, last unlock")
    async def status(request: Request) -> dict[str, Any]:
        await signed(request)
        door, level = service.door_state()
        return {
            "locked": {"locked": True, "unlocked": False}.get(door),
            "seconds_left": round(service.door.seconds_left(), 3),
            "lock_delay": service.door.lock_delay,
            "last_unlock": service.last_unlock,
            "fault": service.door.fault,
            "relay": {**relay.describe(), "level": level},
            "auth": auth_mode,
        }

    @app.get("/events", summary="The audit log, newest first")
    async def list_events(
        request: Request,
        limit: int = Query(50, ge=1, le=MAX_PAGE, description="How many events"),
        before: int | None = Query(None, ge=1, le=2**63 - 1, description="Only events with a smaller id"),
    ) -> dict[str, Any]:
        await signed(request)
        page = service.events.page(limit=limit, before=before)
        return {"events": page, "next_before": page[-1]["id"] if len(page) == limit else None}

    @app.get("/health", summary="Liveness (public, no door data)")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def parse_unlock(body: bytes) -> UnlockRequest:
    """The optional JSON body of /unlock; empty means no details. Raises Refused (400/422)."""
    if not body.strip():
        return UnlockRequest()
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise Refused(400, f"the body is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise Refused(400, "the body must be a JSON object")
    try:
        return UnlockRequest.model_validate(data)
    except ValidationError as err:
        details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors())
        raise Refused(422, details) from err
