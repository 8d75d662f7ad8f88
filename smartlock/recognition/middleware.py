"""The recognition API's own guards, all before the body is parsed: the API key, the Origin of requests that
change something, and the per-image upload limit's refusal (the body limit itself is the service kit's
BodyLimitMiddleware)."""

from __future__ import annotations

import hmac
import logging

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from smartlock.docs_ui import is_docs_path
from smartlock.recognition.schemas import API_KEY_HEADER
from smartlock.service.limits import content_length, drain
from smartlock.service.origin import browser_may_be_rebound, header, same_origin
from smartlock.service.responses import json_message

__all__ = ["API_KEY_HEADER", "ApiKeyMiddleware", "OriginMiddleware", "UploadTooLarge", "is_open_path",
           "too_large_message"]

logger = logging.getLogger(__name__)

# Readable without the API key: liveness, the schema, and the documentation pages with their assets.
OPEN_PATHS = frozenset({"/health", "/openapi.json"})


def is_open_path(path: str) -> bool:
    return path in OPEN_PATHS or is_docs_path(path)


def too_large_message(limit: int, request_limit: int | None = None) -> str:
    """The 413 wording: one image's limit, and the whole request's when the body limit refused it."""
    message = f"upload too large: images are limited to {limit:,} bytes"
    if request_limit is not None:
        message += f" (and all the files of one request together to {request_limit:,})"
    return message


class UploadTooLarge(HTTPException):
    def __init__(self, limit: int, request_limit: int | None = None) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit, request_limit))


class ApiKeyMiddleware:
    """401 for a missing or wrong X-API-Key before the body is parsed, so an unauthenticated upload costs
    no multipart parsing. (The routes' dependency checks again and documents the scheme in OpenAPI.)"""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open_path(scope["path"]) or _key_ok(scope, self.expected):
            await self.app(scope, receive, send)
            return
        await drain(receive, content_length(scope) or 0)
        await json_message(401, f"missing or wrong {API_KEY_HEADER} header")(scope, receive, send)


def _key_ok(scope: Scope, expected: bytes) -> bool:
    name = API_KEY_HEADER.lower().encode()
    given = next((value for key, value in scope.get("headers", ()) if key == name), None)
    return given is not None and hmac.compare_digest(given, expected)


# Methods that can change the gallery (or cost a recognition); GET and HEAD only read.
SAFE_METHODS = frozenset({"GET", "HEAD"})


class OriginMiddleware:
    """403 for a request that may change something (any method but GET/HEAD) whose ``Origin`` header names
    another origin than this server's own (scheme://host[:port] of its ``Host``), so a web page cannot
    enroll or remove people even on a ``--no-auth`` server or from a browser that holds the key. Without
    ``Origin`` (curl, the engine, the dashboard's server-side client) the request goes on: browsers send
    it with every cross-origin POST and DELETE. Checked after the key, so a stranger learns nothing new."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in SAFE_METHODS or (
                same_origin(scope) and not browser_may_be_rebound(scope)):
            await self.app(scope, receive, send)
            return
        origin = header(scope, b"origin") or ""
        self.refused += 1
        if self.refused & (self.refused - 1) == 0:  # the 1st, 2nd, 4th, 8th...: a flood cannot fill the log
            logger.warning("refused a cross-site %s %s from Origin %r (%d refused so far)",
                           scope.get("method"), scope.get("path"), origin[:100], self.refused)
        await drain(receive, content_length(scope) or 0)
        await json_message(403, f"cross-site request refused: Origin {origin[:100]!r} is not this server's "
                           "origin")(scope, receive, send)
