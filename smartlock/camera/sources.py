"""Camera sources behind one small interface: Pi camera, OpenCV device, video file, image folder, URL relay.

A source is opened once by ``open_source`` (so a bad ``--source`` fails at start-up with a clear message),
then read by the hub's capture thread: ``read()`` blocks until the next frame is due and returns it either
as a BGR array or, when the source already yields JPEG (an MJPEG URL, a .jpg in a folder), as the JPEG
bytes themselves so they can be passed through without re-encoding. A failing ``read()`` raises
CameraError; the hub then closes the source and opens it again later.

cv2 and picamera2 are imported only when a source that needs them is opened.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import numpy as np

from smartlock.camera.mjpeg import JPEG_SOI, header_param, iter_multipart, part_timestamp
from smartlock.errors import CameraError, DependencyMissing

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
CAMERA_SIZE = (1280, 720)  # what cameras are asked for when --width/--height are not given


def load_cv2() -> Any:
    """Import OpenCV, or say which package to install."""
    try:
        import cv2
    except ImportError as err:
        install = "pip install 'opencv-python-headless>=4.9,<5'"
        raise DependencyMissing("opencv-python-headless", "The camera service", install) from err
    return cv2


def load_picamera2() -> Any:
    """Import picamera2 (Raspberry Pi OS only: it needs libcamera, which PyPI cannot provide)."""
    try:
        import picamera2
    except ImportError as err:
        install = "sudo apt install python3-picamera2"
        raise DependencyMissing("picamera2", "The Pi camera source (Raspberry Pi OS)", install) from err
    return picamera2


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One captured frame: a BGR uint8 array or already-encoded JPEG bytes, and when it was captured."""

    timestamp: float  # unix seconds at capture
    image: np.ndarray | None = None
    jpeg: bytes | None = None


class Source(ABC):
    """A camera-like thing the capture thread pulls frames from."""

    kind: ClassVar[str] = ""
    resizes_itself: ClassVar[bool] = False  # cameras are asked for a size; other sources get scaled

    def __init__(self, name: str, nominal_fps: float | None) -> None:
        self.name = name
        self.nominal_fps = nominal_fps
        self._interrupted = threading.Event()

    @property
    @abstractmethod
    def is_open(self) -> bool: ...

    @abstractmethod
    def open(self) -> None:
        """Open (or reopen) the source; raise CameraError saying why it cannot be."""

    @abstractmethod
    def read(self) -> RawFrame:
        """Block until the next frame is due and return it; raise CameraError when the source fails."""

    @abstractmethod
    def close(self) -> None:
        """Release the source; safe to call twice."""

    def interrupt(self) -> None:
        """Cut short a pacing sleep (the hub is stopping)."""
        self._interrupted.set()

    def _pause_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            self._interrupted.wait(delay)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class _Pacer:
    """Releases frames at a fixed rate; after a long stall it restarts the schedule instead of bursting."""

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps
        self._next: float | None = None

    def wait(self, source: Source) -> None:
        now = time.monotonic()
        if self._next is None or now - self._next > max(0.5, 2 * self.interval):
            self._next = now
        else:
            source._pause_until(self._next)
        self._next += self.interval


