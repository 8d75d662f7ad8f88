"""One capture thread and one JPEG encode per frame, handed to every client through one ``FrameSlot``.

The hand-off itself (newest frame, Condition, asyncio wake-ups) is ``smartlock.camera.slot``, shared with
the engine's stream reader; this module adds the capture loop, the encoder, reconnects and health.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smartlock.camera.imaging import decode_jpeg_bgr, encode_jpeg_bgr, load_cv2
from smartlock.camera.mjpeg import build_part, jpeg_size
from smartlock.camera.signing import FrameSigner
from smartlock.camera.slot import FrameSlot
from smartlock.camera.source_base import RawFrame, Source
from smartlock.errors import BadImageError, CameraError, ConfigError

logger = logging.getLogger(__name__)

ROTATIONS = (0, 90, 180, 270)


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """A frame as every client gets it: the JPEG, when it was captured, and its ready-made MJPEG part."""

    seq: int  # 1, 2, 3, ... in capture order
    jpeg: bytes
    timestamp: float  # unix seconds at capture
    part: bytes
    headers: Mapping[str, str] = field(default_factory=dict)  # the signature headers, when signed


def rotated(image: np.ndarray, rotation: int) -> np.ndarray:
    """``image`` turned clockwise by ``rotation`` degrees (one of ROTATIONS)."""
    if not rotation:
        return image
    cv2 = load_cv2()
    codes = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    return np.asarray(cv2.rotate(image, codes[rotation]))


class FrameEncoder:
    """Turns a captured frame into JPEG: passes JPEG through unless it has to be scaled or rotated.

    Frames are scaled to ``width`` x ``height`` (when given), then rotated clockwise by ``rotation``.
    """

    def __init__(
        self, quality: int = 80, rotation: int = 0, width: int | None = None, height: int | None = None
    ) -> None:
        if not 1 <= quality <= 100:
            raise ConfigError(f"JPEG quality must be within 1..100, not {quality}")
        if rotation not in ROTATIONS:
            raise ConfigError(f"rotation must be one of {ROTATIONS}, not {rotation}")
        if (width is not None and width < 1) or (height is not None and height < 1):
            raise ConfigError(f"frame width and height must be positive, not {width}x{height}")
        self.quality = quality
        self.rotation = rotation
        self.width = width
        self.height = height

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        """The size a frame of ``width`` x ``height`` is scaled to; one side given keeps the aspect ratio."""
        if self.width and self.height:
            return self.width, self.height
        if self.width:
            return self.width, max(1, round(height * self.width / width))
        if self.height:
            return max(1, round(width * self.height / height)), self.height
        return width, height

    def encode(self, raw: RawFrame) -> bytes:
        """The frame as JPEG bytes (the source's own JPEG when nothing has to change); CameraError."""
        if raw.jpeg is not None:
            size = jpeg_size(raw.jpeg)
            if self.rotation == 0 and size is not None and self.target_size(*size) == size:
                return raw.jpeg
            try:
                image = decode_jpeg_bgr(raw.jpeg)
            except BadImageError as err:
                raise CameraError("the source sent a JPEG that does not decode") from err
        elif raw.image is not None:
            image = raw.image
        else:
            raise CameraError("the source returned an empty frame")
        cv2 = load_cv2()
        if image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        size = self.target_size(image.shape[1], image.shape[0])
        if size != (image.shape[1], image.shape[0]):
            shrinking = size[0] < image.shape[1]
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        image = rotated(image, self.rotation)
        try:
            return encode_jpeg_bgr(image, self.quality)
        except BadImageError as err:
            raise CameraError(str(err)) from err


class FrameHub:
    """Owns the capture thread of one source and hands its newest frame to any number of readers.

    With a ``signer`` each frame is signed once as it is published (its sequence is the frame's ``seq``).
    With a ``tap``, every captured frame (BGR, rotated like the served frames) is also handed to it in the
    capture thread, before any JPEG work: an engine in the same process reads frames that way. With
    ``encode_unwatched=False`` frames are JPEG-encoded only while someone watches (a stream client, or a
    snapshot asked for in the last seconds): the tap alone costs no encoding.
    """

    def __init__(
        self,
        source: Source,
        *,
        encoder: FrameEncoder | None = None,
        backoff: tuple[float, float] = (0.5, 10.0),
        stale_after: float | None = None,
        signer: FrameSigner | None = None,
        tap: Callable[[np.ndarray, float], None] | None = None,
        encode_unwatched: bool = True,
    ) -> None:
        self.source = source
        self.tap = tap
        self.encode_unwatched = encode_unwatched
        self._wanted_until = 0.0
        self._tap_failures = 0
        self._tap_error: str | None = None  # the last hand-over's failure, until one works again
        self.signer = signer
        self.encoder = encoder or FrameEncoder()
        self.backoff = backoff
        self._stale_after = stale_after
        self._slot: FrameSlot[EncodedFrame] = FrameSlot()
        self._lock = threading.Lock()  # guards the fields below (the slot has its own)
        self._error: str | None = None
        self._clients = 0
        self._publish_times: deque[float] = deque(maxlen=512)
        self._started_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the capture thread (once; later calls do nothing)."""
        with self._lock:
            if self._slot.closed:
                raise RuntimeError("this FrameHub was stopped; make a new one")
            if self._thread is not None:
                return
            self._started_at = time.monotonic()
            # Started under the lock, so a concurrent stop() never joins a thread that is not running.
            self._thread = threading.Thread(target=self._run, name="camera-capture", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End every stream, stop the capture thread and release the source. Safe to call twice."""
        with self._lock:  # so start() cannot begin a thread after this point
            first = self._slot.close()
        self._stop.set()
        self.source.interrupt()
        thread = self._thread
        if not first:
            return
        if thread is None:  # never started: nobody else will release the source
            self.source.close()
            return
        if thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("the capture thread of %s did not stop in %.0f s", self.source.name, timeout)

    @property
    def closed(self) -> bool:
        return self._slot.closed

    def __enter__(self) -> FrameHub:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the capture thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.backoff[0]
        try:
            while not self._stop.is_set():
                try:
                    if not self.source.is_open:
                        self.source.open()
                    raw = self.source.read()
                    if self._stop.is_set():
                        break
                    if self.tap is not None:
                        self._tapped(raw)
                    if not (self.encode_unwatched or self.watched):
                        self._tick()
                        delay = self.backoff[0]
                        continue
                    jpeg = self.encoder.encode(raw)
                except Exception as err:  # any failure of the source: report it, reconnect later
                    if isinstance(err, CameraError):
                        message = str(err)
                    else:
                        message = f"{type(err).__name__}: {err}"
                        logger.debug("unexpected error from %s", self.source.name, exc_info=True)
                    self._failed(message, delay)
                    self.source.close()
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.backoff[1])
                    continue
                delay = self.backoff[0]
                self._publish(jpeg, raw.timestamp)
        finally:
            self.source.close()

    @property
    def watched(self) -> bool:
        """Someone wants JPEG frames: a stream client, a recent snapshot request, or no frame yet."""
        with self._lock:
            clients = self._clients
        return clients > 0 or time.monotonic() < self._wanted_until or self._slot.latest is None

    def want(self, seconds: float = 2.0) -> None:
        """Encode frames for the next ``seconds`` (a snapshot is coming), also when nobody streams."""
        self._wanted_until = max(self._wanted_until, time.monotonic() + seconds)

    def _tapped(self, raw: RawFrame) -> None:
        try:
            if raw.image is not None:
                image = raw.image
            elif raw.jpeg is not None:
                image = decode_jpeg_bgr(raw.jpeg)
            else:
                raise CameraError("the source returned an empty frame")
            if image.ndim == 3 and image.shape[2] == 4:
                image = load_cv2().cvtColor(image, load_cv2().COLOR_BGRA2BGR)
            image = rotated(image, self.encoder.rotation)
            assert self.tap is not None
            self.tap(image, raw.timestamp)
            self._tap_error = None
        except Exception as err:  # the served stream goes on whatever the tap does; health says so
            self._tap_failures += 1
            self._tap_error = f"frames are not reaching the engine: {type(err).__name__}: {err}"
            if self._tap_failures == 1 or self._tap_failures % 1000 == 0:
                logger.warning("a frame could not be handed over in-process (%d so far): %s: %s",
                               self._tap_failures, type(err).__name__, err)

    def _tick(self) -> None:
        """A frame was captured but not encoded (nobody watches): it still counts for health."""
        with self._lock:
            recovered = self._error is not None
            self._error = None
            self._publish_times.append(time.monotonic())
        if recovered:
            logger.info("camera source %s is back", self.source.name)

    def _failed(self, message: str, delay: float) -> None:
        with self._lock:
            first = self._error is None
            self._error = message
        if first:
            logger.warning("camera source failed: %s; reconnecting (first try in %.1f s)", message, delay)
        else:
            logger.info("camera source still failing: %s; next try in %.1f s", message, delay)

    def _publish(self, jpeg: bytes, timestamp: float) -> EncodedFrame:
        signer = self.signer

        def make(seq: int) -> EncodedFrame:
            # Signed once per frame, inside the slot's lock, so the sequence is the frame's own number.
            headers = signer.headers(jpeg, timestamp, seq) if signer is not None else {}
            return EncodedFrame(seq, jpeg, timestamp, build_part(jpeg, timestamp, headers), headers)

        frame = self._slot.publish(make)
        with self._lock:
            recovered = self._error is not None
            self._error = None
            self._publish_times.append(time.monotonic())
        if recovered:
            logger.info("camera source %s is back", self.source.name)
        return frame

    # -- readers ------------------------------------------------------------------------------------------

    @property
    def latest(self) -> EncodedFrame | None:
        return self._slot.latest

    def wait_for_frame(self, after: int = 0, timeout: float | None = None) -> EncodedFrame | None:
        """Block (in a thread) until a frame newer than ``after`` exists; None on timeout or when stopped."""
        return self._slot.wait_newer(after, timeout)

    async def next_frame(self, after: int = 0, timeout: float | None = None) -> EncodedFrame | None:
        """Await a frame newer than ``after`` without blocking the event loop; None on timeout or stop."""
        return await self._slot.next_newer(after, timeout)

    async def current_frame(self, timeout: float) -> EncodedFrame | None:
        """The newest frame, made fresh when frames are only encoded while watched."""
        latest = self._slot.latest
        if self.encode_unwatched or latest is None:
            return latest or await self.next_frame(0, timeout=timeout)
        if self.watched and time.monotonic() < self._wanted_until:
            return latest  # being encoded right now: the newest is current
        self.want()
        return await self.next_frame(latest.seq, timeout=timeout)

    @contextlib.contextmanager
    def client(self) -> Iterator[None]:
        """Count a connected stream client for /health while the block runs."""
        with self._lock:
            self._clients += 1
        try:
            yield
        finally:
            with self._lock:
                self._clients -= 1

    # -- health -------------------------------------------------------------------------------------------

    def stale_after(self) -> float:
        """Seconds without a frame after which the source counts as failing."""
        if self._stale_after is not None:
            return self._stale_after
        fps = self.source.nominal_fps
        return max(3.0, 5.0 / fps) if fps else 5.0

    def health(self) -> dict[str, Any]:
        """Source, state (starting/ok/failing/stopped), measured fps, clients, age of the newest frame."""
        now = time.monotonic()
        stale_after = self.stale_after()
        frame = self._slot.latest
        with self._lock:
            error, clients, started = self._error, self._clients, self._started_at
            times = list(self._publish_times)
        since = now - times[-1] if times else None
        window = [t for t in times if now - t <= max(5.0, stale_after)]
        span = window[-1] - window[0] if len(window) >= 2 else 0.0
        fps = (len(window) - 1) / span if span > 0 else 0.0
        state, error = self._state(now, since, started, error)
        if self._tap_error is not None and state == "ok":
            state, error = "failing", self._tap_error
        size = jpeg_size(frame.jpeg) if frame is not None else None
        return {
            "state": state,
            "source": self.source.name,
            "fps": round(fps, 2),
            "nominal_fps": self.source.nominal_fps,
            "clients": clients,
            "seconds_since_last_frame": None if since is None else round(since, 3),
            "frames": frame.seq if frame is not None else 0,
            "width": size[0] if size else None,
            "height": size[1] if size else None,
            "error": error,
        }

    def _state(
        self, now: float, since: float | None, started: float | None, error: str | None
    ) -> tuple[str, str | None]:
        """(state, why it is failing) from the age of the newest frame and the last source error."""
        stale_after = self.stale_after()
        if self._slot.closed:
            return "stopped", error
        if error is not None or (since is not None and since > stale_after):
            return "failing", error or f"no frame for {since:.1f} s"
        if since is None:
            if started is not None and now - started > stale_after:
                return "failing", f"no frame since the start, {now - started:.1f} s ago"
            return "starting", error
        return "ok", error
