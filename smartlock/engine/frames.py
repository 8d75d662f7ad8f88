"""The camera side of the engine: a reader thread that keeps only the newest frame and reconnects by itself.

Two ways to read a stream, picked per URL by ``open_stream``:

* ``MjpegStream`` for http(s) URLs that answer ``multipart/x-mixed-replace`` (our camera and most IP
  cameras), parsed by the camera's own ``smartlock.camera.mjpeg`` so each frame's ``X-Timestamp`` part
  header (capture time at the camera) is kept.
* ``OpenCVStream`` for everything else ``cv2.VideoCapture`` opens (RTSP, files, device numbers, other
  HTTP streams), as the seed did. Local video files are paced at their own frame rate.

Holding the camera's token (``StreamOpener`` with a ``FrameGate``, built by ``access.stream_opener``), the
MJPEG reader checks every part's signature (``smartlock.camera.signing``) and drops unsigned, wrongly
signed, stale and replayed frames before they are even decoded; ``LatestFrameReader.rejected`` counts them
by reason. Holding a token, nothing but a signed MJPEG stream is read (no OpenCV fallback).

Recognition is slower than the camera, so a backlog would make the engine react to the past; the reader
therefore hands frames over through the camera's one-frame ``FrameSlot`` and the engine always asks for
"something newer than what I saw" (``next_due_frame`` is the sampling step on top).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from smartlock.camera.imaging import decode_jpeg_bgr, load_cv2
from smartlock.camera.mjpeg import MultipartParser, boundary_of, parse_timestamp
from smartlock.camera.signing import FrameGate, RejectedFrames, access_proof
from smartlock.camera.slot import FrameSlot
from smartlock.errors import BadImageError, CameraError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8, as read (not mirrored, not resized)
    seq: int  # 1, 2, 3, ... per reader; a reconnect does not restart it
    received: float  # time.monotonic() when the frame arrived
    captured: float | None  # the camera's capture time (epoch seconds, X-Timestamp), when it says


class FrameStream(Protocol):
    def read(self) -> tuple[np.ndarray, float | None] | None:
        """The next frame and its capture time, or None when the stream has ended or broken."""

    def close(self) -> None: ...


class FrameSource(Protocol):
    """What the engine needs from a camera: wait for a frame newer than the last one it saw."""

    def wait_newer(self, seq: int, timeout: float) -> Frame | None: ...


def next_due_frame(
    frames: FrameSource,
    last_seq: int,
    due_at: float,
    clock: Callable[[], float],
    stop: threading.Event,
    frame_timeout: float,
) -> Frame | None:
    """The sampling step shared by the engine and the collector: None while ``due_at`` has not come
    (after a short, interruptible pause), else the newest frame after ``last_seq`` (None if none came)."""
    wait = due_at - clock()
    if wait > 0:
        stop.wait(min(wait, 0.2))
        return None
    return frames.wait_newer(last_seq, timeout=frame_timeout)


class NotMultipart(CameraError):
    """The URL answered, but not with an MJPEG stream: let OpenCV try it."""


class MjpegStream:
    """An HTTP MJPEG stream read with httpx; keeps each part's X-Timestamp. With a ``gate``, a part that
    is not signed by the camera's token, fresh and new is dropped (and counted) without being decoded."""

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        transport: Any = None,
        headers: Mapping[str, str] | None = None,
        gate: FrameGate | None = None,
    ) -> None:
        import httpx

        self._closed = False
        self._gate = gate
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), transport=transport, headers=headers)
        try:
            request = self._client.build_request("GET", url)
            self._response = self._client.send(request, stream=True)
        except httpx.HTTPError as err:
            self._client.close()
            raise CameraError(f"cannot open {url}: {err}") from err
        if self._response.status_code != 200:
            self.close()
            raise CameraError(f"{url} answered HTTP {self._response.status_code}")
        boundary = boundary_of(self._response.headers.get("content-type", ""))
        if boundary is None:
            self.close()
            raise NotMultipart(f"{url} is not a multipart/x-mixed-replace stream")
        self._parser = MultipartParser(self._response.iter_bytes(), boundary)

    def read(self) -> tuple[np.ndarray, float | None] | None:
        import httpx

        while True:
            try:
                part = self._parser.next_part()
            except (httpx.HTTPError, CameraError, OSError) as err:
                if not self._closed:
                    logger.warning("Video stream broke: %s", err)
                return None
            if part is None:
                return None
            headers, body = part
            if self._gate is not None and not self._gate.admit(headers, body):
                continue
            try:
                return decode_jpeg_bgr(body), parse_timestamp(headers.get("x-timestamp"))
            except BadImageError:
                logger.warning("Skipping a stream part that is not an image (%d bytes)", len(body))

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            self._response.close()
        self._client.close()


