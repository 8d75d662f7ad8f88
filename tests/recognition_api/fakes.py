"""A stand-in Recognizer for the API's unit tests: real image decoding, recognition by exact photo bytes."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

from smartlock.errors import NotEnrolled
from smartlock.recognition.images import decode_image
from smartlock.recognition.recognizer import validate_name
from smartlock.recognition.schemas import BoundingBox, EnrolledImage, EnrollOutcome, Face, Prediction


@dataclass(frozen=True)
class FakeFace:
    label: str
    confidence: float
    others: tuple[tuple[str, float], ...]

    def to_face(self, include_predictions: bool = False) -> Face:
        everyone = [Prediction(label=self.label, confidence=self.confidence)]
        everyone += [Prediction(label=label, confidence=confidence) for label, confidence in self.others]
        return Face(
            top_prediction=everyone[0],
            bounding_box=BoundingBox(left=1.0, top=2.0, right=30.0, bottom=40.0),
            all_predictions=everyone if include_predictions else None,
        )


def refused(filename: str, reason: str) -> EnrollOutcome:
    return EnrollOutcome(filename=filename, enrolled=False, image_id=None, reason=reason)


class FakeRecognizer:
    """Decodes every image for real (so bad input fails as it would), then "recognizes" one face per
    image: the person who enrolled exactly these bytes at confidence 0.99, everyone else at 0.01.
    Images whose first decoded pixel is pure black contain no face; pure white ones contain two."""

    backend_name = "fake"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._people: dict[str, list[EnrolledImage]] = {}
        self._owner: dict[str, str] = {}  # image sha -> name
        self._digest_of: dict[str, str] = {}  # image id -> sha
        self._crops: dict[str, bytes] = {}  # image id -> the enrolled bytes (stand-in for a face crop)
        self.calls: list[str] = []

    def model_hashes(self) -> dict[str, str]:
        return {"fake.onnx": "0" * 64}

    def _faces_in(self, data: bytes) -> int:
        pixel = tuple(int(v) for v in decode_image(data)[0, 0])
        return {(0, 0, 0): 0, (255, 255, 255): 2}.get(pixel, 1)

    def recognize_bytes(self, data: bytes) -> list[FakeFace]:
        count = self._faces_in(data)
        self.calls.append("recognize")
        with self._lock:
            owner = self._owner.get(hashlib.sha256(data).hexdigest())
            names = sorted(self._people)
        if not names:
            return [FakeFace("unknown", 0.0, ())] * count
        best = owner or names[0]
        others = tuple((name, 0.01) for name in names if name != best)
        return [FakeFace(best, 0.99 if owner else 0.01, others)] * count

    def people(self) -> dict[str, list[EnrolledImage]]:
        with self._lock:
            return {name: list(images) for name, images in sorted(self._people.items())}

    def enroll(self, name: str, images: list[tuple[str, bytes]],
               multiple_faces: str = "refuse") -> list[EnrollOutcome]:
        validate_name(name)
        outcomes = []
        for filename, data in images:
            try:
                count = self._faces_in(data)
            except ValueError as err:
                outcomes.append(refused(filename, f"not an image: {err}"))
                continue
            if count == 0 or (count > 1 and multiple_faces == "refuse"):
                reason = "no face" if not count else "several faces"
                outcomes.append(refused(filename, reason))
                continue
            digest = hashlib.sha256(data).hexdigest()
            image_id = digest[:12]
            with self._lock:
                self._people.setdefault(name, []).append(EnrolledImage(image_id=image_id, source=filename))
                self._owner[digest] = name
                self._digest_of[image_id] = digest
                self._crops[image_id] = data
            outcomes.append(EnrollOutcome(filename=filename, enrolled=True, image_id=image_id, reason=None))
        return outcomes

    def remove_person(self, name: str) -> None:
        with self._lock:
            if name not in self._people:
                raise NotEnrolled(f"{name!r} is not enrolled")
            for image in self._people.pop(name):
                self._owner.pop(self._digest_of.pop(image.image_id), None)

    def remove_image(self, name: str, image_id: str) -> None:
        with self._lock:
            images = self._people.get(name)
            match = [image for image in images or [] if image.image_id == image_id]
            if not match:
                raise NotEnrolled(f"no image {image_id!r} of {name!r}")
            images.remove(match[0])
            self._owner.pop(self._digest_of.pop(image_id), None)
            if not images:
                del self._people[name]

    def image_crop(self, name: str, image_id: str) -> bytes | None:
        with self._lock:
            if not any(image.image_id == image_id for image in self._people.get(name, [])):
                raise NotEnrolled(f"{name!r} has no image {image_id!r}")
            return self._crops.get(image_id)

    def calibration(self) -> dict:
        import numpy as np

        return {"genuine_scores": np.array([0.7, 0.8]), "impostor_scores": [0.1, float("nan")],
                "false_accept_at": {"0.8": np.float32(0.001)}}