class _OpenCVSource(Source):
    """Shared code for sources read through cv2.VideoCapture."""

    def __init__(self, name: str, nominal_fps: float | None) -> None:
        super().__init__(name, nominal_fps)
        self._capture: Any = None

    @property
    def is_open(self) -> bool:
        return self._capture is not None

    def _open_capture(self, target: int | str, api: str = "CAP_ANY", params: Iterable[int] = ()) -> Any:
        cv2 = load_cv2()
        capture = cv2.VideoCapture(target, getattr(cv2, api), list(params))
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"{self.name}: OpenCV could not open it")
        return capture

    def _grab(self) -> np.ndarray | None:
        ok, image = self._capture.read()
        return image if ok and image is not None and image.size else None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class DeviceSource(_OpenCVSource):
    """A USB/V4L2 camera by OpenCV index (``0``) or device path (``/dev/video0``)."""

    kind = "device"
    resizes_itself = True

    def __init__(self, device: int | str, *, width: int, height: int, fps: float) -> None:
        super().__init__(f"device {device}", fps)
        self.device = device
        self.size = (width, height)

    def open(self) -> None:
        if isinstance(self.device, str) and not Path(self.device).exists():
            raise CameraError(f"{self.name}: {self.device} does not exist")
        if isinstance(self.device, int) and sys.platform.startswith("linux"):
            node = Path(f"/dev/video{self.device}")
            if not node.exists():
                raise CameraError(f"{self.name}: {node} does not exist")
        api = "CAP_V4L2" if isinstance(self.device, str) else "CAP_ANY"
        capture = self._open_capture(self.device, api)
        cv2 = load_cv2()
        # Requests, not guarantees: a camera that cannot do 1280x720 answers with its nearest mode.
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        capture.set(cv2.CAP_PROP_FPS, self.nominal_fps)
        self._capture = capture

    def read(self) -> RawFrame:
        if self._capture is None:
            raise CameraError(f"{self.name} is not open")
        image = self._grab()
        if image is None:
            raise CameraError(f"{self.name} returned no frame")
        return RawFrame(time.time(), image=image)


class VideoFileSource(_OpenCVSource):
    """A video file looped at its own frame rate; reopened at each loop, so a vanished file is noticed."""

    kind = "file"

    def __init__(self, path: str | Path, *, fallback_fps: float = 24.0) -> None:
        self.path = Path(path)
        super().__init__(f"file {self.path}", None)
        self.fallback_fps = fallback_fps
        self._pacer: _Pacer | None = None
        self._frames_this_pass = 0

    def open(self) -> None:
        if not self.path.is_file():
            raise CameraError(f"{self.name}: no such file")
        capture = self._open_capture(str(self.path))
        fps = float(capture.get(load_cv2().CAP_PROP_FPS) or 0.0)
        self.nominal_fps = fps if 0.5 <= fps <= 240 else self.fallback_fps
        if self._pacer is None or abs(self._pacer.interval * self.nominal_fps - 1) > 1e-6:
            self._pacer = _Pacer(self.nominal_fps)
        self._capture = capture
        self._frames_this_pass = 0

    def read(self) -> RawFrame:
        if self._capture is None or self._pacer is None:
            raise CameraError(f"{self.name} is not open")
        image = self._grab()
        if image is None:  # end of the file: start the next loop from a fresh open
            if self._frames_this_pass == 0:
                raise CameraError(f"{self.name}: no frame could be decoded")
            self.close()
            self.open()
            image = self._grab()
            if image is None:
                raise CameraError(f"{self.name}: no frame could be decoded")
        self._frames_this_pass += 1
        self._pacer.wait(self)
        return RawFrame(time.time(), image=image)


class ImageFolderSource(Source):
    """A slideshow of the images in a folder (sorted by name) at ``fps``; the folder is re-listed each round.

    JPEG files are passed through as they are; other formats are decoded and re-encoded by the hub.
    """

    kind = "folder"

    def __init__(self, folder: str | Path, *, fps: float) -> None:
        self.folder = Path(folder)
        super().__init__(f"folder {self.folder}", fps)
        self._pacer = _Pacer(fps)
        self._files: list[Path] = []
        self._index = 0
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    def _list(self) -> list[Path]:
        if not self.folder.is_dir():
            raise CameraError(f"{self.name}: no such folder")
        files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise CameraError(f"{self.name}: no images in it (looked for {', '.join(IMAGE_SUFFIXES)})")
        return files

    def open(self) -> None:
        self._files = self._list()
        self._index = 0
        self._open = True

    def _load(self, path: Path) -> RawFrame | None:
        try:
            data = path.read_bytes()
        except OSError as err:
            log.warning("slideshow: skipping %s: %s", path, err)
            return None
        if path.suffix.lower() in (".jpg", ".jpeg") and data.startswith(JPEG_SOI):
            return RawFrame(0.0, jpeg=data)
        cv2 = load_cv2()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("slideshow: skipping %s: not a readable image", path)
            return None
        return RawFrame(0.0, image=image)

    def read(self) -> RawFrame:
        if not self._open:
            raise CameraError(f"{self.name} is not open")
        for _ in range(len(self._files) + 1):
            if self._index >= len(self._files):
                self._files = self._list()
                self._index = 0
            path = self._files[self._index]
            self._index += 1
            frame = self._load(path)
            if frame is not None:
                self._pacer.wait(self)
                return RawFrame(time.time(), image=frame.image, jpeg=frame.jpeg)
        raise CameraError(f"{self.name}: none of its images could be read")

    def close(self) -> None:
        self._open = False