class OpenCVStream:
    """Anything cv2.VideoCapture opens; a local file is paced at its own frame rate, like a camera."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        cv2 = load_cv2()
        self._cap = cv2.VideoCapture()
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(timeout * 1000), cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                  int(timeout * 1000)]
        source: str | int = int(url) if url.isdigit() else url
        if isinstance(source, str):
            opened = self._cap.open(source, cv2.CAP_ANY, params)
        else:
            opened = self._cap.open(source)
        if not opened:
            self._cap.release()
            raise CameraError(f"cannot open video stream {url}")
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        fps = self._cap.get(cv2.CAP_PROP_FPS) if Path(url).is_file() else 0.0
        self._period = 1.0 / fps if fps and 1 <= fps <= 240 else 0.0
        self._next = time.monotonic()

    def read(self) -> tuple[np.ndarray, float | None] | None:
        if self._period:
            delay = self._next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next = max(self._next + self._period, time.monotonic() - self._period)
        ok, image = self._cap.read()
        return (image, None) if ok and image is not None else None

    def close(self) -> None:
        self._cap.release()


def open_stream(
    url: str,
    timeout: float = 5.0,
    headers: Mapping[str, str] | None = None,
    gate: FrameGate | None = None,
) -> FrameStream:
    """MJPEG over HTTP when the URL serves it (keeps capture times), else OpenCV. ``headers`` (e.g. the
    camera access proof as ``Authorization``) go with the HTTP request; OpenCV cannot send them. With a
    ``gate`` only a signed MJPEG stream will do: anything else is a CameraError."""
    if url.startswith(("http://", "https://")):
        try:
            return MjpegStream(url, timeout=timeout, headers=headers, gate=gate)
        except NotMultipart:
            if gate is not None:
                raise CameraError(f"{url} is not an MJPEG stream, so its frames cannot be verified") from None
            logger.info("%s is not MJPEG; reading it with OpenCV", url)
    if gate is not None:
        raise CameraError(f"{url}: signed frames come from an http(s) smartlock camera only")
    return OpenCVStream(url, timeout=timeout)


class StreamOpener:
    """``open_stream`` with the same headers and gate on every (re)connect: the gate remembers the last
    sequence it accepted, so a reconnect cannot replay frames. With ``token``, each connection carries a
    fresh ``Authorization: Smartlock-Proof`` of it (never the token: a rogue server would learn it)."""

    def __init__(
        self,
        headers: Mapping[str, str] | None = None,
        gate: FrameGate | None = None,
        timeout: float = 5.0,
        *,
        token: str | None = None,
    ) -> None:
        self.headers = dict(headers or {})
        self.gate = gate
        self.timeout = timeout
        self._token = token

    def __call__(self, url: str) -> FrameStream:
        headers = dict(self.headers)
        if self._token is not None:
            headers["Authorization"] = access_proof(self._token)
        return open_stream(url, timeout=self.timeout, headers=headers or None, gate=self.gate)


class LatestFrameReader:
    """A daemon thread reading ``url`` into a one-frame slot; reconnects with exponential backoff.

    ``rejected`` (a ``signing.RejectedFrames``: ``counts`` by reason, ``total``, ``summary()``) counts the
    frames dropped for their signature when the opener is a ``StreamOpener`` holding a gate; else None,
    and the reader warns at start that its frames are not authenticated.
    """

    def __init__(
        self,
        url: str,
        *,
        opener: Callable[[str], FrameStream] = open_stream,
        backoff: tuple[float, float] = (0.25, 4.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.slot: FrameSlot[Frame] = FrameSlot()
        self._opener = opener
        self._backoff = backoff
        self._clock = clock
        self._stop = threading.Event()
        self._stream: FrameStream | None = None
        self._thread: threading.Thread | None = None
        self.connections = 0  # successful opens so far (for logs and tests)
        gate = opener.gate if isinstance(opener, StreamOpener) else None
        self.rejected: RejectedFrames | None = gate.rejected if gate is not None else None

    def start(self) -> LatestFrameReader:
        if self._thread is None:
            if self.rejected is None:
                logger.warning(
                    "Frames from %s are NOT authenticated (no camera token): whoever can serve that URL "
                    "chooses the faces this process sees. Give it the camera's token file.", self.url
                )
            self._thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()  # unblocks a read that waits on the network
        self.slot.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> LatestFrameReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def latest(self) -> Frame | None:
        return self.slot.latest

    def wait_newer(self, seq: int, timeout: float) -> Frame | None:
        """The newest frame whose seq is above ``seq``, waiting up to ``timeout`` s; None if none came."""
        return self.slot.wait_newer(seq, timeout)

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            try:
                stream = self._opener(self.url)
            except Exception as err:  # any failure to open: log, back off, retry
                logger.error("Cannot open video stream! (%s: %s)", self.url, err)
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            self._stream = stream
            self.connections += 1
            logger.info("Video stream opened: %s", self.url)
            got_frame = self._pump(stream)
            with contextlib.suppress(Exception):
                stream.close()
            self._stream = None
            if self._stop.is_set():
                break
            logger.warning("Video stream dropped; reconnecting")
            if got_frame:
                delay = self._backoff[0]
            self._stop.wait(delay)
            delay = min(delay * 2, self._backoff[1])

    def _pump(self, stream: FrameStream) -> bool:
        got_frame = False
        while not self._stop.is_set():
            try:
                item = stream.read()
            except Exception as err:
                if not self._stop.is_set():
                    logger.warning("Reading the video stream failed: %s", err)
                return got_frame
            if item is None:
                return got_frame
            got_frame = True
            self._publish(*item)
        return got_frame

    def _publish(self, image: np.ndarray, captured: float | None) -> None:
        received = self._clock()
        self.slot.publish(lambda seq: Frame(image=image, seq=seq, received=received, captured=captured))
