"""Decoding image bytes: formats, EXIF orientation, gray/RGBA/16-bit, and clear errors for bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from smartlock.errors import BadImageError
from smartlock.recognition.images import decode_image, encode_jpeg_rgb, load_image


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(width: int = 64, height: int = 48) -> np.ndarray:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, :, 0] = x
    rgb[:, :, 1] = 255 - x
    rgb[: height // 2, :, 2] = 200
    return rgb


def test_png_round_trip_is_exact():
    rgb = gradient()
    decoded = decode_image(encode(Image.fromarray(rgb)))
    assert decoded.dtype == np.uint8 and decoded.shape == (48, 64, 3)
    assert np.array_equal(decoded, rgb)


def test_jpeg_round_trip_is_close():
    rgb = gradient()
    decoded = decode_image(encode_jpeg_rgb(rgb, quality=95))
    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - rgb).mean() < 4


def test_gray_becomes_three_equal_channels():
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (10, 1))
    decoded = decode_image(encode(Image.fromarray(gray, mode="L")))
    assert decoded.shape == (10, 64, 3)
    assert np.array_equal(decoded[:, :, 0], gray) and np.array_equal(decoded[:, :, 2], gray)


def test_sixteen_bit_gray_keeps_its_range():
    values = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (8, 1))
    data = encode(Image.fromarray(values))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    decoded = decode_image(data)
    assert decoded.shape == (8, 32, 3)
    assert decoded[0, 0, 0] == 0 and decoded[0, -1, 0] == 255
    assert np.all(np.diff(decoded[0, :, 0].astype(int)) >= 0)


def test_rgba_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:2, :, :3] = (10, 20, 30)
    rgba[:2, :, 3] = 255  # top half opaque, bottom half fully transparent
    decoded = decode_image(encode(Image.fromarray(rgba, mode="RGBA")))
    assert decoded.shape == (4, 4, 3)
    assert tuple(decoded[0, 0]) == (10, 20, 30)
    assert tuple(decoded[3, 3]) == (255, 255, 255)


def test_exif_orientation_is_applied():
    rgb = gradient(64, 48)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    decoded = decode_image(encode(Image.fromarray(rgb), "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.shape == (64, 48, 3)
    # after a clockwise turn the left column (dark red) is at the top
    assert decoded[0, :, 0].mean() < decoded[-1, :, 0].mean()


def test_palette_and_cmyk_images():
    rgb = gradient()
    assert decode_image(encode(Image.fromarray(rgb).convert("P"))).shape == (48, 64, 3)
    assert decode_image(encode(Image.fromarray(rgb).convert("CMYK"), "JPEG")).shape == (48, 64, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not an image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "not an image|damaged|truncated"),
    ],
)
def test_bad_bytes_are_refused(data, message):
    with pytest.raises(BadImageError, match=message):
        decode_image(data)


def test_truncated_jpeg_is_refused():
    data = encode_jpeg_rgb(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    with pytest.raises(BadImageError, match=r"truncated|damaged"):
        decode_image(data[: len(data) // 2])


def test_too_many_pixels_is_refused_before_decoding():
    data = encode(Image.new("L", (3000, 3000)))
    with pytest.raises(BadImageError, match=r"too large"):
        decode_image(data, max_pixels=1_000_000)


def test_load_image_names_the_file(tmp_path):
    with pytest.raises(BadImageError, match=r"missing\.jpg"):
        load_image(tmp_path / "missing.jpg")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    with pytest.raises(BadImageError, match=r"bad\.png"):
        load_image(bad)


def test_encode_jpeg_refuses_other_arrays():
    with pytest.raises(BadImageError):
        encode_jpeg_rgb(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(BadImageError):
        encode_jpeg_rgb(np.zeros((4, 4, 4), np.uint8))
