"""One capture thread, one JPEG encode per frame, and the latest-frame holder every client reads from.

The pattern is picamera2's MJPEG server: an output object holding the newest frame plus a Condition that
wakes readers, passed to whoever needs it instead of living in a module global. Readers never queue
frames: each asks for "a frame newer than the one I have", so a slow reader skips frames and the others
never wait for it. Thread readers block on the Condition; asyncio readers await a per-loop Event that the
capture thread sets through ``loop.call_soon_threadsafe`` (the event loop thread never blocks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from smartlock.camera.mjpeg import build_part, jpeg_size
from smartlock.camera.source_base import RawFrame, Source, load_cv2
from smartlock.errors import CameraError, ConfigError

log = logging.getLogger(__name__)

ROTATIONS = (0, 90, 180, 270)


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """A frame as every client gets it: the JPEG, when it was captured, and its ready-made MJPEG part."""

    seq: int  # 1, 2, 3, ... in capture order
    jpeg: bytes
    timestamp: float  # unix seconds at capture
    part: bytes


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
        cv2: Any = None
        if raw.jpeg is not None:
            size = jpeg_size(raw.jpeg)
            if self.rotation == 0 and size is not None and self.target_size(*size) == size:
                return raw.jpeg
            cv2 = load_cv2()
            image = cv2.imdecode(np.frombuffer(raw.jpeg, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                raise CameraError("the source sent a JPEG that does not decode")
        elif raw.image is not None:
            image = raw.image
        else:
            raise CameraError("the source returned an empty frame")
        cv2 = cv2 or load_cv2()
        if image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        size = self.target_size(image.shape[1], image.shape[0])
        if size != (image.shape[1], image.shape[0]):
            shrinking = size[0] < image.shape[1]
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        if self.rotation:
            codes = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
            image = cv2.rotate(image, codes[self.rotation])
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise CameraError("OpenCV could not encode the frame as JPEG")
        return buffer.tobytes()


class FrameHub:
    """Owns the capture thread of one source and hands its newest frame to any number of readers."""

    def __init__(
        self,
        source: Source,
        *,
        encoder: FrameEncoder | None = None,
        backoff: tuple[float, float] = (0.5, 10.0),
        stale_after: float | None = None,
    ) -> None:
        self.source = source
        self.encoder = encoder or FrameEncoder()
        self.backoff = backoff
        self._stale_after = stale_after
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)
        self._latest: EncodedFrame | None = None
        self._seq = 0
        self._error: str | None = None
        self._closed = False
        self._clients = 0
        self._publish_times: deque[float] = deque(maxlen=512)
        self._started_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_events: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = (
            weakref.WeakKeyDictionary()
        )

    # -- life cycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the capture thread (once; later calls do nothing)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this FrameHub was stopped; make a new one")
            if self._thread is not None:
                return
            self._started_at = time.monotonic()
            # Started under the lock, so a concurrent stop() never joins a thread that is not running.
            self._thread = threading.Thread(target=self._run, name="camera-capture", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End every stream, stop the capture thread and release the source. Safe to call twice."""
        with self._condition:
            already = self._closed
            self._closed = True
            self._condition.notify_all()
        self._stop.set()
        self.source.interrupt()
        self._wake_loops()
        thread = self._thread
        if already:
            return
        if thread is None:  # never started: nobody else will release the source
            self.source.close()
            return
        if thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("the capture thread of %s did not stop within %.0f s", self.source.name, timeout)

    @property
    def closed(self) -> bool:
        return self._closed

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
                    jpeg = self.encoder.encode(raw)
                except Exception as err:  # any failure of the source: report it, reconnect later
                    if isinstance(err, CameraError):
                        message = str(err)
                    else:
                        message = f"{type(err).__name__}: {err}"
                        log.debug("unexpected error from %s", self.source.name, exc_info=True)
                    self._failed(message, delay)
                    self.source.close()
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.backoff[1])
                    continue
                delay = self.backoff[0]
                self._publish(jpeg, raw.timestamp)
        finally:
            self.source.close()

    def _failed(self, message: str, delay: float) -> None:
        with self._lock:
            first = self._error is None
            self._error = message
        if first:
            log.warning("camera source failed: %s; reconnecting (first try in %.1f s)", message, delay)
        else:
            log.info("camera source still failing: %s; next try in %.1f s", message, delay)

    def _publish(self, jpeg: bytes, timestamp: float) -> EncodedFrame:
        part = build_part(jpeg, timestamp)
        with self._condition:
            self._seq += 1
            frame = EncodedFrame(self._seq, jpeg, timestamp, part)
            self._latest = frame
            recovered = self._error is not None
            self._error = None
            self._publish_times.append(time.monotonic())
            self._condition.notify_all()
        if recovered:
            log.info("camera source %s is back", self.source.name)
        self._wake_loops()
        return frame

    def _wake_loops(self) -> None:
        with self._lock:
            loops = list(self._loop_events.keys())
        for loop in loops:
            try:
                loop.call_soon_threadsafe(self._wake_loop, loop)
            except RuntimeError:  # that loop is closed
                with self._lock:
                    self._loop_events.pop(loop, None)

    def _wake_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        # Runs on ``loop``: wake everyone awaiting the current Event, and give later waiters a fresh one.
        with self._lock:
            event = self._loop_events.get(loop)
            if event is None:
                return
            self._loop_events[loop] = asyncio.Event()
        event.set()

    # -- readers ------------------------------------------------------------------------------------------

    @property
    def latest(self) -> EncodedFrame | None:
        return self._latest

    def wait_for_frame(self, after: int = 0, timeout: float | None = None) -> EncodedFrame | None:
        """Block (in a thread) until a frame newer than ``after`` exists; None on timeout or when stopped."""

        def ready() -> bool:
            return self._closed or (self._latest is not None and self._latest.seq > after)

        with self._condition:
            self._condition.wait_for(ready, timeout)
            frame = self._latest
        return frame if frame is not None and frame.seq > after else None

    async def next_frame(self, after: int = 0, timeout: float | None = None) -> EncodedFrame | None:
        """Await a frame newer than ``after`` without blocking the event loop; None on timeout or stop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            event = self._loop_events.get(loop)
            if event is None:
                event = self._loop_events[loop] = asyncio.Event()
            frame = self._latest
            closed = self._closed
        if frame is not None and frame.seq > after:
            return frame
        if closed:
            return None
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return None
        frame = self._latest
        return frame if frame is not None and frame.seq > after else None

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
        with self._lock:
            frame, error, clients = self._latest, self._error, self._clients
            times = list(self._publish_times)
        since = now - times[-1] if times else None
        window = [t for t in times if now - t <= max(5.0, stale_after)]
        span = window[-1] - window[0] if len(window) >= 2 else 0.0
        fps = (len(window) - 1) / span if span > 0 else 0.0
        if self._closed:
            state = "stopped"
        elif error is not None or (since is not None and since > stale_after):
            state = "failing"
            error = error or f"no frame for {since:.1f} s"
        elif since is None:
            started = self._started_at
            state = "failing" if started is not None and now - started > stale_after else "starting"
            if state == "failing":
                error = f"no frame since the start, {now - started:.1f} s ago"
        else:
            state = "ok"
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
