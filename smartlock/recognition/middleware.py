"""ASGI guards of the recognition API: the upload size limit and the API key, checked before parsing."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from smartlock.docs_ui import is_docs_path

API_KEY_HEADER = "X-API-Key"
# Readable without the API key: liveness, the schema, and the documentation pages with their assets.
OPEN_PATHS = frozenset({"/health", "/openapi.json"})


def is_open_path(path: str) -> bool:
    return path in OPEN_PATHS or is_docs_path(path)


class UploadTooLarge(HTTPException):
    def __init__(self, limit: int, request_limit: int | None = None) -> None:
        detail = f"upload too large: images are limited to {limit:,} bytes"
        if request_limit is not None:
            detail += f" (and all the files of one request together to {request_limit:,})"
        super().__init__(status_code=413, detail=detail)


class BodyLimitMiddleware:
    """413 when Content-Length says the body is over ``limit``, and while reading a body without one
    (chunked) as soon as the bytes received pass it, before any of it is parsed. ``image_limit`` (one
    file's limit, which the routes enforce) is only quoted in the message."""

    def __init__(self, app: ASGIApp, limit: int, image_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.image_limit = image_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await _drain(receive, declared)
            await json_message(413, self._too_large().detail)(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> AsgiMessage:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise self._too_large()
            return message

        async def tracking_send(message: AsgiMessage) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except UploadTooLarge as err:
            # Normally the app's HTTPException handler answers; this covers a read outside a route.
            if started:
                raise
            await json_message(413, err.detail)(scope, receive, send)

    def _too_large(self) -> UploadTooLarge:
        return UploadTooLarge(self.image_limit, self.limit)


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
        await _drain(receive, _content_length(scope) or 0)
        await json_message(401, f"missing or wrong {API_KEY_HEADER} header")(scope, receive, send)


def _key_ok(scope: Scope, expected: bytes) -> bool:
    name = API_KEY_HEADER.lower().encode()
    given = next((value for key, value in scope.get("headers", ()) if key == name), None)
    return given is not None and hmac.compare_digest(given, expected)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _drain(receive: Receive, declared: int, most: int = 64 * 2**20) -> None:
    """Read and drop a refused body (up to ``most`` bytes): closing the socket with unread data would
    reset the connection, and the client would see a broken pipe instead of the 413."""
    seen = 0
    while seen < min(declared, most):
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def json_message(status: int, message: str, detail: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"message": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)
