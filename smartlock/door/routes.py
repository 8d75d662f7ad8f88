"""The Door API's routes: signed POST /unlock and /lock, GET /status and /events, public GET /health.

The handlers get their collaborators from ``request.app.state`` through dependencies (``service``: the
DoorService, ``verifier``: the RequestVerifier or None for ``--no-auth``), so this router is built once,
at import, and create_app() only assembles. A refusal is an HTTPException: the shared handlers answer
it as ``{"message": ...}`` and leave the message for the audit.

Unsigned requests (``--no-auth``) are still refused when a web page could have sent them: a foreign
``Origin`` gets 403, and POST /unlock and /lock must be non-simple requests (a JSON content type or
the ``X-Smartlock-Request`` header), which a browser sends cross-site only after a CORS preflight
that this door never approves. A signature already makes a request non-simple.

An unlock is audited before the relay moves: if the row cannot be written (disk full) the answer is
503 and the door stays locked. A lock locks first and audits after: locking must never wait for, or
fail because of, the audit.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import Field, ValidationError
from starlette.exceptions import HTTPException

from smartlock.config import StrictModel
from smartlock.door.audit import AUDIT_KEY
from smartlock.door.auth import HEADER_KEY_ID, RequestVerifier
from smartlock.door.events import MAX_PAGE, AuditWriteError
from smartlock.door.service import DoorService
from smartlock.errors import AuthError, RelayError
from smartlock.service import Health
from smartlock.service.origin import REQUEST_HEADER, browser_may_be_rebound, same_origin

logger = logging.getLogger(__name__)

AUTH_SCHEME = "Smartlock-HMAC-SHA256"


class UnlockRequest(StrictModel):
    """Optional body of POST /unlock: who is let in, and why; stored in the audit."""

    person: str | None = Field(None, max_length=200, description="Recognised person")
    confidence: float | None = Field(None, ge=0.0, le=1.0, description="Recognition confidence")
    source: str | None = Field(None, max_length=200, description="Who asks: engine, dashboard, cli, ...")


class Refused(HTTPException):
    """A request the door answers with ``status`` and ``{"message": message}``; the door is untouched."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)


def door_service(request: Request) -> DoorService:
    service: DoorService = request.app.state.service
    return service


def request_verifier(request: Request) -> RequestVerifier | None:
    verifier: RequestVerifier | None = request.app.state.verifier
    return verifier


@dataclass(frozen=True)
class Signed:
    """A request whose signature was checked: the key that signed it (None on a --no-auth door), its body."""

    key_id: str | None
    body: bytes


async def signed_request(
    request: Request, verifier: Annotated[RequestVerifier | None, Depends(request_verifier)]
) -> Signed:
    """Read the body (the kit's limit already refused an oversized one) and check its signature."""
    declared = request.headers.get("content-length")
    if declared is not None and not (declared.isascii() and declared.isdigit()):  # isdigit() accepts "²"
        raise Refused(400, "Content-Length must be a number")
    if verifier is None:
        refuse_browser_request(request)
    body = b"".join([chunk async for chunk in request.stream()])
    if verifier is None:
        return Signed(None, body)
    claimed = request.headers.get(HEADER_KEY_ID)
    request.scope[AUDIT_KEY]["key_id"] = claimed[:64] if claimed else None
    raw_path = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
    query = request.scope.get("query_string") or b""
    signed_path = (raw_path + (b"?" + query if query else b"")).decode("latin-1")
    try:
        return Signed(verifier.verify(request.method, signed_path, request.headers, body), body)
    except AuthError as err:
        raise Refused(401, str(err), {"www-authenticate": AUTH_SCHEME}) from err


def refuse_browser_request(request: Request) -> None:
    """Refuse an unsigned request a web page on another site could have made (see the module doc)."""
    if not same_origin(request.scope) or browser_may_be_rebound(request.scope):
        origin = request.headers.get("origin", "")
        raise Refused(403, f"cross-site request refused: Origin {origin[:100]!r} is not this door "
                           "(a browser reaches a door by its address)")
    if request.method != "POST" or request.headers.get(REQUEST_HEADER):
        return
    content_type = request.headers.get("content-type")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        return
    if content_type is not None:
        raise Refused(415, f"an unsigned {request.url.path} must be application/json or carry "
                           f"{REQUEST_HEADER}: 1 (a web page cannot send either cross-site)")
    raise Refused(403, f"an unsigned {request.url.path} must carry {REQUEST_HEADER}: 1 or a JSON body "
                       "(a web page cannot send either cross-site)")


ServiceDep = Annotated[DoorService, Depends(door_service)]
SignedDep = Annotated[Signed, Depends(signed_request)]

router = APIRouter()


