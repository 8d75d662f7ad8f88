"""What the dashboard talks to and keeps: the camera over HTTP, live face boxes, frames captured from the
live view and the frames the collector saved."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from smartlock.camera.mjpeg import jpeg_size
from smartlock.errors import ServiceError
from smartlock.fileio import atomic_write

log = logging.getLogger(__name__)


class Recognition(Protocol):
    """The part of smartlock.recognition.client.RecognitionClient the dashboard uses."""

    def recognize_jpeg(self, jpeg: bytes, include_predictions: bool = False) -> list[dict]: ...
    def people(self) -> list[dict]: ...
    def enroll(self, name: str, files: list[tuple[str, bytes]]) -> dict: ...
    def remove_person(self, name: str) -> None: ...
    def remove_image(self, name: str, image_id: str) -> None: ...
    def health(self) -> dict: ...
    def calibration(self) -> dict: ...


class Door(Protocol):
    """The part of smartlock.door.client.DoorClient the dashboard uses."""

    def lock(self) -> None: ...
    def status(self) -> dict[str, Any]: ...
    def events(self, limit: int = 50, before: int | None = None) -> dict[str, Any]: ...


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
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout
        self._http = httpx.Client(timeout=timeout, transport=transport, headers=self._headers)
        self._async_transport = async_transport

    def close(self) -> None:
        self._http.close()

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
            response = self._http.get(self.base_url + path)
        except httpx.HTTPError as err:
            raise ServiceError(f"the camera did not answer: {type(err).__name__}: {err}") from err
        if not response.is_success:
            raise ServiceError(f"the camera answered {response.status_code} to {path}")
        return response

    async def stream(self) -> tuple[str, AsyncIterator[bytes]]:
        """(content type, body chunks) of the camera's MJPEG stream; ServiceError when it cannot open."""
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout, read=15.0), transport=self._async_transport,
            headers=self._headers,
        )
        request = client.build_request("GET", self.base_url + "/stream.mjpg")
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
                log.info("camera stream ended: %s", err)
            finally:
                await response.aclose()
                await client.aclose()

        content_type = response.headers.get("content-type", "multipart/x-mixed-replace; boundary=FRAME")
        return content_type, body()


class LiveFaces:
    """Faces in the camera's latest frame, recognised at most every ``min_interval`` s however many
    pages ask (one recognition at a time; callers in between get the last answer)."""

    def __init__(
        self,
        camera: CameraLink,
        recognition: Recognition,
        min_interval: float = 0.4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera = camera
        self.recognition = recognition
        self.min_interval = min_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict | None = None
        self._last_at = -1e9

    def latest(self) -> dict:
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last_at < self.min_interval:
                return self._last
            jpeg = self.camera.snapshot()
            size = jpeg_size(jpeg) or (0, 0)
            faces = self.recognition.recognize_jpeg(jpeg)
            self._last = {
                "width": size[0],
                "height": size[1],
                "faces": [
                    {
                        "label": face["top_prediction"]["label"],
                        "confidence": face["top_prediction"]["confidence"],
                        "box": face["bounding_box"],
                    }
                    for face in faces
                ],
                "time": time.time(),
                "jpeg": jpeg,  # for the timeline's pictures; the API leaves it out
            }
            self._last_at = self._clock()
            return self._last


class CaptureStore:
    """Frames taken from the live view for enrollment: JPEG files, the newest ``keep`` kept."""

    def __init__(self, folder: Path, keep: int = 24) -> None:
        self.folder = Path(folder)
        self.keep = keep
        self.folder.mkdir(parents=True, exist_ok=True)

    def add(self, jpeg: bytes) -> str:
        capture_id = f"{int(time.time() * 1000):013d}-{secrets.token_hex(3)}"
        atomic_write(self.folder / f"{capture_id}.jpg", jpeg)
        for old in self._files()[: -self.keep]:
            with contextlib.suppress(OSError):
                old.unlink()
        return capture_id

    def list(self) -> list[str]:
        return [path.stem for path in reversed(self._files())]

    def path(self, capture_id: str) -> Path | None:
        if not re.fullmatch(r"[0-9]{13}-[0-9a-f]{6}", capture_id):
            return None
        target = self.folder / f"{capture_id}.jpg"
        return target if target.is_file() else None

    def remove(self, capture_id: str) -> None:
        target = self.path(capture_id)
        if target is not None:
            with contextlib.suppress(OSError):
                target.unlink()

    def _files(self) -> list[Path]:
        return sorted(self.folder.glob("[0-9]*.jpg"))


@dataclass(frozen=True)
class CollectedFrame:
    name: str  # the frame's file name: <label>-<confidence:.2f>-<timestamp>.jpeg
    label: str
    confidence: float | None
    taken: str
    crop: str | None  # file name of the best in-band face crop, when the collector saved one

    def to_api(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "confidence": self.confidence,
            "taken": self.taken,
            "image": f"/api/collected/{self.name}",
            "thumb": f"/api/collected/{self.crop or self.name}",
        }


_COLLECTED = re.compile(r"(?P<label>.+)-(?P<confidence>[0-9]+\.[0-9]+)-(?P<taken>\d{4}-\d\d-\d\d.+)\.jpeg")
_COLLECTED_FILE = re.compile(r"[^/\\\x00]+\.jpeg")


class CollectedFrames:
    """The frames `smartlock collect` saved (its --log-path), newest first."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def list(self, limit: int = 60) -> list[CollectedFrame]:
        if not self.folder.is_dir():
            return []
        frames = []
        paths = sorted(
            (p for p in self.folder.glob("*.jpeg") if ".face-" not in p.name),
            key=lambda p: p.stat().st_mtime if p.exists() else 0,
            reverse=True,
        )
        for path in paths[:limit]:
            match = _COLLECTED.fullmatch(path.name)
            if match is None:
                continue
            frames.append(
                CollectedFrame(
                    name=path.name,
                    label=match["label"],
                    confidence=float(match["confidence"]),
                    taken=match["taken"],
                    crop=self._crop_of(path),
                )
            )
        return frames

    def path(self, name: str) -> Path | None:
        if not _COLLECTED_FILE.fullmatch(name) or name.startswith("."):
            return None
        target = self.folder / name
        return target if target.is_file() else None

    def crop_path(self, name: str) -> Path | None:
        frame = self.path(name)
        crop = self._crop_of(frame) if frame is not None else None
        return self.folder / crop if crop else None

    def _crop_of(self, frame: Path) -> str | None:
        sidecar = frame.with_name(frame.name[: -len(".jpeg")] + ".json")
        try:
            faces = json.loads(sidecar.read_text(encoding="utf-8")).get("faces", [])
        except (OSError, ValueError, AttributeError):
            return None
        crops = [face for face in faces if isinstance(face, dict) and face.get("crop")]
        if not crops:
            return None
        best = max(crops, key=lambda face: face.get("top_prediction", {}).get("confidence", 0.0))
        crop = str(best["crop"])
        return crop if (self.folder / crop).is_file() and "/" not in crop else None
