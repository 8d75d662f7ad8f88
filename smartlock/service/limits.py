"""Request-body size limit enforced while the body arrives, before any of it is parsed (ASGI middleware)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smartlock.service.responses import ERROR_MESSAGE_KEY, json_message

DRAIN_AT_MOST = 2**20


class BodyTooLarge(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


def too_large_message(limit: int) -> str:
    return f"request body too large: the limit is {limit:,} bytes"


class BodyLimitMiddleware:
    """413 when Content-Length says the body is over the limit, or as soon as the bytes of a body without
    one (chunked) pass it. ``limit_for(path)`` gives each path its own limit (a login form a few KB, an
    upload 20 MB); ``message(limit)`` words the refusal."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        *,
        limit_for: Callable[[str], int] | None = None,
        message: Callable[[int], str] = too_large_message,
    ) -> None:
        self.app = app
        self.limit_for = limit_for or (lambda _path: limit)
        self.message = message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = content_length(scope)
        if declared is not None and declared > limit:
            # Read a little of it so the client hears the 413 instead of a reset; not the whole body.
            await drain(receive, declared)
            scope[ERROR_MESSAGE_KEY] = self.message(limit)
            await json_message(413, self.message(limit))(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(self.message(limit))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as err:
            # Normally the app's HTTPException handler answers; this covers a read outside a route.
            if started:
                raise
            scope[ERROR_MESSAGE_KEY] = str(err.detail)
            await json_message(413, str(err.detail))(scope, receive, send)


def content_length(scope: Scope) -> int | None:
    """The request's Content-Length, or None when absent or not a plain number."""
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def drain(receive: Receive, declared: int, most: int = DRAIN_AT_MOST) -> None:
    """Read and drop a refused body (up to ``most`` bytes): closing the socket with unread data would
    reset the connection, and the client would see a broken pipe instead of the refusal."""
    seen = 0
    while seen < min(declared, most):
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return
