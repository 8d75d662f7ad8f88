"""The one error body of every part, and where it is left for an audit to read."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

# The message of an error answer is also left in the request scope under this key, for audits.
ERROR_MESSAGE_KEY = "smartlock.error_message"


def json_message(
    status: int,
    message: str,
    detail: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The one error body: ``{"message": ...}`` (plus ``detail`` for validation errors)."""
    body: dict[str, Any] = {"message": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)