class PiCameraSource(Source):
    """The Raspberry Pi camera through picamera2 (libcamera), any Pi model including the Pi 5."""

    kind = "picamera"
    resizes_itself = True

    def __init__(self, *, width: int, height: int, fps: float, module: Any = None) -> None:
        super().__init__("picamera", fps)
        self.size = (width, height)
        self._module = module
        self._camera: Any = None

    @property
    def is_open(self) -> bool:
        return self._camera is not None

    def open(self) -> None:
        module = self._module or load_picamera2()
        try:
            camera = module.Picamera2()
            # "RGB888" is laid out B, G, R in memory: what OpenCV's encoder expects.
            config = camera.create_video_configuration(
                main={"size": self.size, "format": "RGB888"}, controls={"FrameRate": float(self.nominal_fps)}
            )
            camera.configure(config)
            camera.start()
        except Exception as err:  # libcamera raises RuntimeError/IndexError when no camera is attached
            raise CameraError(f"picamera: {err}") from err
        self._camera = camera

    def read(self) -> RawFrame:
        if self._camera is None:
            raise CameraError("picamera is not open")
        try:
            image = self._camera.capture_array("main")
        except Exception as err:
            raise CameraError(f"picamera: {err}") from err
        return RawFrame(time.time(), image=image)

    def close(self) -> None:
        if self._camera is not None:
            camera, self._camera = self._camera, None
            try:
                camera.stop()
                camera.close()
            except Exception as err:  # already gone; nothing else to release
                log.debug("picamera close: %s", err)


