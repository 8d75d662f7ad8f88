"""In-process recognition of the faces the gate found (no second detection), with the real SCRFD gate and
ArcFace on held-out photos: the same people named as when recognition finds the faces itself, the gallery's
embeddings as close, and the engine's mirrored path naming the gate's own track, with the embedding kept.
"""

from __future__ import annotations

import numpy as np
import pytest

from smartlock.engine.assembly import camera_frame_options, in_process
from smartlock.engine.engine import Engine, LoopSettings
from smartlock.engine.gate import build_gate
from smartlock.engine.policy import UnlockPolicy
from smartlock.engine.vision import prepare
from smartlock.recognition.recognizer import Recognizer
from tests.engine import system
from tests.engine.fakes import FakeDoor
from tests.engine.system import Gallery


@pytest.fixture(scope="module")
def recognition(gallery: Gallery):
    return in_process(Recognizer.load(gallery.model_dir, backend_options=camera_frame_options()))


def cosine(a: list[float] | None, b: list[float] | None) -> float:
    assert a is not None and b is not None
    u, v = np.asarray(a), np.asarray(b)
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


def test_the_gates_faces_are_named_as_when_recognition_finds_them(gallery: Gallery, recognition) -> None:
    gate = build_gate(None)
    assert recognition.takes_found
    for name, photo in gallery.probes.items():
        frame = prepare(system.on_canvas(photo), mirror=True)
        detections = gate.detect(frame, 0.0).faces
        assert len(detections) == 1, name
        (itself,) = recognition(frame)
        (given,) = recognition.found(frame, detections)
        assert given.top_prediction is not None and itself.top_prediction is not None
        assert given.top_prediction.label == itself.top_prediction.label == name
        assert given.top_prediction.confidence > 0.9
        assert cosine(given.embedding, itself.embedding) > 0.95  # the same face, aligned the same way
        assert given.bounding_box.left == pytest.approx(detections[0].box[0], abs=0.1)  # the gate's box, kept


def test_the_engine_names_the_gates_track_from_the_unmirrored_frame(gallery: Gallery, recognition) -> None:
    name, photo = next(iter(gallery.probes.items()))
    frame = system.on_canvas(photo)  # as the camera saw it: the engine mirrors it for recognition
    door = FakeDoor()
    engine = Engine(object(), recognition, door, UnlockPolicy(0.8, 1, 1.5),  # type: ignore[arg-type]
                    gate=build_gate(None), settings=LoopSettings(mirror=True))
    image = prepare(frame, mirror=False)
    detections = engine.gate.detect(image, 0.0).faces  # type: ignore[union-attr]
    faces = engine._recognize(image, detections)
    assert faces is not None and len(faces) == 1
    assert faces[0].top_prediction is not None and faces[0].top_prediction.label == name
    box = faces[0].bounding_box
    assert (box.left, box.top, box.right, box.bottom) == pytest.approx(detections[0].box, abs=0.1)
    # computed in this process: the embedding reaches the tracks (their split and same-face rules)
    assert faces[0].embedding is not None and len(faces[0].embedding) == 512
    assert faces[0].top_prediction.confidence > 0.9
    itself = engine._recognize(image)  # recognition finding the face in the mirrored frame itself agrees
    assert itself is not None and itself[0].top_prediction is not None
    assert itself[0].top_prediction.label == name
    # aligned as its own detector aligns it (a left/right mix-up in the mirrored landmarks measured ~0.07)
    assert cosine(faces[0].embedding, itself[0].embedding) > 0.95
