"""What only real models show, on real photos for each installed backend: weights, odd photos, small faces
(the behaviour every backend shares is in test_recognizer_contract.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from smartlock.recognition.images import load_image
from smartlock.recognition.recognizer import Recognizer

pytestmark = [pytest.mark.faces, pytest.mark.slow]


def best(recognizer: Recognizer, image: np.ndarray):
    faces = recognizer.recognize(image)
    assert faces, "no face found"
    return faces[0]


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_weights_are_verified_and_recorded(backend):
    """The shipped weights are the files whose sha256 the backend module pins, and each is recorded."""
    import importlib

    module = importlib.import_module(type(backend).__module__)
    hashes = backend.model_hashes()
    assert sorted(hashes.values()) == sorted(module.KNOWN_SHA256.values())
    assert all(any(name.endswith(file) for file in module.KNOWN_SHA256) for name in hashes), hashes


















@pytest.mark.parametrize("form", ["gray", "rgba", "16-bit", "exif-rotated"])
def test_unusual_image_forms(enrolled, cast, form):
    name = sorted(cast.probes)[0]
    rgb = load_image(cast.probes[name][0])
    if form == "gray":
        data = encode(Image.fromarray(rgb).convert("L"))
    elif form == "rgba":
        data = encode(Image.fromarray(rgb).convert("RGBA"))
    elif form == "16-bit":
        gray = np.asarray(Image.fromarray(rgb).convert("L")).astype(np.uint16) * 257
        data = encode(Image.fromarray(gray))
    else:
        exif = Image.Exif()
        exif[0x0112] = 8  # stored turned clockwise; display turns it back anticlockwise
        turned = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_270)
        data = encode(turned, "JPEG", exif=exif.tobytes(), quality=95)
    faces = enrolled.recognize_bytes(data)
    assert faces and faces[0].top.label == name, form
    assert faces[0].top.confidence >= 0.5, (form, faces[0].top)


@pytest.mark.parametrize("size", [480, 1600])
def test_a_face_filling_the_whole_image(enrolled, cast, backend, size):
    """Found on the padded retry; at 1600 px the retry canvas is shrunk first, and the box still comes
    back in the image's own pixels."""
    name = sorted(cast.probes)[1]
    rgb = load_image(cast.probes[name][0])
    left, top, right, bottom = (int(v) for v in best(enrolled, rgb).box)
    crop = np.ascontiguousarray(rgb[top:bottom, left:right])
    zoomed = np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR))
    faces = enrolled.recognize(zoomed)
    assert faces, "a face filling the image was not found"
    box = faces[0].box
    assert box[2] - box[0] > size / 2 and box[3] - box[1] > size / 2, box
    assert 0 <= box[0] < box[2] <= size and 0 <= box[1] < box[3] <= size, box
    assert faces[0].top.label == name


@pytest.mark.parametrize("shape", [(2, 200_000), (200_000, 2)])
def test_a_long_thin_image_is_answered_not_a_crash(enrolled, shape):
    """0.4 megapixels, within the size limit: the padded retry must not square its length."""
    strip = np.full((*shape, 3), 128, np.uint8)
    assert enrolled.recognize(strip) == []


def test_a_small_face_in_a_camera_frame(enrolled, cast):
    name = sorted(cast.probes)[2]
    rgb = load_image(cast.probes[name][0])
    left, _, right, _ = best(enrolled, rgb).box
    scale = 48 / (right - left)  # the face becomes about 48 px wide
    small = np.asarray(Image.fromarray(rgb).resize((round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)),
                                                   Image.Resampling.LANCZOS))
    frame = np.full((360, 640, 3), 90, np.uint8)
    frame[150 : 150 + small.shape[0], 300 : 300 + small.shape[1]] = small
    faces = enrolled.recognize(frame)
    assert faces, "a 48 px face was not found"
    width = faces[0].box[2] - faces[0].box[0]
    assert 30 < width < 80
    assert 290 < faces[0].box[0] < 300 + small.shape[1]
