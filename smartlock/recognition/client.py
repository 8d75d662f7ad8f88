"""HTTP client of the Face Recognition API (engine, collector, dashboard); every failure is a ServiceError."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from smartlock.errors import ServiceError, ServiceRefused

API_KEY_HEADER = "X-API-Key"
ENDPOINT = "/face-recognition"


def base_url_of(url: str) -> str:
    """``http://host:5000/face-recognition`` -> ``http://host:5000`` (any prefix before the last segment
    is kept, so a service mounted under ``/api/`` works too)."""
    stripped = url.rstrip("/")
    if stripped.endswith(ENDPOINT):
        return stripped[: -len(ENDPOINT)]
    head, _, _ = stripped.rpartition("/")
    return head if "://" in head else stripped


class RecognitionClient:
    """Talks to one recognition service. ``url`` is the full endpoint URL as the seed's engine takes it
    (``http://host:5000/face-recognition``); the other endpoints hang off its base URL.

    ``transport`` is httpx's seam: tests pass ``httpx.MockTransport``; None means real sockets.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.base_url = base_url_of(url)
        headers = {API_KEY_HEADER: api_key} if api_key else {}
        self._http = httpx.Client(timeout=timeout, transport=transport, headers=headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RecognitionClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- recognition -------------------------------------------------------------------------------

    def recognize_jpeg(self, jpeg: bytes, include_predictions: bool = False) -> list[dict]:
        """The ``faces`` list for one encoded image (JPEG, or any format the service decodes)."""
        data = {"include_predictions": "true"} if include_predictions else None
        payload = self._call(
            "POST", self.url, files={"image": ("frame.jpg", jpeg, "image/jpeg")}, data=data
        )
        faces = payload.get("faces") if isinstance(payload, dict) else None
        if not isinstance(faces, list):
            raise ServiceError(f"{self.url}: answer has no 'faces' list: {_short(payload)}")
        for face in faces:
            _check_face(face, self.url)
        return faces

    # -- gallery -----------------------------------------------------------------------------------

    def people(self) -> list[dict]:
        """``[{"name", "image_count", "images": [{"image_id", "source"}]}]``, sorted by name."""
        payload = self._call("GET", f"{self.base_url}/people")
        people = payload.get("people") if isinstance(payload, dict) else None
        if not isinstance(people, list):
            raise ServiceError(f"{self.base_url}/people: answer has no 'people' list: {_short(payload)}")
        return people

    def enroll(
        self, name: str, files: Sequence[tuple[str, bytes] | str | Path], multiple_faces: str = "refuse"
    ) -> dict:
        """Upload photos of ``name`` (pairs of file name and bytes, or paths); a photo with several faces
        is refused, or with ``multiple_faces="largest"`` its largest face is enrolled. Returns
        ``{"name", "enrolled", "refused", "outcomes": [{"filename", "enrolled", "image_id", "reason"}]}``."""
        uploads = []
        for item in files:
            if isinstance(item, str | Path):
                path = Path(item)
                try:
                    uploads.append(("images", (path.name, path.read_bytes())))
                except OSError as err:
                    raise ServiceError(f"cannot read {path}: {err.strerror or err}") from err
            else:
                filename, data = item
                uploads.append(("images", (filename, data)))
        if not uploads:
            raise ServiceError("enroll: no photos given")
        payload = self._call(
            "POST", f"{self._person_url(name)}/images", files=uploads, data={"multiple_faces": multiple_faces}
        )
        if not isinstance(payload, dict) or not isinstance(payload.get("outcomes"), list):
            raise ServiceError(f"enroll {name!r}: answer has no 'outcomes' list: {_short(payload)}")
        return payload

    def remove_person(self, name: str) -> None:
        """ServiceRefused with status_code 404 when ``name`` is not enrolled."""
        self._call("DELETE", self._person_url(name))

    def remove_image(self, name: str, image_id: str) -> None:
        self._call("DELETE", f"{self._person_url(name)}/images/{_segment(image_id)}")

    def image_crop(self, name: str, image_id: str) -> bytes:
        """The JPEG face crop kept when the photo was enrolled (for the dashboard's people page)."""
        url = f"{self._person_url(name)}/images/{_segment(image_id)}"
        response = self._send("GET", url)
        if response.headers.get("content-type", "").split(";")[0].strip() != "image/jpeg":
            raise ServiceError(f"GET {url}: expected a JPEG, got {response.headers.get('content-type')!r}")
        return response.content

    # -- service -----------------------------------------------------------------------------------

    def health(self) -> dict:
        """``{"status", "version", "backend", "people", "images", "model_hashes"}``."""
        return self._dict("GET", f"{self.base_url}/health")

    def calibration(self) -> dict:
        return self._dict("GET", f"{self.base_url}/calibration")

    # -- plumbing ----------------------------------------------------------------------------------

    def _person_url(self, name: str) -> str:
        return f"{self.base_url}/people/{_segment(name)}"

    def _dict(self, method: str, url: str) -> dict:
        payload = self._call(method, url)
        if not isinstance(payload, dict):
            raise ServiceError(f"{url}: expected a JSON object, got {_short(payload)}")
        return payload

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The response if its status is 2xx; ServiceRefused (with the service's message) otherwise."""
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as err:
            raise ServiceError(f"{method} {url}: no answer within {self._http.timeout.read} s") from err
        except httpx.HTTPError as err:
            raise ServiceError(f"{method} {url}: {type(err).__name__}: {err}") from err
        if not response.is_success:
            try:
                payload = response.json()
            except ValueError:
                payload = None
            message = payload.get("message") if isinstance(payload, dict) else None
            text = message if isinstance(message, str) else response.text[:200]
            raise ServiceRefused(f"{method} {url}: {response.status_code}: {text}", response.status_code)
        return response

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._send(method, url, **kwargs)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if payload is None:
            raise ServiceError(f"{method} {url}: answer is not JSON: {response.text[:200]!r}")
        return payload


def _segment(text: str) -> str:
    """One URL path segment. A '/' is sent as %2F and '.' as %2E so that a bad name reaches the service
    (which refuses it) instead of being re-routed by the client's dot-segment normalisation."""
    return quote(text, safe="").replace(".", "%2E")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_face(face: Any, url: str) -> None:
    """The contract's shape, or ServiceError: a malformed answer must never be read as a match."""
    top = face.get("top_prediction") if isinstance(face, dict) else None
    box = face.get("bounding_box") if isinstance(face, dict) else None
    ok = (
        isinstance(top, dict)
        and isinstance(top.get("label"), str)
        and _number(top.get("confidence"))
        and 0.0 <= top["confidence"] <= 1.0
        and isinstance(box, dict)
        and all(_number(box.get(side)) for side in ("left", "top", "right", "bottom"))
    )
    if not ok:
        raise ServiceError(f"{url}: malformed face in answer: {_short(face)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
