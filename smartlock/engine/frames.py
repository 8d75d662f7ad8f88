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

A camera that misbehaves (garbage, zero-length or non-JPEG parts, a JPEG cut short, a part announcing or
running past ``MAX_PART_BYTES``, a frame over 4096 px a side or 16 Mpx, a connection that stops mid-part
or goes silent) costs a dropped connection and a reconnect with backoff: only whole JPEGs within the
limits are decoded (``imaging.decode_camera_jpeg``) and handed on. ``LatestFrameReader.problems`` counts
them by reason and logs one WARNING per outage (and an INFO when frames flow again), not one per part.
With an ``analysis_size``, a frame at least 2, 4 or 8 times that size is decoded at that reduction.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from smartlock.camera.imaging import (
    MAX_FRAME_PIXELS,
    MAX_FRAME_SIDE,
    OVERSIZED,
    FrameRefused,
    decode_camera_jpeg,
    load_cv2,
)
from smartlock.camera.mjpeg import BadStream, MultipartParser, boundary_of, parse_timestamp
from smartlock.camera.signing import FrameGate, RejectedFrames, access_proof
from smartlock.camera.slot import FrameSlot
from smartlock.errors import CameraError

logger = logging.getLogger(__name__)

MAX_PART_BYTES = 8 * 2**20  # a camera frame is far below this; a part announcing or reaching it is refused
RECOVERED_AFTER = 3  # frames in a row after a problem before an outage counts as over

# why the reader dropped a connection (``StreamProblems.counts``), besides imaging's and mjpeg's reasons
OPEN_FAILED = "open-failed"
ENDED = "ended"  # the stream ended between parts (a video file's end, a camera that hung up)
CUT = "cut"  # the stream ended inside a part
STALLED = "stalled"  # bytes, but no whole part within part_timeout
NETWORK = "network"  # read timeout, connection reset, protocol error
FAILED = "failed"  # anything else a stream raised


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8, as read (not mirrored; decoded at 1/2, 1/4, 1/8 with an analysis_size)
    seq: int  # 1, 2, 3, ... per reader; a reconnect does not restart it
    received: float  # time.monotonic() when the frame arrived
    captured: float | None  # the camera's capture time (epoch seconds, X-Timestamp), when it says


class FrameStream(Protocol):
    def read(self) -> tuple[np.ndarray, float | None] | None:
        """The next frame and its capture time, or None when the stream has ended or broken. A stream
        may also have a ``failure`` attribute, (reason, detail), saying why it returned None."""

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


class StreamStalled(CameraError):
    """Bytes keep coming, but no whole part within the part timeout (a camera dripping bytes)."""


