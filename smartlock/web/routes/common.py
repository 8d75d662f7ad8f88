"""Small helpers the dashboard's routers share: JPEG file answers, 404s, JSON body fields, names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException

from smartlock.errors import ConfigError

MAX_PHOTOS = 20
MAX_PHOTO_BYTES = 20 * 2**20
MAX_ROW_ID = 2**63 - 1  # SQLite's largest integer: a bigger ``before`` would be an OverflowError (500)


def jpeg_file(path: Path) -> FileResponse:
    return FileResponse(path, media_type="image/jpeg", headers={"cache-control": "private, max-age=3600"})


def missing(what: str) -> HTTPException:
    return HTTPException(404, detail=f"{what} not found")


def json_fields(body: Any, *fields: str) -> list[Any]:
    if not isinstance(body, dict):
        raise ConfigError("expected a JSON object")
    return [body.get(name) for name in fields]


def person_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("give the person's name")
    return value.strip()
