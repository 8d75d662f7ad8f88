"""Sources: picking one from --source, opening failures that say what was tried, and each kind's frames."""

from __future__ import annotations

import itertools
import os
import shutil
import time
import types
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from smartlock.camera.mjpeg import build_part
from smartlock.camera.sources import (
    DeviceSource,
    ImageFolderSource,
    PiCameraSource,
    UrlSource,
    VideoFileSource,
    make_source,
    open_source,
)
from smartlock.errors import CameraError, DependencyMissing
from tests.camera.media import PALETTE, jpeg_bytes, nearest_color, solid_image


def picamera2_installed() -> bool:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("picamera", "picamera"),
        ("0", "device"),
        ("/dev/video2", "device"),
        ("http://127.0.0.1:8080/stream.mjpg", "url"),
        ("https://cam.example/snapshot.jpg", "url"),
        ("rtsp://10.0.0.5:554/live", "url"),
    ],
)
def test_source_kind_from_spec(spec: str, kind: str) -> None:
    assert make_source(spec).kind == kind


def test_files_and_folders_are_told_apart(video_file: Path, tmp_path: Path) -> None:
    assert isinstance(make_source(str(video_file)), VideoFileSource)
    assert isinstance(make_source(str(tmp_path)), ImageFolderSource)


def test_camera_sources_default_to_1280x720_and_take_the_requested_size() -> None:
    assert make_source("0").size == (1280, 720)
    assert make_source("0", width=640, height=480, fps=15).size == (640, 480)
    assert make_source("0", width=640).size == (640, 360)
    assert make_source("picamera", height=1080).size == (1920, 1080)