def redact_url(url: str) -> str:
    """The URL without a password or token, for logs and /health."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = urlencode(
        [
            (k, "***" if k.lower() in ("token", "key", "api_key", "password") else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class UrlSource(Source):
    """Relays a URL: an MJPEG stream (passed through, parsed here), a JPEG snapshot URL (polled at ``fps``),
    or anything else OpenCV's FFmpeg can read (rtsp://, HLS, ...)."""

    kind = "url"

    def __init__(
        self,
        url: str,
        *,
        fps: float = 24.0,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(f"url {redact_url(url)}", None)
        self.url = url
        self.fallback_fps = fps
        self._transport = transport
        self._timeout = timeout
        self._client: httpx.Client | None = None
        self._response: httpx.Response | None = None
        self._parts: Iterator[tuple[dict[str, str], bytes]] | None = None
        self._pending: bytes | None = None
        self._pacer: _Pacer | None = None
        self._capture: _UrlCapture | None = None
        self.mode = ""

    @property
    def is_open(self) -> bool:
        return bool(self.mode)

    def open(self) -> None:
        self.close()
        if urlsplit(self.url).scheme.lower() not in ("http", "https"):
            self._open_opencv()
            return
        timeout = httpx.Timeout(self._timeout, connect=5.0)
        client = httpx.Client(transport=self._transport, timeout=timeout, follow_redirects=True)
        try:
            response = client.send(client.build_request("GET", self.url), stream=True)
        except httpx.HTTPError as err:
            client.close()
            raise CameraError(f"{self.name}: cannot connect: {err}") from err
        content_type = response.headers.get("content-type", "").lower()
        if response.status_code != 200:
            response.close()
            client.close()
            raise CameraError(f"{self.name}: answered HTTP {response.status_code}")
        if content_type.startswith("multipart/"):
            boundary = header_param(response.headers["content-type"], "boundary")
            if not boundary:
                response.close()
                client.close()
                raise CameraError(f"{self.name}: multipart stream without a boundary")
            self._client, self._response = client, response
            self._parts = iter_multipart(response.iter_bytes(), boundary)
            self.nominal_fps = None
            self.mode = "mjpeg"
        elif content_type.startswith("image/jpeg"):
            try:
                self._pending = response.read()
            except httpx.HTTPError as err:
                raise CameraError(f"{self.name}: {err}") from err
            finally:
                response.close()
            self._client = client
            self.nominal_fps = self.fallback_fps
            self._pacer = self._pacer or _Pacer(self.fallback_fps)
            self.mode = "snapshot"
        else:
            response.close()
            client.close()
            self._open_opencv()

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
            if body.startswith(JPEG_SOI):
                return RawFrame(part_timestamp(headers), jpeg=body)

    def _read_snapshot(self) -> RawFrame:
        assert self._client is not None and self._pacer is not None
        if self._pending is None:
            try:
                response = self._client.get(self.url)
            except httpx.HTTPError as err:
                raise CameraError(f"{self.name}: {err}") from err
            if response.status_code != 200 or not response.content.startswith(JPEG_SOI):
                raise CameraError(f"{self.name}: answered HTTP {response.status_code} without a JPEG")
            self._pending = response.content
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


class _UrlCapture(_OpenCVSource):
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


SOURCES: dict[str, type[Source]] = {
    source.kind: source
    for source in (PiCameraSource, DeviceSource, VideoFileSource, ImageFolderSource, UrlSource)
}
SPEC_HELP = (
    "picamera, a device index (0) or /dev/videoN, a video file, a folder of images, or an http(s)/rtsp URL"
)


def _camera_size(width: int | None, height: int | None) -> tuple[int, int]:
    """The size asked of a camera: 1280x720 by default; one side given keeps the 16:9 shape."""
    if width and height:
        return width, height
    if width:
        return width, max(1, round(width * CAMERA_SIZE[1] / CAMERA_SIZE[0]))
    if height:
        return max(1, round(height * CAMERA_SIZE[0] / CAMERA_SIZE[1])), height
    return CAMERA_SIZE


def make_source(
    spec: str,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float = 24.0,
    transport: httpx.BaseTransport | None = None,
) -> Source:
    """The (unopened) source a ``--source`` value names; CameraError when it names nothing usable."""
    camera_size = _camera_size(width, height)
    spec = spec.strip()
    if spec == "picamera":
        return PiCameraSource(width=camera_size[0], height=camera_size[1], fps=fps)
    if spec.isdigit():
        return DeviceSource(int(spec), width=camera_size[0], height=camera_size[1], fps=fps)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", spec):
        if urlsplit(spec).scheme.lower() not in ("http", "https", "rtsp", "rtsps"):
            raise CameraError(f"source {redact_url(spec)!r}: only http(s):// and rtsp:// URLs can be relayed")
        return UrlSource(spec, fps=fps, transport=transport)
    if spec.startswith("/dev/"):
        return DeviceSource(spec, width=camera_size[0], height=camera_size[1], fps=fps)
    path = Path(spec).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, fps=fps)
    if path.is_file():
        return VideoFileSource(path, fallback_fps=fps)
    raise CameraError(f"source {spec!r}: no such file or folder, and not {SPEC_HELP}")


def open_source(
    spec: str | None = None,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float = 24.0,
    transport: httpx.BaseTransport | None = None,
) -> Source:
    """Open the source ``spec`` names (default: the Pi camera where picamera2 imports, else device 0).

    Raises CameraError naming everything that was tried when nothing opens.
    """
    if spec is not None:
        source = make_source(spec, width=width, height=height, fps=fps, transport=transport)
        source.open()
        return source
    tried: list[str] = []
    for candidate in ("picamera", "0"):
        source = make_source(candidate, width=width, height=height, fps=fps)
        try:
            source.open()
        except DependencyMissing as err:
            tried.append(f"picamera ({err.package} is not installed)")
            continue
        except CameraError as err:
            tried.append(str(err))
            continue
        log.info("camera source: %s", source.name)
        return source
    raise CameraError(f"no camera could be opened; tried: {'; '.join(tried)}. Pass --source: {SPEC_HELP}")
