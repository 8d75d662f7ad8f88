"""Stand-ins for the dashboard's collaborators in unit tests: a recognition client, a door client and a
camera source (for the real camera app)."""

from __future__ import annotations

import hashlib
import io
import threading
import time

from PIL import Image

from smartlock.camera.source_base import Pacer, RawFrame, Source
from smartlock.errors import ServiceError, ServiceRefused
from smartlock.recognition.schemas import (
    EnrolledImage,
    Enrollment,
    EnrollOutcome,
    Face,
    Person,
    parse_faces,
)


def jpeg(width: int = 320, height: int = 240, color: tuple[int, int, int] = (90, 120, 150)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="JPEG")
    return out.getvalue()


class FakeRecognition:
    """Duck-types RecognitionClient, answering with the API's models. Every photo enrolls, except files
    named *noface* (refused 'no face') and *crowd* (refused 'several faces (2)'; their face crops are not).
    ``seen`` (the API's JSON of faces) is what recognize_jpeg reports for every frame."""

    def __init__(self) -> None:
        self.people_images: dict[str, list[dict]] = {}
        self.enrolled_files: list[tuple[str, str, bytes]] = []
        self.seen: list[dict] = []
        self.down = False
        self.recognitions = 0
        self.crops: dict[str, bytes] = {}  # image id -> the face crop the recognizer kept
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.down:
            raise ServiceError("POST http://127.0.0.1:1/face-recognition: ConnectError: refused")

    def recognize_jpeg(self, jpeg: bytes, include_predictions: bool = False) -> list[Face]:
        self._check()
        with self._lock:
            self.recognitions += 1
        return parse_faces(self.seen)

    def people(self) -> list[Person]:
        self._check()
        return [
            Person(name=name, image_count=len(images), images=[EnrolledImage(**image) for image in images])
            for name, images in sorted(self.people_images.items())
        ]

    def enroll(self, name: str, files: list[tuple[str, bytes]]) -> Enrollment:
        self._check()
        if "/" in name:
            raise ServiceRefused(f"POST http://x/people/{name}/images: 400: bad name {name!r}", 400)
        outcomes = []
        for filename, data in files:
            if "noface" in filename:
                outcomes.append({"filename": filename, "enrolled": False, "image_id": None,
                                 "reason": "no face"})
                continue
            if "crowd" in filename and ".face-" not in filename:  # a crop shows one face
                outcomes.append({"filename": filename, "enrolled": False, "image_id": None,
                                 "reason": "several faces (2)"})
                continue
            image_id = hashlib.sha256(data).hexdigest()[:16]
            self.people_images.setdefault(name, []).append({"image_id": image_id, "source": filename})
            self.enrolled_files.append((name, filename, data))
            outcomes.append({"filename": filename, "enrolled": True, "image_id": image_id, "reason": None})
        enrolled = sum(o["enrolled"] for o in outcomes)
        return Enrollment(name=name, enrolled=enrolled, refused=len(outcomes) - enrolled,
                          outcomes=[EnrollOutcome(**outcome) for outcome in outcomes])

    def remove_person(self, name: str) -> None:
        self._check()
        if name not in self.people_images:
            raise ServiceRefused(f"DELETE http://x/people/{name}: 404: {name!r} is not enrolled", 404)
        del self.people_images[name]

    def remove_image(self, name: str, image_id: str) -> None:
        self._check()
        images = self.people_images.get(name, [])
        kept = [image for image in images if image["image_id"] != image_id]
        if len(kept) == len(images):
            raise ServiceRefused(f"DELETE http://x/people/{name}/images/{image_id}: 404: no such image", 404)
        self.people_images[name] = kept

    def image_crop(self, name: str, image_id: str) -> bytes:
        self._check()
        if image_id not in self.crops:
            raise ServiceRefused(f"GET http://x/people/{name}/images/{image_id}: 404: no such image", 404)
        return self.crops[image_id]

    def calibration(self) -> dict:
        self._check()
        return {
            "backend": "fake", "people": 2, "images": 6, "method": "fitted", "slope": 40.0,
            "intercept": -10.0,
            "prior_odds": 1.0, "genuine_scores": [0.5, 0.6, 0.7], "impostor_scores": [0.0, 0.1, 0.2, 0.3],
            "false_accept_at": {"0.5": 0.25, "0.8": 0.0, "0.9": 0.0}, "genuine_accept_at": {"0.8": 1.0},
            "loo_accuracy": 1.0, "stranger_trials": 6,
        }


class FakeDoor:
    """Duck-types DoorClient: records lock calls; ``unlock_for(seconds)`` simulates an unlock."""

    def __init__(self) -> None:
        self.locks = 0
        self.remaining = 0.0
        self.down = False

    def lock(self) -> None:
        if self.down:
            from smartlock.errors import DoorError

            raise DoorError("the door at http://127.0.0.1:1 did not answer")
        self.locks += 1
        self.remaining = 0.0

    def status(self) -> dict:
        return {"locked": self.remaining <= 0, "seconds_left": self.remaining, "last_unlock": None}

    def events(self, limit: int = 50, before: int | None = None) -> dict:
        return {"events": [{"id": 1, "action": "lock", "outcome": "accepted"}][:limit], "next_before": None}


class StillSource(Source):
    """A camera source showing one JPEG at ``fps`` (passed through by the camera's encoder as is)."""

    kind = "still"

    def __init__(self, frame: bytes, fps: float = 24.0) -> None:
        super().__init__("still picture", fps)
        self.frame = frame
        self._pacer = Pacer(fps)
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        self._open = True

    def read(self) -> RawFrame:
        self._pacer.wait(self)
        return RawFrame(time.time(), jpeg=self.frame)

    def close(self) -> None:
        self._open = False