class MjpegStream:
    """An HTTP MJPEG stream read with httpx; keeps each part's X-Timestamp. With a ``gate``, a part that
    is not signed by the camera's token, fresh and new is dropped (and counted) without being decoded.

    Every other bad part ends the stream: ``read`` returns None and ``failure`` says why (reason, detail).
    Parts are capped at ``max_part_bytes``; ``timeout`` bounds each network wait and ``part_timeout``
    (default twice ``timeout``) the time to a whole part. ``analysis_size``: see ``decode_camera_jpeg``.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        transport: Any = None,
        headers: Mapping[str, str] | None = None,
        gate: FrameGate | None = None,
        *,
        analysis_size: tuple[int, int] | None = None,
        max_part_bytes: int = MAX_PART_BYTES,
        part_timeout: float | None = None,
    ) -> None:
        import httpx

        self._closed = False
        self._gate = gate
        self._analysis_size = analysis_size
        self._part_timeout = part_timeout if part_timeout is not None else 2 * timeout
        self._part_deadline = time.monotonic() + self._part_timeout
        self.failure: tuple[str, str] | None = None
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
        self._parser = MultipartParser(self._timed(self._response.iter_bytes()), boundary, max_part_bytes)

    def _timed(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if time.monotonic() > self._part_deadline:
                raise StreamStalled(f"no whole part in {self._part_timeout:g} s")
            yield chunk

    def read(self) -> tuple[np.ndarray, float | None] | None:
        """The next whole, valid frame; None when the stream ended or broke (``failure`` says why)."""
        import httpx

        while self.failure is None:
            self._part_deadline = time.monotonic() + self._part_timeout
            try:
                part = self._parser.next_part()
            except BadStream as err:
                return self._fail(err.reason, str(err))
            except StreamStalled as err:
                return self._fail(STALLED, str(err))
            except (httpx.HTTPError, OSError) as err:
                return self._fail(NETWORK, f"{type(err).__name__}: {err}".rstrip(": "))
            except CameraError as err:
                return self._fail(FAILED, str(err))
            if part is None:
                if self._parser.truncated:
                    return self._fail(CUT, "the stream ended in the middle of a part")
                return self._fail(ENDED, "the camera ended the stream")
            headers, body = part
            if self._gate is not None and not self._gate.admit(headers, body):
                continue
            try:
                image = decode_camera_jpeg(body, reduce_to=self._analysis_size)
            except FrameRefused as err:
                return self._fail(err.reason, str(err))
            return image, parse_timestamp(headers.get("x-timestamp"))
        return None

    def _fail(self, reason: str, detail: str) -> tuple[np.ndarray, float | None] | None:
        """Record why the stream ends (the first reason only) and return None, for ``read``."""
        if self.failure is None:
            self.failure = (reason, "closed" if self._closed else detail)
        return None

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
        self.failure: tuple[str, str] | None = None

    def read(self) -> tuple[np.ndarray, float | None] | None:
        if self._period:
            delay = self._next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next = max(self._next + self._period, time.monotonic() - self._period)
        ok, image = self._cap.read()
        if not ok or image is None:
            self.failure = (ENDED, "the video stream ended or broke")
            return None
        height, width = image.shape[:2]
        if max(width, height) > MAX_FRAME_SIDE or width * height > MAX_FRAME_PIXELS:
            self.failure = (OVERSIZED, f"the video stream sent a {width}x{height} frame")
            return None
        return image, None

    def close(self) -> None:
        self._cap.release()


def open_stream(
    url: str,
    timeout: float = 5.0,
    headers: Mapping[str, str] | None = None,
    gate: FrameGate | None = None,
    *,
    analysis_size: tuple[int, int] | None = None,
) -> FrameStream:
    """MJPEG over HTTP when the URL serves it (keeps capture times), else OpenCV. ``headers`` (e.g. the
    camera access proof as ``Authorization``) go with the HTTP request; OpenCV cannot send them. With a
    ``gate`` only a signed MJPEG stream will do: anything else is a CameraError. With ``analysis_size``
    (width, height) MJPEG frames of at least twice that are decoded reduced (OpenCV's are full size)."""
    if url.startswith(("http://", "https://")):
        try:
            return MjpegStream(url, timeout=timeout, headers=headers, gate=gate, analysis_size=analysis_size)
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

    def __call__(self, url: str, *, analysis_size: tuple[int, int] | None = None) -> FrameStream:
        headers = dict(self.headers)
        if self._token is not None:
            headers["Authorization"] = access_proof(self._token)
        return open_stream(url, timeout=self.timeout, headers=headers or None, gate=self.gate,
                           analysis_size=analysis_size)


class StreamProblems:
    """What went wrong with a camera stream, by reason (``counts``), logged once per outage, not per part.

    An outage starts with the first problem after frames flowed (a WARNING naming it) and ends after
    ``RECOVERED_AFTER`` frames in a row (an INFO with how many problems it had); problems within an
    outage are DEBUG lines only, so a camera sending garbage for hours writes two lines, not thousands.
    """

    def __init__(self, url: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.outages = 0
        self._counts: Counter[str] = Counter()
        self._clock = clock
        self._outage: Counter[str] | None = None
        self._since = 0.0
        self._good = 0
        self._lock = threading.Lock()

    @property
    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    @property
    def in_outage(self) -> bool:
        return self._outage is not None

    def problem(self, reason: str, detail: str, first_line: str | None = None) -> None:
        """Count one problem; the first of an outage is a WARNING (``first_line`` replaces its text)."""
        with self._lock:
            self._counts[reason] += 1
            self._good = 0
            first = self._outage is None
            if first:
                self._outage, self._since = Counter(), self._clock()
                self.outages += 1
            assert self._outage is not None
            self._outage[reason] += 1
        if first and first_line:
            logger.warning("%s", first_line)
        elif first:
            logger.warning("Video stream from %s: %s (%s); reconnecting with backoff, and no frame is used "
                           "until whole valid ones arrive", self.url, reason, detail)
        else:
            logger.debug("Video stream from %s: %s (%s)", self.url, reason, detail)

    def frame(self) -> None:
        """A whole, valid frame was handed on."""
        with self._lock:
            outage = self._outage
            self._good += 1
            if outage is None or self._good < RECOVERED_AFTER:
                return
            self._outage = None
            seconds = self._clock() - self._since
        summary = ", ".join(f"{reason} {count}" for reason, count in sorted(outage.items()))
        logger.info("Video stream from %s is back after %.1f s (%s)", self.url, seconds, summary)


class LatestFrameReader:
    """A daemon thread reading ``url`` into a one-frame slot; reconnects with exponential backoff.

    ``rejected`` (a ``signing.RejectedFrames``: ``counts`` by reason, ``total``, ``summary()``) counts the
    frames dropped for their signature when the opener is a ``StreamOpener`` holding a gate; else None,
    and the reader warns at start that its frames are not authenticated. ``problems`` (a
    ``StreamProblems``) counts the connections dropped for bad input, failed opens and ends, by reason.
    ``analysis_size`` (width, height; default None: full size) lets MJPEG frames at least 2, 4 or 8 times
    that size be decoded at 1/2, 1/4 or 1/8 scale, when the opener is ``open_stream`` or a StreamOpener.
    """

    def __init__(
        self,
        url: str,
        *,
        opener: Callable[[str], FrameStream] = open_stream,
        backoff: tuple[float, float] = (0.25, 4.0),
        clock: Callable[[], float] = time.monotonic,
        analysis_size: tuple[int, int] | None = None,
    ) -> None:
        self.url = url
        self.slot: FrameSlot[Frame] = FrameSlot()
        self.analysis_size = analysis_size
        self._opener = opener
        self._backoff = backoff
        self._clock = clock
        self._stop = threading.Event()
        self._stream: FrameStream | None = None
        self._thread: threading.Thread | None = None
        self.connections = 0  # successful opens so far (for logs and tests)
        self.problems = StreamProblems(url)
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

    def _open(self) -> FrameStream:
        if isinstance(self._opener, StreamOpener):
            return self._opener(self.url, analysis_size=self.analysis_size)
        if self._opener is open_stream:
            return open_stream(self.url, analysis_size=self.analysis_size)
        return self._opener(self.url)

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            try:
                stream = self._open()
            except Exception as err:  # any failure to open: count, log once per outage, back off, retry
                self.problems.problem(OPEN_FAILED, str(err),
                                      first_line=f"Cannot open video stream! ({self.url}: {err})")
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            self._stream = stream
            self.connections += 1
            if self.connections == 1 or not self.problems.in_outage:
                logger.info("Video stream opened: %s", self.url)
            else:
                logger.debug("Video stream opened again: %s", self.url)
            frames = self._pump(stream)
            with contextlib.suppress(Exception):
                stream.close()
            self._stream = None
            if self._stop.is_set():
                break
            if frames >= RECOVERED_AFTER:  # a connection that worked for a while restarts the backoff
                delay = self._backoff[0]
            self._stop.wait(delay)
            delay = min(delay * 2, self._backoff[1])

    def _pump(self, stream: FrameStream) -> int:
        """Hand on frames until the stream ends or breaks (counted as a problem); how many it gave."""
        frames = 0
        while not self._stop.is_set():
            try:
                item = stream.read()
            except Exception as err:
                item = None
                failure: tuple[str, str] | None = (FAILED, f"{type(err).__name__}: {err}")
            else:
                failure = getattr(stream, "failure", None)
            if self._stop.is_set():
                break
            if item is None:
                reason, detail = failure or (ENDED, "the stream ended")
                self.problems.problem(reason, detail)
                break
            frames += 1
            self._publish(*item)
            self.problems.frame()
        return frames

    def _publish(self, image: np.ndarray, captured: float | None) -> None:
        received = self._clock()
        self.slot.publish(lambda seq: Frame(image=image, seq=seq, received=received, captured=captured))
