"""HTTP clients of the dashboard: the camera service's snapshot, health and MJPEG stream; the door's audit
for a period (read through the door client's signed GET /events, page by page)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx

from smartlock.camera.signing import access_proof
from smartlock.errors import ServiceError
from smartlock.web.exports import seconds

logger = logging.getLogger(__name__)


class CameraLink:
    """The camera service's snapshot, health and MJPEG stream (``base_url`` like http://127.0.0.1:8081)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 3.0,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._http = httpx.Client(timeout=timeout, transport=transport)
        self._async_transport = async_transport

    def close(self) -> None:
        self._http.close()

    def _auth(self) -> dict[str, str]:
        # A fresh proof of the token per request: the token itself (which also keys the frame
        # signatures) never travels, so whoever answers this URL cannot learn it.
        return {"Authorization": access_proof(self._token)} if self._token else {}

    def snapshot(self) -> bytes:
        response = self._get("/snapshot.jpg")
        if not response.content.startswith(b"\xff\xd8"):
            raise ServiceError("the camera's snapshot is not a JPEG")
        return response.content

    def health(self) -> dict:
        try:
            data = self._get("/health").json()
        except ValueError as err:
            raise ServiceError("the camera's /health is not JSON") from err
        return data if isinstance(data, dict) else {"status": data}

    def _get(self, path: str) -> httpx.Response:
        try:
            response = self._http.get(self.base_url + path, headers=self._auth())
        except httpx.HTTPError as err:
            raise ServiceError(f"the camera did not answer: {type(err).__name__}: {err}") from err
        if not response.is_success:
            raise ServiceError(f"the camera answered {response.status_code} to {path}")
        return response

    async def stream(self) -> tuple[str, AsyncIterator[bytes]]:
        """(content type, body chunks) of the camera's MJPEG stream; ServiceError when it cannot open."""
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout, read=15.0), transport=self._async_transport,
        )
        request = client.build_request("GET", self.base_url + "/stream.mjpg", headers=self._auth())
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as err:
            await client.aclose()
            raise ServiceError(f"the camera stream did not open: {type(err).__name__}: {err}") from err
        if not response.is_success:
            await response.aclose()
            await client.aclose()
            raise ServiceError(f"the camera answered {response.status_code} to /stream.mjpg")

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            except httpx.HTTPError as err:
                logger.info("camera stream ended: %s", err)
            finally:
                await response.aclose()
                await client.aclose()

        content_type = response.headers.get("content-type", "multipart/x-mixed-replace; boundary=FRAME")
        return content_type, body()


DOOR_PAGE = 500  # the door's largest page of GET /events
MAX_DOOR_ROWS = 100_000  # the door keeps at most this many rows by default


class DoorEvents(Protocol):
    """The door client's audit listing (smartlock.door.client.DoorClient.events)."""

    def events(self, limit: int = 50, before: int | None = None) -> dict[str, Any]: ...


def door_audit(door: DoorEvents, since: float | None = None, until: float | None = None,
               max_rows: int = MAX_DOOR_ROWS) -> list[dict[str, Any]]:
    """The door's audit rows of [since, until), oldest first, at most ``max_rows`` (the newest ones): read
    newest first a page at a time until a row older than ``since``. Raises the client's DoorError."""
    rows: list[dict[str, Any]] = []
    before: int | None = None
    for _ in range(max_rows // DOOR_PAGE + 2):  # bounded: the door's history is bounded too
        page = door.events(limit=DOOR_PAGE, before=before)
        events = page.get("events") if isinstance(page, dict) else None
        if not isinstance(events, list) or not events:
            break
        for row in events:
            if not isinstance(row, dict):
                continue
            moment = seconds(row.get("time"))
            if moment is None:
                continue
            if since is not None and moment < since:
                return rows[::-1]
            if until is None or moment < until:
                rows.append(row)
                if len(rows) >= max_rows:
                    return rows[::-1]
        next_before = page.get("next_before")
        if not isinstance(next_before, int) or isinstance(next_before, bool):
            break
        before = next_before
    return rows[::-1]