def test_a_source_that_names_nothing_says_what_a_source_can_be(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.mp4"
    with pytest.raises(CameraError) as err:
        open_source(str(missing))
    assert str(missing) in str(err.value) and "device index" in str(err.value)
    with pytest.raises(CameraError, match="only http"):
        make_source("ftp://cam/stream")


def test_a_file_that_is_no_video_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("this is not a video")
    with pytest.raises(CameraError, match=r"notes\.mp4"):
        open_source(str(bogus))


@pytest.mark.skipif(picamera2_installed() or os.path.exists("/dev/video0"), reason="a camera is present")
def test_default_source_names_everything_it_tried() -> None:
    with pytest.raises(CameraError) as err:
        open_source(None)
    message = str(err.value)
    assert "picamera (picamera2 is not installed)" in message
    assert "device 0" in message and "/dev/video0" in message
    assert "--source" in message


@pytest.mark.skipif(picamera2_installed(), reason="picamera2 is installed")
def test_picamera_without_picamera2_says_how_to_install_it() -> None:
    with pytest.raises(DependencyMissing, match="apt install python3-picamera2"):
        open_source("picamera")


def test_missing_device_path_is_a_clear_error() -> None:
    with pytest.raises(CameraError, match="/dev/video99 does not exist"):
        DeviceSource("/dev/video99", width=640, height=480, fps=24).open()


def test_picamera_source_configures_picamera2_for_opencv() -> None:
    # Unit test of the seam: picamera2 only exists on a Pi, so a stand-in module records the calls.
    calls: dict[str, object] = {}

    class FakePicamera2:
        def create_video_configuration(self, main, controls):
            calls["main"], calls["controls"] = main, controls
            return "config"

        def configure(self, config):
            calls["configured"] = config

        def start(self):
            calls["started"] = True

        def capture_array(self, stream):
            return np.zeros((720, 1280, 3), np.uint8)

        def stop(self):
            calls["stopped"] = True

        def close(self):
            calls["closed"] = True

    source = PiCameraSource(
        width=1280, height=720, fps=24, module=types.SimpleNamespace(Picamera2=FakePicamera2)
    )
    source.open()
    frame = source.read()
    source.close()
    assert calls["main"] == {"size": (1280, 720), "format": "RGB888"}
    assert calls["controls"] == {"FrameRate": 24.0}
    assert frame.image.shape == (720, 1280, 3) and frame.timestamp > 1e9
    assert calls["stopped"] and calls["closed"] and not source.is_open


def test_video_file_loops_at_its_own_frame_rate(video_file: Path) -> None:
    source = VideoFileSource(video_file, fallback_fps=5)
    source.open()
    try:
        assert source.nominal_fps == pytest.approx(20.0)
        colors = [nearest_color(source.read().image) for _ in range(50)]  # 40 frames in the file
    finally:
        source.close()
    assert colors[:40] == [i // 10 for i in range(40)]
    assert colors[40:] == [0] * 10  # started again from the first frame


def test_video_file_that_vanishes_fails_at_the_loop_and_reopens_when_back(
    video_file: Path, tmp_path: Path
) -> None:
    video = shutil.copy(video_file, tmp_path / "copy.mp4")
    source = VideoFileSource(video)
    source.open()
    hidden = tmp_path / "hidden.mp4"
    os.rename(video, hidden)
    with pytest.raises(CameraError, match="no such file"):
        for _ in range(41):
            source.read()
    os.rename(hidden, video)
    source.open()
    assert source.read().image is not None
    source.close()


def test_image_folder_slideshow_passes_jpegs_through(tmp_path: Path) -> None:
    jpeg = jpeg_bytes(solid_image(PALETTE[0]))
    (tmp_path / "a.jpg").write_bytes(jpeg)
    cv2.imwrite(str(tmp_path / "b.png"), solid_image(PALETTE[1]))
    (tmp_path / "c.jpg").write_bytes(b"broken")  # skipped, the show goes on
    (tmp_path / "d.txt").write_text("ignored")
    source = ImageFolderSource(tmp_path, fps=50)
    source.open()
    frames = [source.read() for _ in range(4)]
    assert frames[0].jpeg == jpeg and frames[0].image is None
    assert frames[1].jpeg is None and nearest_color(frames[1].image) == 1
    assert frames[2].jpeg == jpeg and nearest_color(frames[3].image) == 1
    assert all(b.timestamp > a.timestamp for a, b in itertools.pairwise(frames))
    (tmp_path / "a.jpg").unlink()
    (tmp_path / "b.png").unlink()
    with pytest.raises(CameraError, match=r"could be read|no images"):
        for _ in range(4):
            source.read()


def test_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="no images"):
        open_source(str(tmp_path))


def mjpeg_transport(jpegs: list[bytes], stamps: list[float]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/missing":
            return httpx.Response(404)
        if request.url.path == "/snapshot.jpg":
            return httpx.Response(200, content=jpegs[0], headers={"content-type": "image/jpeg"})
        body = b"".join(build_part(j, t) for j, t in zip(jpegs, stamps, strict=True))
        return httpx.Response(
            200,
            stream=httpx.ByteStream(body),
            headers={"content-type": "multipart/x-mixed-replace; boundary=FRAME"},
        )

    return httpx.MockTransport(handler)


def test_url_source_passes_mjpeg_frames_through_with_their_capture_time() -> None:
    jpegs = [jpeg_bytes(solid_image(c)) for c in PALETTE[:3]]
    stamps = [1_700_000_000.5, 1_700_000_001.0, 1_700_000_001.5]
    source = UrlSource("http://cam/stream.mjpg", transport=mjpeg_transport(jpegs, stamps))
    source.open()
    frames = [source.read() for _ in range(3)]
    assert source.mode == "mjpeg"
    assert [f.jpeg for f in frames] == jpegs
    assert [f.timestamp for f in frames] == stamps
    with pytest.raises(CameraError, match="ended"):
        source.read()
    source.close()


def test_url_source_polls_a_snapshot_url() -> None:
    jpeg = jpeg_bytes(solid_image(PALETTE[4]))
    source = UrlSource("http://cam/snapshot.jpg", fps=100, transport=mjpeg_transport([jpeg], [0.0]))
    source.open()
    assert source.mode == "snapshot"
    frames = [source.read() for _ in range(3)]
    assert all(f.jpeg == jpeg for f in frames)
    source.close()


def test_url_source_refuses_an_endless_snapshot_instead_of_buffering_it(monkeypatch) -> None:
    monkeypatch.setattr("smartlock.camera.url_source.MAX_PART_BYTES", 10_000)
    big = jpeg_bytes(np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    assert len(big) > 10_000
    small = jpeg_bytes(solid_image(PALETTE[0]))
    answers = [small, big]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=answers.pop(0), headers={"content-type": "image/jpeg"})

    source = UrlSource("http://cam/snapshot.jpg", fps=100, transport=httpx.MockTransport(handler))
    source.open()
    assert source.read().jpeg == small
    with pytest.raises(CameraError, match="more than 10000 bytes"):
        source.read()
    source.close()
    with pytest.raises(CameraError, match="more than 10000 bytes"):
        UrlSource("http://cam/snapshot.jpg", transport=mjpeg_transport([big], [0.0])).open()


def test_url_source_errors_name_the_url_without_its_token() -> None:
    with pytest.raises(CameraError, match=r"HTTP 404") as err:
        UrlSource("http://cam/missing?token=s3cret", transport=mjpeg_transport([], [])).open()
    assert "s3cret" not in str(err.value)
    start = time.monotonic()
    with pytest.raises(CameraError, match="cannot connect"):
        UrlSource("http://127.0.0.1:9/stream.mjpg").open()  # discard port: refused at once
    assert time.monotonic() - start < 30
