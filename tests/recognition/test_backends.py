"""Real models on real photos, for each installed backend: recognition, strangers, odd inputs, model files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from smartlock.errors import BadImageError, ModelCorrupt, ModelMismatch
from smartlock.recognition import store
from smartlock.recognition.images import encode_jpeg, load_image
from smartlock.recognition.recognizer import Recognizer
from tests.recognition.conftest import load_backend

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


def test_enrolled_people_are_recognised_on_their_other_photos(enrolled, cast):
    assert list(enrolled.people()) == sorted(cast.enroll)
    for name, probes in cast.probes.items():
        for path in probes:
            face = best(enrolled, load_image(path))
            assert face.top.label == name, path.name
            assert face.top.confidence >= 0.5, (path.name, face.top)


def test_strangers_stay_under_one_half(enrolled, cast):
    for path in cast.strangers:
        for face in enrolled.recognize(load_image(path)):
            assert face.top.confidence < 0.5, (path.name, face.top)


def test_model_round_trip(enrolled, cast, backend):
    again = Recognizer.load(enrolled.model_dir, backend)
    assert again.people() == enrolled.people()
    assert again.calibration() == enrolled.calibration()
    probe = load_image(next(iter(cast.probes.values()))[0])
    before, after = enrolled.recognize(probe)[0], again.recognize(probe)[0]
    assert after.top.label == before.top.label
    assert after.top.confidence == pytest.approx(before.top.confidence, abs=1e-6)


def test_a_gallery_refuses_another_backend(enrolled, backend):
    other_name = "dlib" if backend.name == "arcface" else "arcface"
    other = load_backend(other_name)
    with pytest.raises(ModelMismatch, match=backend.name):
        Recognizer.load(enrolled.model_dir, other)


def test_a_corrupt_model_file_gives_a_clear_error(enrolled, tmp_path, backend):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / store.METADATA_FILE).write_bytes((enrolled.model_dir / store.METADATA_FILE).read_bytes())
    (broken / store.EMBEDDINGS_FILE).write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(ModelCorrupt, match="does not match"):
        Recognizer.load(broken, backend)


def test_no_face(enrolled):
    rng = np.random.default_rng(3)
    landscape = np.zeros((360, 640, 3), np.uint8)
    landscape[:180] = (120, 170, 230)
    landscape[180:] = (60, 120, 40)
    landscape += rng.integers(0, 20, landscape.shape, dtype=np.uint8)
    assert enrolled.recognize(landscape) == []
    [outcome] = enrolled.enroll("nobody", [("landscape.jpg", encode_jpeg(landscape))])
    assert not outcome.enrolled and outcome.reason == "no face"


def test_several_faces_side_by_side(enrolled, cast):
    names = sorted(cast.probes)[:2]
    left, right = (load_image(cast.probes[name][0]) for name in names)
    height = max(left.shape[0], right.shape[0])
    canvas = np.full((height, left.shape[1] + right.shape[1], 3), 128, np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] :] = right
    faces = enrolled.recognize(canvas)
    found = {face.top.label for face in faces if face.top.confidence >= 0.5}
    assert set(names) <= found
    boxes = sorted(faces, key=lambda f: f.box[0])
    assert boxes[0].box[2] <= left.shape[1] + 5 and boxes[-1].box[0] >= left.shape[1] - 5
    [refused] = enrolled.enroll("pair", [("pair.jpg", encode_jpeg(canvas))])
    assert not refused.enrolled and refused.reason.startswith("several faces")


def test_truncated_file(enrolled, cast):
    data = next(iter(cast.probes.values()))[0].read_bytes()
    with pytest.raises(BadImageError):
        enrolled.recognize_bytes(data[: len(data) // 3])


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
