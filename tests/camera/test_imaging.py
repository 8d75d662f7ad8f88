"""The JPEG codec: the strict decoder for camera frames (whole JPEGs within limits) and reduced decoding."""

from __future__ import annotations

import numpy as np
import pytest

from smartlock.camera.imaging import (
    FrameRefused,
    decode_camera_jpeg,
    decode_jpeg_bgr,
    encode_jpeg_bgr,
    reduction,
)
from smartlock.errors import BadImageError

ANALYSIS = (640, 360)


def picture(width: int, height: int) -> np.ndarray:
    """A frame with detail (a gradient and a bright square), so JPEG truncation and scaling show."""
    ramp = np.linspace(0, 255, width, dtype=np.float32)
    image = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2).astype(np.uint8)
    image[height // 4 : height // 2, width // 4 : width // 2] = 250
    return image


@pytest.mark.parametrize(("size", "factor"), [
    ((1280, 720), 2), ((1920, 1080), 2), ((2560, 1440), 4), ((3840, 2160), 4), ((5120, 2880), 8),
    ((640, 360), 1), ((1279, 720), 1), ((1280, 719), 1), ((800, 2000), 1),
])
def test_reduction_keeps_the_image_at_least_the_analysis_size(size: tuple[int, int], factor: int) -> None:
    assert reduction(size, ANALYSIS) == factor
    assert reduction(size, None) == 1


@pytest.mark.parametrize(("size", "reduced"), [((1280, 720), (640, 360)), ((1281, 721), (641, 361)),
                                               ((2600, 1500), (650, 375)), ((1000, 500), (1000, 500))])
def test_reduced_decoding_gives_the_header_size_divided(size: tuple[int, int],
                                                       reduced: tuple[int, int]) -> None:
    jpeg = encode_jpeg_bgr(picture(*size))
    assert decode_camera_jpeg(jpeg).shape == (size[1], size[0], 3)
    assert decode_camera_jpeg(jpeg, reduce_to=ANALYSIS).shape == (reduced[1], reduced[0], 3)
    assert decode_jpeg_bgr(jpeg, reduce_to=ANALYSIS).shape == (reduced[1], reduced[0], 3)
    assert decode_jpeg_bgr(jpeg).shape == (size[1], size[0], 3)  # the camera's call: full size, as before


def test_a_reduced_decode_looks_like_the_full_one_scaled() -> None:
    import cv2

    jpeg = encode_jpeg_bgr(picture(1280, 720), 95)
    full = cv2.resize(decode_camera_jpeg(jpeg), ANALYSIS, interpolation=cv2.INTER_AREA).astype(np.int16)
    reduced = decode_camera_jpeg(jpeg, reduce_to=ANALYSIS).astype(np.int16)
    assert np.abs(full - reduced).mean() < 2.0


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty"),
    (b"<html>busy</html>", "not-jpeg"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "not-jpeg"),  # a JPEG start without a frame header
])
def test_what_is_not_a_jpeg_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(FrameRefused) as refused:
        decode_camera_jpeg(data)
    assert refused.value.reason == reason and isinstance(refused.value, BadImageError)


@pytest.mark.parametrize("keep", [0.3, 0.7, 0.99])
def test_a_jpeg_cut_short_is_refused(keep: float) -> None:
    jpeg = encode_jpeg_bgr(picture(320, 240))
    with pytest.raises(FrameRefused) as refused:
        decode_camera_jpeg(jpeg[: int(len(jpeg) * keep)])
    assert refused.value.reason == "truncated"
    assert decode_camera_jpeg(jpeg + b"\r\n").shape == (240, 320, 3)  # trailing line break is fine


def test_frames_over_the_size_limits_are_refused_by_their_header_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cv2

    eight_k = encode_jpeg_bgr(np.zeros((4320, 7680, 3), dtype=np.uint8), 50)
    tall = encode_jpeg_bgr(np.zeros((4200, 64, 3), dtype=np.uint8), 50)
    uhd = encode_jpeg_bgr(np.zeros((2160, 3840, 3), dtype=np.uint8), 50)
    decoded: list[int] = []
    imdecode = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: decoded.append(len(buf)) or imdecode(buf, flags))
    for jpeg in (eight_k, tall):
        with pytest.raises(FrameRefused) as refused:
            decode_camera_jpeg(jpeg)
        assert refused.value.reason == "oversized"
    with pytest.raises(FrameRefused):
        decode_camera_jpeg(uhd, max_pixels=8_000_000)  # 3840x2160 is 8.3 Mpx: over a lower pixel cap
    assert decoded == []
    assert decode_camera_jpeg(uhd, reduce_to=ANALYSIS).shape == (540, 960, 3)  # 4K UHD passes
    assert decoded == [len(uhd)]


def test_a_jpeg_whose_header_says_zero_pixels_is_refused() -> None:
    from smartlock.camera.mjpeg import jpeg_size

    jpeg = bytearray(encode_jpeg_bgr(picture(64, 48)))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 7] = b"\x00\x00"  # height 0
    assert jpeg_size(bytes(jpeg)) == (64, 0)
    with pytest.raises(FrameRefused) as refused:
        decode_camera_jpeg(bytes(jpeg))
    assert refused.value.reason == "not-jpeg"
