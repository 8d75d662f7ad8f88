"""HTTP clients of the dashboard: the camera service's snapshot, health and MJPEG stream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx

from smartlock.camera.signing import access_proof
from smartlock.errors import ServiceError

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
