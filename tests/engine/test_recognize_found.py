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


def test_a_short_miss_heals_only_for_the_face_seen_before_it(gallery: Gallery, recognition) -> None:
    """Through the engine with the real gate and in-process ArcFace: a face, a frame without it, the same
    face again: one run (no break); the face, a frame without it, another photo of the same person (named
    so above the threshold, but less alike than MISS_SAME_FACE: a card flipped to another picture): the run
    is broken at the miss."""
    from smartlock.engine.frames import Frame
    from smartlock.engine.tracks import MISS_SAME_FACE, SAME_FACE

    def seen(photo) -> list:
        return recognition(prepare(system.on_canvas(photo), mirror=True))

    name, probe = next(iter(gallery.probes.items()))
    (probed,) = seen(probe)
    others = []
    for photo in sorted(probe.parent.glob("*.jpg")):
        faces = seen(photo) if photo != probe else []
        if len(faces) == 1 and faces[0].top_prediction and faces[0].top_prediction.label == name:
            alike = cosine(probed.embedding, faces[0].embedding)
            if faces[0].top_prediction.confidence > 0.8 and SAME_FACE <= alike < MISS_SAME_FACE:
                others.append(photo)
    assert others, f"no other photo of {name} above the threshold, {SAME_FACE}-{MISS_SAME_FACE} alike"
    face = system.on_canvas(probe)
    blank = np.full_like(face, 127)

    def through_engine(frames: list[np.ndarray]) -> Engine:
        now = [0.0]
        engine = Engine(object(), recognition, FakeDoor(), UnlockPolicy(0.8, 5, 1.5),  # type: ignore[arg-type]
                        gate=build_gate(None), clock=lambda: now[0],
                        settings=LoopSettings(mirror=True, max_fps=20))
        for seq, image in enumerate(frames, start=1):
            now[0] = (seq - 1) * 0.05
            engine.process(Frame(image=image, seq=seq, received=now[0], captured=None))
        return engine

    for frames, broken in (([face, blank, face], float("-inf")),
                           ([face, blank, system.on_canvas(others[0])], 0.0)):
        (track,) = through_engine(frames).tracker.active
        assert [obs.recognition.label for obs in track.history if obs.recognition] == [name, name]
        assert track.missed_at is None and track.broken_at == broken
