"""Picking and opening a camera source: Pi camera, OpenCV device, video file, image folder or URL relay.

The interface every source implements is in ``source_base``; the URL relay in ``url_source``.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from smartlock.camera.imaging import decode_jpeg_bgr, load_cv2
from smartlock.camera.mjpeg import JPEG_SOI
from smartlock.camera.source_base import OpenCVSource, Pacer, RawFrame, Source, load_picamera2
from smartlock.camera.url_source import UrlSource
from smartlock.errors import BadImageError, CameraError, DependencyMissing
from smartlock.logs import redact_url

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
CAMERA_SIZE = (1280, 720)  # what cameras are asked for when --width/--height are not given


class DeviceSource(OpenCVSource):
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


class VideoFileSource(OpenCVSource):
    """A video file looped at its own frame rate; reopened at each loop, so a vanished file is noticed."""

    kind = "file"

    def __init__(self, path: str | Path, *, fallback_fps: float = 24.0) -> None:
        self.path = Path(path)
        super().__init__(f"file {self.path}", None)
        self.fallback_fps = fallback_fps
        self._pacer: Pacer | None = None
        self._frames_this_pass = 0

    def open(self) -> None:
        if not self.path.is_file():
            raise CameraError(f"{self.name}: no such file")
        capture = self._open_capture(str(self.path))
        fps = float(capture.get(load_cv2().CAP_PROP_FPS) or 0.0)
        self.nominal_fps = fps if 0.5 <= fps <= 240 else self.fallback_fps
        if self._pacer is None or abs(self._pacer.interval * self.nominal_fps - 1) > 1e-6:
            self._pacer = Pacer(self.nominal_fps)
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
        self._pacer = Pacer(fps)
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
            logger.warning("slideshow: skipping %s: %s", path, err)
            return None
        if path.suffix.lower() in (".jpg", ".jpeg") and data.startswith(JPEG_SOI):
            return RawFrame(0.0, jpeg=data)
        try:
            image = decode_jpeg_bgr(data)
        except BadImageError:
            logger.warning("slideshow: skipping %s: not a readable image", path)
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
        self.fps = fps
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
                main={"size": self.size, "format": "RGB888"}, controls={"FrameRate": float(self.fps)}
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
                logger.debug("picamera close: %s", err)


SPEC_HELP = (
    "picamera, a device index (0) or /dev/videoN, a video file, a folder of images, or an http(s)/rtsp URL"
)


def camera_size(width: int | None, height: int | None,
                default: tuple[int, int] = CAMERA_SIZE) -> tuple[int, int]:
    """The size asked of a camera: ``default`` (1280x720); one side given keeps its shape."""
    if width and height:
        return width, height
    if width:
        return width, max(1, round(width * default[1] / default[0]))
    if height:
        return max(1, round(height * default[0] / default[1])), height
    return default


def make_source(
    spec: str,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float = 24.0,
    transport: httpx.BaseTransport | None = None,
    token: str | None = None,
) -> Source:
    """The (unopened) source a ``--source`` value names; CameraError when it names nothing usable.

    ``token`` (an upstream smartlock camera's) is for http(s) URLs only; see UrlSource."""
    asked = camera_size(width, height)
    spec = spec.strip()
    if spec == "picamera":
        return PiCameraSource(width=asked[0], height=asked[1], fps=fps)
    if spec.isdigit():
        return DeviceSource(int(spec), width=asked[0], height=asked[1], fps=fps)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", spec):
        if urlsplit(spec).scheme.lower() not in ("http", "https", "rtsp", "rtsps"):
            raise CameraError(f"source {redact_url(spec)!r}: only http(s):// and rtsp:// URLs can be relayed")
        if token is not None and urlsplit(spec).scheme.lower() not in ("http", "https"):
            raise CameraError(f"source {redact_url(spec)!r}: an upstream token needs an http(s) URL")
        return UrlSource(spec, fps=fps, transport=transport, token=token)
    if token is not None:
        raise CameraError(f"source {spec!r}: an upstream token is only for another camera's http(s) URL")
    if spec.startswith("/dev/"):
        return DeviceSource(spec, width=asked[0], height=asked[1], fps=fps)
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
    token: str | None = None,
) -> Source:
    """Open the source ``spec`` names (default: the Pi camera where picamera2 imports, else device 0).

    Raises CameraError naming everything that was tried when nothing opens.
    """
    if spec is not None:
        source = make_source(spec, width=width, height=height, fps=fps, transport=transport, token=token)
        source.open()
        return source
    if token is not None:
        raise CameraError("an upstream token is only for a --source that is another camera's http(s) URL")
    tried: list[str] = []
    for candidate in ("picamera", "0"):
        source = make_source(candidate, width=width, height=height, fps=fps)
        try:
            source.open()
        except DependencyMissing as err:
            tried.append(f"{source.name} ({err.package} is not installed)")  # not only picamera2: cv2 too
            continue
        except CameraError as err:
            tried.append(str(err))
            continue
        logger.info("camera source: %s", source.name)
        return source
    raise CameraError(f"no camera could be opened; tried: {'; '.join(tried)}. Pass --source: {SPEC_HELP}")
