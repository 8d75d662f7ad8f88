"""Relaying a URL: an MJPEG stream (parts passed through), a JPEG snapshot URL (polled), or OpenCV/FFmpeg.

Relaying another smartlock camera with its token (``--source-token-file``), each upstream frame is checked
(``signing.FrameGate``) and dropped unless signed by that token, fresh and new; the hub then signs what it
relays with this camera's own token, keeping the upstream capture time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx

from smartlock.camera.imaging import load_cv2
from smartlock.camera.mjpeg import JPEG_SOI, MAX_PART_BYTES, boundary_of, iter_multipart, part_timestamp
from smartlock.camera.signing import FrameGate, access_proof
from smartlock.camera.source_base import OpenCVSource, Pacer, RawFrame, Source
from smartlock.errors import CameraError
from smartlock.logs import redact_url


class UrlSource(Source):
    """Relays a URL: an MJPEG stream (passed through, parsed here), a JPEG snapshot URL (polled at ``fps``),
    or anything else OpenCV's FFmpeg can read (rtsp://, HLS, ...). With ``token`` (an upstream smartlock
    camera's), each connection proves it (``Authorization: Smartlock-Proof``, the token itself never
    leaves) and only frames signed with it are relayed."""

    kind = "url"

    def __init__(
        self,
        url: str,
        *,
        fps: float = 24.0,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        token: str | None = None,
    ) -> None:
        super().__init__(f"url {redact_url(url)}", None)
        self.url = url
        self._token = token
        self.gate = FrameGate(token, where=self.name) if token else None
        self.fallback_fps = fps
        self._transport = transport
        self._timeout = timeout
        self._client: httpx.Client | None = None
        self._response: httpx.Response | None = None
        self._parts: Iterator[tuple[dict[str, str], bytes]] | None = None
        self._pending: bytes | None = None
        self._pacer: Pacer | None = None
        self._capture: _UrlCapture | None = None
        self.mode = ""

    @property
    def is_open(self) -> bool:
        return bool(self.mode)

    def open(self) -> None:
        self.close()
        if urlsplit(self.url).scheme.lower() not in ("http", "https"):
            if self.gate is not None:
                raise CameraError(f"{self.name}: an upstream token needs an http(s) smartlock camera URL")
            self._open_opencv()
            return
        timeout = httpx.Timeout(self._timeout, connect=5.0)
        headers = {"Authorization": access_proof(self._token)} if self._token else {}
        client = httpx.Client(transport=self._transport, timeout=timeout, follow_redirects=True,
                              headers=headers)
        try:
            response = client.send(client.build_request("GET", self.url), stream=True)
        except httpx.HTTPError as err:
            client.close()
            raise CameraError(f"{self.name}: cannot connect: {err}") from err
        try:
            mode = self._adopt(client, response)
        except BaseException:
            response.close()
            client.close()
            raise
        if mode is None:  # neither MJPEG nor JPEG: perhaps FFmpeg can read it
            response.close()
            client.close()
            self._open_opencv()

    def _adopt(self, client: httpx.Client, response: httpx.Response) -> str | None:
        """Keep ``client`` (and for MJPEG ``response``) when the answer is a stream or a snapshot."""
        if response.status_code != 200:
            raise CameraError(f"{self.name}: answered HTTP {response.status_code}")
        content_type = response.headers.get("content-type", "")
        if self.gate is not None and not content_type.lower().startswith("multipart/"):
            raise CameraError(f"{self.name}: not an MJPEG stream, so its frames cannot be verified")
        if content_type.lower().startswith("multipart/"):
            boundary = boundary_of(content_type)
            if not boundary:
                raise CameraError(f"{self.name}: multipart stream without a boundary")
            self._parts = iter_multipart(response.iter_bytes(), boundary)
            self._client, self._response = client, response
            self.nominal_fps = None
            self.mode = "mjpeg"
        elif content_type.lower().startswith("image/jpeg"):
            self._pending = _read_jpeg(response, self.name)
            self._client = client
            self.nominal_fps = self.fallback_fps
            self._pacer = self._pacer or Pacer(self.fallback_fps)
            self.mode = "snapshot"
        return self.mode or None

    def _open_opencv(self) -> None:
        self._capture = _UrlCapture(self.url, self.name)
        self._capture.open()
        self.nominal_fps = None
        self.mode = "opencv"

    def read(self) -> RawFrame:
        if self.mode == "mjpeg":
            return self._read_part()
        if self.mode == "snapshot":
            return self._read_snapshot()
        if self.mode == "opencv" and self._capture is not None:
            return self._capture.read()
        raise CameraError(f"{self.name} is not open")

    def _read_part(self) -> RawFrame:
        assert self._parts is not None
        while True:
            try:
                headers, body = next(self._parts)
            except httpx.HTTPError as err:
                raise CameraError(f"{self.name}: {err}") from err
            if self.gate is not None and not self.gate.admit(headers, body):
                if self._interrupted.is_set():  # a stream of nothing but dropped frames must not hold a stop
                    raise CameraError(f"{self.name}: stopped")
                continue
            if body.startswith(JPEG_SOI):
                return RawFrame(part_timestamp(headers), jpeg=body)

    def _read_snapshot(self) -> RawFrame:
        assert self._client is not None and self._pacer is not None
        if self._pending is None:
            try:
                response = self._client.send(self._client.build_request("GET", self.url), stream=True)
            except httpx.HTTPError as err:
                raise CameraError(f"{self.name}: {err}") from err
            if response.status_code != 200:
                response.close()
                raise CameraError(f"{self.name}: answered HTTP {response.status_code}")
            self._pending = _read_jpeg(response, self.name)
        jpeg, self._pending = self._pending, None
        self._pacer.wait(self)
        return RawFrame(time.time(), jpeg=jpeg)

    def close(self) -> None:
        self.mode = ""
        self._parts = None
        self._pending = None
        if self._response is not None:
            self._response.close()
            self._response = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._capture is not None:
            self._capture.close()
            self._capture = None


def _read_jpeg(response: httpx.Response, name: str) -> bytes:
    """A snapshot answer's body, refused past MAX_PART_BYTES rather than buffered; closes ``response``."""
    data = bytearray()
    try:
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > MAX_PART_BYTES:
                raise CameraError(f"{name}: a snapshot of more than {MAX_PART_BYTES} bytes")
    except httpx.HTTPError as err:
        raise CameraError(f"{name}: {err}") from err
    finally:
        response.close()
    if not data.startswith(JPEG_SOI):
        raise CameraError(f"{name}: the answer is not a JPEG")
    return bytes(data)


class _UrlCapture(OpenCVSource):
    """rtsp:// and other non-MJPEG URLs through OpenCV's FFmpeg backend, with bounded open/read waits."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(name, None)
        self.url = url

    def open(self) -> None:
        cv2 = load_cv2()
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
        self._capture = self._open_capture(self.url, "CAP_FFMPEG", params)

    def read(self) -> RawFrame:
        image = self._grab() if self._capture is not None else None
        if image is None:
            raise CameraError(f"{self.name} returned no frame")
        return RawFrame(time.time(), image=image)
