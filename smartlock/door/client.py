"""Client of the Door API: signs each request, retries unlocks, turns every failure into DoorError.

Every request carries ``X-Smartlock-Request: 1``, which a ``--no-auth`` door requires of unsigned
unlocks and locks (a web page cannot send it cross-site). ``https://`` doors are verified against the
usual CA bundle, or against ``ca_file`` (a self-signed door's certificate, or its own CA).
"""

from __future__ import annotations

import json
import logging
import shlex
import ssl
import time
from pathlib import Path
from typing import Any

import httpx

from smartlock.door.auth import DoorSecret, sign_request
from smartlock.errors import AuthError, ConfigError, DoorError
from smartlock.service.origin import REQUEST_HEADER

logger = logging.getLogger(__name__)

BROWSER_PROOF = {REQUEST_HEADER: "1"}  # a web page cannot send it cross-site: the door knows we are no page


def base_url_of(unlock_url: str) -> str:
    """``http://door/unlock`` -> ``http://door``; other paths lose their last segment."""
    url = httpx.URL(unlock_url)
    path = url.path.rstrip("/")
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    return str(url.copy_with(path=parent or "/", query=None, fragment=None)).rstrip("/")


class DoorClient:
    """Talks to one door. ``url`` is the full unlock URL, as the seed's ``--door-api-url``.

    Each try is signed afresh (new timestamp and nonce), so a retry is never refused as a replay.
    With ``secret=None`` requests go unsigned (only a ``--no-auth`` door accepts them).
    """

    def __init__(
        self,
        url: str,
        secret: DoorSecret | None = None,
        *,
        timeout: float = 0.3,
        tries: int = 3,
        transport: httpx.BaseTransport | None = None,
        ca_file: Path | None = None,
    ) -> None:
        if tries < 1:
            raise ValueError("tries must be at least 1")
        if httpx.URL(url).scheme not in ("http", "https"):
            raise ConfigError(f"the door URL must start with http:// or https://, not {url!r}")
        self.url = str(httpx.URL(url))
        self.base_url = base_url_of(url)
        self.secret = secret
        self.tries = tries
        self._http = httpx.Client(timeout=timeout, transport=transport, verify=tls_verification(ca_file))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DoorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build_request(self, method: str, url: str, body: bytes = b"", params: dict[str, Any] | None = None
                      ) -> httpx.Request:
        """A signed request, ready to send (also used for --print-curl)."""
        headers = {**BROWSER_PROOF, **({"content-type": "application/json"} if body else {})}
        request = self._http.build_request(method, url, content=body, headers=headers, params=params)
        if self.secret is not None:
            signed_path = request.url.raw_path.decode("ascii")
            request.headers.update(sign_request(self.secret, method, signed_path, body))
        return request

    def unlock(self, person: str | None = None, confidence: float | None = None,
               source: str | None = None) -> None:
        """Ask the door to open; returns on 202. Raises DoorError (AuthError on 401) otherwise."""
        body = unlock_body(person, confidence, source)
        last_error = "no try made"
        for attempt in range(1, self.tries + 1):
            try:
                response = self._http.send(self.build_request("POST", self.url, body))
            except httpx.HTTPError as err:
                last_error = f"{type(err).__name__}: {err}"
            else:
                if response.status_code == 202:
                    return
                message = _message(response)
                if response.status_code == 401:
                    raise AuthError(f"the door refused the signature: {message}")
                if response.status_code < 500:
                    raise DoorError(f"the door refused the unlock ({response.status_code}): {message}")
                last_error = f"{response.status_code}: {message}"
            if attempt < self.tries:
                logger.warning("unlock try %d/%d failed (%s); retrying", attempt, self.tries, last_error)
                time.sleep(0.05 * attempt)
        raise DoorError(f"the door at {self.url} did not unlock after {self.tries} tries: {last_error}")

    def lock(self) -> None:
        self._call("POST", "/lock")

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/status")

    def events(self, limit: int = 50, before: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        return self._call("GET", "/events", params=params)

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def _call(self, method: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._http.send(self.build_request(method, self.base_url + path, params=params))
        except httpx.HTTPError as err:
            raise DoorError(f"{self.base_url} did not answer: {type(err).__name__}: {err}") from err
        if response.status_code == 401:
            raise AuthError(f"the door refused the signature: {_message(response)}")
        if not response.is_success:
            raise DoorError(f"{method} {path} failed ({response.status_code}): {_message(response)}")
        try:
            data = response.json()
        except ValueError as err:
            raise DoorError(f"{method} {path} answered something that is not JSON") from err
        if not isinstance(data, dict):
            raise DoorError(f"{method} {path} answered {type(data).__name__}, not a JSON object")
        return data


def tls_verification(ca_file: Path | None) -> ssl.SSLContext | bool:
    """True (the usual CA bundle) or a context trusting ``ca_file``; ConfigError when it cannot be read."""
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"cannot use the CA file {ca_file}: {err}") from err


def unlock_body(person: str | None, confidence: float | None, source: str | None) -> bytes:
    fields = {"person": person, "confidence": confidence, "source": source}
    fields = {k: v for k, v in fields.items() if v is not None}
    if not fields:
        return b""
    return json.dumps(fields, separators=(",", ":")).encode("utf-8")


_CURL_SETS_ITSELF = {"host", "accept", "accept-encoding", "connection", "user-agent", "content-length"}


def curl_command(request: httpx.Request) -> str:
    """The copy-pasteable curl equivalent of a built request (same headers, same body bytes)."""
    parts = ["curl", "--silent", "--show-error", "--include", "-X", request.method]
    for name, value in request.headers.items():
        if name.lower() in _CURL_SETS_ITSELF:
            continue
        parts += ["-H", f"{name}: {value}"]
    body = request.content
    if body:
        parts += ["--data-binary", body.decode("utf-8")]
    parts.append(str(request.url))
    return shlex.join(parts)


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])
    return str(data)[:200]
