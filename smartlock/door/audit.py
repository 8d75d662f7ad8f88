"""The door's outermost layer: 429 for blocked addresses, and every refused request in the audit log.

Identical refusals from one address within a minute share one row (refusals.py); an audit that cannot
be written never turns a refusal into a 500: the refusal is still answered, and /health says why.

The reason recorded is the message the client is sent: the shared error handlers leave it in the
request scope under ``ERROR_MESSAGE_KEY``; what the routes learnt (the key id claimed) is under
``AUDIT_KEY``.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smartlock.door.ratelimit import RefusalLimiter
from smartlock.door.service import DoorService
from smartlock.service import json_message
from smartlock.service.responses import ERROR_MESSAGE_KEY

logger = logging.getLogger(__name__)

AUDIT_KEY = "smartlock.audit"  # per-request dict in the ASGI scope: what the handler learnt, for the audit
ACTIONS = {path: path[1:] for path in ("/unlock", "/lock", "/status", "/events", "/health")}


class AuditMiddleware:
    """Outermost layer: 429 for blocked addresses; audits and counts every refused request."""

    def __init__(self, app: ASGIApp, service: DoorService, limiter: RefusalLimiter) -> None:
        self.app = app
        self.service = service
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        address = scope["client"][0] if scope.get("client") else "unknown"
        blocked_for = self.limiter.blocked_for(address)
        if blocked_for > 0:
            refusal = json_message(429, f"too many refused requests from {address}; try again later",
                                   headers={"retry-after": str(math.ceil(blocked_for))})
            await refusal(scope, receive, send)
            return
        audit: dict[str, Any] = {}
        scope[AUDIT_KEY] = audit

        async def send_after_audit(message: Message) -> None:
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

    def _refuse(self, scope: Scope, address: str, audit: dict[str, Any], code: int) -> None:
        reason = str(scope.get(ERROR_MESSAGE_KEY) or HTTPStatus(code).phrase)
        path = scope.get("path", "")
        self.service.refuse(
            ACTIONS.get(path, "request"), client=address, method=str(scope.get("method")), status=code,
            path=path[:200], key_id=audit.get("key_id"), reason=reason[:500],
        )
        if self.limiter.record_refusal(address):
            reason = (
                f"more than {self.limiter.max_refusals} refused requests within {self.limiter.window:.0f} s:"
                f" blocked for {self.limiter.block:.0f} s"
            )
            logger.warning("address %s %s", address, reason)
            self.service.record_quietly("block", "info", client=address, reason=reason)

    def _audit(self, scope: Scope, address: str, audit: dict[str, Any], code: int, outcome: str,
               reason: str) -> None:
        path = scope.get("path", "")
        self.service.record_quietly(
            ACTIONS.get(path, "request"), outcome, status=code, method=scope.get("method"), path=path[:200],
            client=address, key_id=audit.get("key_id"), reason=reason[:500],
        )