def audit(request: Request, service: DoorService, action: str, outcome: str, status: int,
          **fields: Any) -> int:
    """Record a door action answered by a route (the middleware then records nothing more); returns the
    row's id. Raises AuditWriteError."""
    request.scope[AUDIT_KEY]["recorded"] = True
    client = request.client.host if request.client else "unknown"
    return service.record(action, outcome, status=status, method=request.method, path=request.url.path,
                          client=client, **fields)


@router.post(
    "/unlock",
    status_code=202,
    summary="Unlock the door for the lock delay (extends an open window)",
    openapi_extra={"requestBody": {"required": False, "content": {
        "application/json": {"schema": UnlockRequest.model_json_schema()}}}},
)
async def unlock(request: Request, service: ServiceDep, signed: SignedDep) -> JSONResponse:
    payload = parse_unlock(signed.body)
    client = request.client.host if request.client else "unknown"
    who = payload.model_dump()
    request.scope[AUDIT_KEY]["recorded"] = True  # the service records it (the middleware adds nothing)
    try:  # audited before the relay moves: no unlock goes unrecorded (DoorService.unlock, as for MQTT)
        seconds = service.unlock(status=202, method=request.method, path=request.url.path, client=client,
                                 key_id=signed.key_id, **who)
    except AuditWriteError as err:
        logger.error("unlock from %s refused, the door stays locked: %s", client, err)
        raise Refused(503, f"{err}; the door stays locked", {"retry-after": "5"}) from err
    except RelayError as err:
        logger.error("unlock from %s failed, the door stays locked: %s", client, err)
        raise Refused(503, "the relay cannot be driven; the door stays locked") from err
    if signed.key_id is None:
        logger.warning("UNSIGNED unlock accepted from %s (--no-auth) %s", client, who)
    else:
        logger.info("unlock accepted from %s, key %s %s", client, signed.key_id, who)
    return JSONResponse({"status": "unlocked", "locked": False, "seconds_left": seconds}, status_code=202)


@router.post("/lock", summary="Lock the door now")
async def lock(request: Request, service: ServiceDep, signed: SignedDep) -> dict[str, Any]:
    try:
        service.door.lock()
    except RelayError as err:
        logger.error("lock request failed: %s", err)
        with contextlib.suppress(AuditWriteError):
            audit(request, service, "lock", "error", 503, key_id=signed.key_id, reason=str(err))
        raise Refused(503, f"the relay cannot be driven: {err}") from err
    answer: dict[str, Any] = {"status": "locked", "locked": True}
    try:
        audit(request, service, "lock", "accepted", 200, key_id=signed.key_id)
    except AuditWriteError as err:  # locked all the same: the log line is the record
        client = request.client.host if request.client else "unknown"
        logger.error("lock from %s done but not audited: %s", client, err)
        answer["audit"] = str(err)
    return answer


def mqtt_status(request: Request) -> dict[str, Any] | None:
    """The MQTT link's state (smartlock/integrations), or None when the door runs without --mqtt-url."""
    link = getattr(request.app.state, "mqtt", None)
    status: dict[str, Any] | None = None if link is None else link.status()
    return status


@router.get("/status", summary="Whether the door is locked, seconds left, last unlock",
            dependencies=[Depends(signed_request)])
async def status(request: Request, service: ServiceDep) -> dict[str, Any]:
    door, level = service.door_state()
    return {
        "locked": {"locked": True, "unlocked": False}.get(door),
        "seconds_left": round(service.door.seconds_left(), 3),
        "lock_delay": service.door.lock_delay,
        "last_unlock": service.last_unlock,
        "fault": service.door.fault,
        "relay": {**service.relay.describe(), "level": level},
        "auth": service.auth_mode,
        "mqtt": mqtt_status(request),
    }


@router.get("/events", summary="The audit log, newest first", dependencies=[Depends(signed_request)])
async def list_events(
    service: ServiceDep,
    limit: int = Query(50, ge=1, le=MAX_PAGE, description="How many events"),
    before: int | None = Query(None, ge=1, le=2**63 - 1, description="Only events with a smaller id"),
) -> dict[str, Any]:
    service.refusals.flush()  # repeated refusals counted so far
    page = service.events.page(limit=limit, before=before)
    return {"events": page, "next_before": page[-1]["id"] if len(page) == limit else None}


@router.get("/health", summary="Liveness (public, no door data); degraded when the audit or relay fails")
async def health(request: Request, service: ServiceDep) -> Health:
    mqtt = mqtt_status(request)  # only with --mqtt-url, and no broker address: /health is public
    if mqtt is None:
        return Health.of("door", problems=service.problems())
    return Health.of("door", problems=service.problems(),
                     mqtt="connected" if mqtt["connected"] else "disconnected")


def parse_unlock(body: bytes) -> UnlockRequest:
    """The optional JSON body of /unlock; empty means no details. Raises Refused (400) or a validation
    error (422)."""
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
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in err.errors(include_url=False)]
        ) from err
