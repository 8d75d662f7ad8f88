"""HTTP client of the Face Recognition API (engine, collector, dashboard); every failure is a ServiceError."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from smartlock.errors import ServiceError, ServiceRefused
from smartlock.recognition.schemas import (
    API_KEY_HEADER,
    Enrollment,
    Face,
    Health,
    People,
    Person,
    parse_faces,
)

ENDPOINT = "/face-recognition"
T = TypeVar("T")


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

    def recognize_jpeg(self, jpeg: bytes, include_predictions: bool = False) -> list[Face]:
        """The faces in one encoded image (JPEG, or any format the service decodes); ServiceError for a
        malformed answer (a bad answer must never be read as a match)."""
        data = {"include_predictions": "true"} if include_predictions else None
        payload = self._call(
            "POST", self.url, files={"image": ("frame.jpg", jpeg, "image/jpeg")}, data=data
        )
        if not isinstance(payload, dict) or "faces" not in payload:
            raise ServiceError(f"{self.url}: answer has no 'faces' list: {_short(payload)}")
        return parse_faces(payload["faces"])

    # -- gallery -----------------------------------------------------------------------------------

    def people(self) -> list[Person]:
        """Everyone enrolled, sorted by name, with their photos (``.name``, ``.image_count``, ``.images``)."""
        url = f"{self.base_url}/people"
        return _parsed(People, self._call("GET", url), url).people

    def enroll(
        self, name: str, files: Sequence[tuple[str, bytes] | str | Path], multiple_faces: str = "refuse"
    ) -> Enrollment:
        """Upload photos of ``name`` (pairs of file name and bytes, or paths); a photo with several faces
        is refused, or with ``multiple_faces="largest"`` its largest face is enrolled. Returns the
        Enrollment (``.enrolled``, ``.refused``, one ``.outcomes`` entry per photo)."""
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
        url = f"{self._person_url(name)}/images"
        payload = self._call("POST", url, files=uploads, data={"multiple_faces": multiple_faces})
        return _parsed(Enrollment, payload, url)

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

    def health(self) -> Health:
        """The service's /health: status, version, backend, people, images, model_hashes."""
        url = f"{self.base_url}/health"
        return _parsed(Health, self._call("GET", url), url)

    def calibration(self) -> dict[str, Any]:
        """The calibration report (see smartlock.recognition.calibration for what to compute from it)."""
        return self._dict("GET", f"{self.base_url}/calibration")

    # -- plumbing ----------------------------------------------------------------------------------

    def _person_url(self, name: str) -> str:
        return f"{self.base_url}/people/{_segment(name)}"

    def _dict(self, method: str, url: str) -> dict[str, Any]:
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


def _parsed(shape: type[T], payload: Any, url: str) -> T:
    """``payload`` as the API's ``shape``; ServiceError naming the first problem when it is not one."""
    try:
        return TypeAdapter(shape).validate_python(payload)
    except ValidationError as err:
        error = err.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "answer"
        raise ServiceError(f"{url}: malformed answer: {where}: {error['msg']}") from err


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
