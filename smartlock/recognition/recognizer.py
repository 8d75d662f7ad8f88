"""A backend plus an enrolled gallery: what the API, the engine and `classify` call to recognize faces."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from smartlock.errors import BadImageError, GalleryError, ModelError, ModelMismatch, NotEnrolled
from smartlock.recognition import store
from smartlock.recognition.backends.base import DEFAULT_BACKEND, Backend, DetectedFace, as_box, get_backend
from smartlock.recognition.calibration import calibration_report
from smartlock.recognition.gallery import DEFAULT_PRIOR_ODDS, Gallery, ImageRecord
from smartlock.recognition.images import decode_image, encode_jpeg_rgb
from smartlock.recognition.schemas import BoundingBox, EnrolledImage, EnrollOutcome, Face, Prediction

logger = logging.getLogger(__name__)

# per backend name, the keyword arguments it is built with (e.g. {"arcface": {"detection_size": 320}})
BackendOptions = Mapping[str, Mapping[str, Any]]

MAX_NAME_LENGTH = 100
CROP_SIZE = 160


@dataclass(frozen=True)
class Match:
    """One enrolled person's match with a face: the API's Prediction plus the raw score behind it."""

    label: str
    confidence: float  # calibrated probability, in [0, 1], that the face is this person
    score: float  # the raw similarity it was calibrated from

    def to_prediction(self) -> Prediction:
        return Prediction(label=self.label, confidence=round(self.confidence, 4))


@dataclass(frozen=True)
class RecognizedFace:
    box: tuple[float, float, float, float]  # left, top, right, bottom, in the input image's pixels
    detection_score: float
    predictions: tuple[Match, ...]  # every enrolled person, best first; empty when nobody is enrolled
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)  # for in-process tracking

    @property
    def top(self) -> Match | None:
        return self.predictions[0] if self.predictions else None

    def to_face(self, include_predictions: bool = False, include_embedding: bool = False) -> Face:
        """This face in the Face Recognition API's contract (confidences to 4 places, box to 0.1 px); with
        ``include_embedding`` (in-process callers only: the API never sends it) the face's embedding."""
        top = self.top
        left, top_y, right, bottom = (round(float(v), 1) for v in self.box)
        return Face(
            top_prediction=top.to_prediction() if top else Prediction(label="unknown", confidence=0.0),
            bounding_box=BoundingBox(left=left, top=top_y, right=right, bottom=bottom),
            all_predictions=[p.to_prediction() for p in self.predictions] if include_predictions else None,
            embedding=[float(v) for v in self.embedding]
            if include_embedding and self.embedding is not None else None,
        )

    def to_api(self, include_predictions: bool = False) -> dict[str, Any]:
        """The contract's JSON (for callers not yet reading ``to_face``)."""
        return self.to_face(include_predictions).model_dump()


def _refused(filename: str, reason: str) -> EnrollOutcome:
    return EnrollOutcome(filename=filename, enrolled=False, image_id=None, reason=reason)


@dataclass(frozen=True)
class _Embedded:
    """One photo after embedding: its outcome, and for a usable photo its id, embedding and crop."""

    outcome: EnrollOutcome
    image_id: str = ""
    embedding: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    crop: bytes | None = None


def _admit(
    gallery: Gallery, embedded: Mapping[str, list[_Embedded]]
) -> tuple[dict[str, list[EnrollOutcome]], list[tuple[str, _Embedded]]]:
    """Each photo's final outcome, and the (name, photo) pairs to add: a photo already in the gallery
    (or earlier in this batch) is refused, naming whose it is."""
    owners = {record.image_id: record.person for record in gallery.records}
    outcomes: dict[str, list[EnrollOutcome]] = {}
    added: list[tuple[str, _Embedded]] = []
    for name, items in embedded.items():
        outcomes[name] = []
        for item in items:
            outcome = item.outcome
            if outcome.enrolled and item.image_id in owners:
                owner = owners[item.image_id]
                reason = "already enrolled" if owner == name else f"already enrolled as {owner!r}"
                outcome = _refused(outcome.filename, f"{reason} (image {item.image_id})")
            elif outcome.enrolled:
                owners[item.image_id] = name
                added.append((name, item))
            outcomes[name].append(outcome)
    return outcomes, added


def validate_name(name: str) -> str:
    """The person's name if usable as a label and a folder name; GalleryError otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise GalleryError("a person's name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise GalleryError(f"a person's name must be at most {MAX_NAME_LENGTH} characters")
    if name != name.strip():
        raise GalleryError("a person's name must not start or end with spaces")
    if "/" in name or "\\" in name or name in (".", "..") or ".." in name:
        raise GalleryError(f"a person's name must not contain '/', '\\' or '..': {name!r}")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise GalleryError(f"a person's name must not contain control characters: {name!r}")
    if name == "unknown":
        raise GalleryError("the name 'unknown' is reserved for faces when nobody is enrolled")
    return name


class Recognizer:
    """Thread-safe: recognize() may run in many threads while enroll()/remove_*() change the gallery;
    readers always see a whole gallery (the old or the new one), and every change is persisted to
    ``model_dir`` atomically before the call returns, with the calibration refreshed."""

    def __init__(self, backend: Backend, gallery: Gallery, model_dir: Path | None = None) -> None:
        _check_compatible(backend, gallery, model_dir)
        self._backend = backend
        self._gallery = gallery
        self._model_dir = Path(model_dir) if model_dir is not None else None
        self._write_lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: Path, backend: Backend | None = None,
             backend_options: BackendOptions | None = None) -> Recognizer:
        """Open a trained model directory; builds the backend recorded in it unless one is given, with
        ``backend_options[its name]`` (e.g. ``{"arcface": {"detection_size": 320}}``).
        Raises ModelCorrupt / ModelMismatch (smartlock.errors) with a clear message."""
        gallery = store.load_gallery(Path(model_dir))
        if backend is None:
            backend = get_backend(gallery.backend, **(backend_options or {}).get(gallery.backend, {}))
        return cls(backend, gallery, model_dir)

    @classmethod
    def create(cls, model_dir: Path, backend: Backend, prior_odds: float = DEFAULT_PRIOR_ODDS) -> Recognizer:
        """A new, empty gallery saved at ``model_dir`` (for enrolling from scratch through the API).
        ``prior_odds``: P(a face is someone enrolled) / P(a stranger), see gallery.py."""
        gallery = Gallery.empty(backend.name, backend.model_hashes(), backend.embedding_size, prior_odds)
        store.save_gallery(Path(model_dir), gallery)
        return cls(backend, gallery, model_dir)

    @classmethod
    def open_or_create(cls, model_dir: Path, backend: Backend | None = None,
                       backend_options: BackendOptions | None = None) -> Recognizer:
        """Load ``model_dir`` if it holds a gallery, else create an empty one there (with ``backend``, or
        the default backend built with its ``backend_options``)."""
        if store.has_gallery(model_dir):
            return cls.load(model_dir, backend, backend_options)
        if backend is None:
            backend = get_backend(DEFAULT_BACKEND, **(backend_options or {}).get(DEFAULT_BACKEND, {}))
        return cls.create(model_dir, backend)

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def backend_name(self) -> str:
        return self._backend.name

    @property
    def model_dir(self) -> Path | None:
        return self._model_dir

    @property
    def gallery(self) -> Gallery:
        """The current immutable gallery snapshot."""
        return self._gallery

    def model_hashes(self) -> dict[str, str]:
        return self._backend.model_hashes()

    # -- recognition -------------------------------------------------------------------------------

    def recognize(self, image: np.ndarray) -> list[RecognizedFace]:
        """Faces in an RGB uint8 image, largest first, each matched against every enrolled person."""
        faces = self._backend.detect_and_embed(image)
        return self.match_faces(faces)

    def match_faces(self, faces: Sequence[DetectedFace]) -> list[RecognizedFace]:
        """Match already-embedded faces against the current gallery."""
        gallery = self._gallery
        if not faces:
            return []
        probes = np.stack([face.embedding for face in faces])
        names, scores, confidences = gallery.match(probes, self._backend.similarity)
        results = []
        for index, face in enumerate(faces):
            order = np.argsort(-confidences[index], kind="stable") if names else np.zeros(0, np.intp)
            predictions = tuple(
                Match(names[k], float(confidences[index, k]), float(scores[index, k])) for k in order
            )
            results.append(RecognizedFace(box=face.box, detection_score=face.score, predictions=predictions,
                                          embedding=face.embedding))
        return results

    @property
    def embeds_found_faces(self) -> bool:
        """True when ``recognize_found`` works: the backend embeds aligned crops (ArcFace; dlib does not)."""
        return callable(getattr(self._backend, "embed_aligned", None))

    def recognize_found(self, image: np.ndarray,
                        found: Sequence[tuple[tuple[float, float, float, float], float, np.ndarray]]
                        ) -> list[RecognizedFace]:
        """Faces a detector already found in an RGB uint8 image — (box, score, five landmarks in SCRFD's
        order) each, in its pixels — aligned, embedded and matched without detecting them again."""
        from smartlock.recognition.backends.geometry import align_face

        embed = getattr(self._backend, "embed_aligned", None)
        if not callable(embed):
            raise ModelError(f"the {self.backend_name} backend cannot embed faces found by another detector")
        if not found:
            return []
        crops = np.stack([align_face(image, np.asarray(landmarks, np.float64)) for _, _, landmarks in found])
        vectors = embed(crops)
        return self.match_faces([
            DetectedFace(box=as_box(box), landmarks=np.asarray(landmarks, np.float32), score=float(score),
                         embedding=vector)
            for (box, score, landmarks), vector in zip(found, vectors, strict=True)])

    def recognize_bytes(self, data: bytes) -> list[RecognizedFace]:
        """Decode (EXIF, gray/RGBA/16-bit, size limits) and recognize; BadImageError if unusable."""
        return self.recognize(decode_image(data))

    # -- the gallery -------------------------------------------------------------------------------

    def people(self) -> dict[str, list[EnrolledImage]]:
        """Enrolled people, sorted by name, with their images."""
        result: dict[str, list[EnrolledImage]] = {}
        for record in self._gallery.records:
            image = EnrolledImage(image_id=record.image_id, source=record.source)
            result.setdefault(record.person, []).append(image)
        return dict(sorted(result.items()))

    def enroll(
        self,
        name: str,
        images: list[tuple[str, bytes]],
        multiple_faces: Literal["refuse", "largest"] = "refuse",
    ) -> list[EnrollOutcome]:
        """Add photos (filename, bytes) of ``name``; one outcome per photo, in order. GalleryError for a
        bad name (empty, '/', '..', control characters, over 100 characters)."""
        return self.enroll_many({name: images}, multiple_faces)[name]

    def enroll_many(
        self,
        people: Mapping[str, Sequence[tuple[str, bytes | Path]]],
        multiple_faces: Literal["refuse", "largest"] = "refuse",
        progress: Callable[[str, str], None] | None = None,
    ) -> dict[str, list[EnrollOutcome]]:
        """Enroll several people at once (one recalibration, one save); ``progress(name, filename)`` is
        called after each photo. Photos are bytes, or paths read one at a time (so a large folder is
        never all in memory). Only the new photos are embedded."""
        if multiple_faces not in ("refuse", "largest"):
            raise GalleryError(f"multiple_faces must be 'refuse' or 'largest', not {multiple_faces!r}")
        for name in people:
            validate_name(name)
        embedded: dict[str, list[_Embedded]] = {}
        for name, photos in people.items():
            embedded[name] = []
            for filename, data in photos:
                embedded[name].append(self._embed_photo(filename, data, multiple_faces))
                if progress is not None:
                    progress(name, filename)
        with self._write_lock:
            outcomes, added = _admit(self._gallery, embedded)
            if added:
                records = [ImageRecord(item.image_id, name, item.outcome.filename) for name, item in added]
                new = self._gallery.with_images(records, np.stack([item.embedding for _, item in added]))
                crops = [(item.image_id, item.crop) for _, item in added]
                self._commit(new.recalibrated(self._backend.similarity), crops=crops)
        return outcomes

    def _embed_photo(self, filename: str, data: bytes | Path, multiple_faces: str) -> _Embedded:
        if isinstance(data, Path):
            try:
                data = data.read_bytes()
            except OSError as err:
                return _Embedded(_refused(filename, f"cannot read: {err.strerror or err}"))
        try:
            image = decode_image(data)
        except BadImageError as err:
            return _Embedded(_refused(filename, str(err)))
        faces = self._backend.detect_and_embed(image)
        if not faces:
            return _Embedded(_refused(filename, "no face"))
        reason = None
        if len(faces) > 1:
            if multiple_faces == "refuse":
                return _Embedded(_refused(filename, f"several faces ({len(faces)})"))
            reason = f"several faces ({len(faces)}): used the largest"
        face = max(faces, key=lambda f: f.area)
        image_id = hashlib.sha256(data).hexdigest()[:16]
        outcome = EnrollOutcome(filename=filename, enrolled=True, image_id=image_id, reason=reason)
        return _Embedded(outcome, image_id, face.embedding, _face_crop(image, face.box))

    def remove_person(self, name: str) -> None:
        """GalleryError for a name that could never be enrolled ('/', '..', ...); NotEnrolled if unknown."""
        validate_name(name)
        with self._write_lock:
            gallery = self._gallery
            removed = [r.image_id for r in gallery.records if r.person == name]
            if not removed:
                raise NotEnrolled(f"{name!r} is not enrolled")
            new = gallery.without(lambda r: r.person != name)
            self._commit(new.recalibrated(self._backend.similarity), removed=removed)

    def remove_image(self, name: str, image_id: str) -> None:
        """GalleryError for a bad name; NotEnrolled if the person or image is unknown."""
        validate_name(name)
        with self._write_lock:
            gallery = self._gallery
            if not any(r.person == name for r in gallery.records):
                raise NotEnrolled(f"{name!r} is not enrolled")
            if not any(r.person == name and r.image_id == image_id for r in gallery.records):
                raise NotEnrolled(f"{name!r} has no image {image_id!r}")
            new = gallery.without(lambda r: not (r.person == name and r.image_id == image_id))
            self._commit(new.recalibrated(self._backend.similarity), removed=[image_id])

    def image_crop(self, name: str, image_id: str) -> bytes | None:
        """The JPEG face crop kept when this image was enrolled (None if none); GalleryError for a bad
        name; NotEnrolled if unknown."""
        validate_name(name)
        if not any(r.person == name and r.image_id == image_id for r in self._gallery.records):
            raise NotEnrolled(f"{name!r} has no image {image_id!r}")
        if self._model_dir is None:
            return None
        try:
            return store.crop_path(self._model_dir, image_id).read_bytes()
        except OSError:
            return None

    def _commit(self, gallery: Gallery, crops: Sequence[tuple[str, bytes | None]] = (),
                removed: Sequence[str] = ()) -> None:
        """Persist, then publish (the caller holds the write lock). Crops are written before the gallery
        that names them and deleted after the gallery that no longer does."""
        if self._model_dir is not None:
            for image_id, crop in crops:
                if crop is not None:
                    try:
                        store.atomic_write(store.crop_path(self._model_dir, image_id), crop)
                    except OSError as err:
                        raise ModelError(f"cannot save a face crop in {self._model_dir}: "
                                         f"{err.strerror or err}") from err
            store.save_gallery(self._model_dir, gallery)  # ModelError if it cannot be written
            for image_id in removed:
                with contextlib.suppress(OSError):
                    store.crop_path(self._model_dir, image_id).unlink()
        self._gallery = gallery

    # -- calibration -------------------------------------------------------------------------------

    def calibration(self) -> dict[str, Any]:
        """For the dashboard and /calibration: see ``calibration.calibration_report``."""
        return calibration_report(self._gallery)


def _check_compatible(backend: Backend, gallery: Gallery, model_dir: Path | None) -> None:
    where = f" in {model_dir}" if model_dir is not None else ""
    if gallery.backend != backend.name:
        raise ModelMismatch(
            f"the gallery{where} was made with the {gallery.backend!r} backend, not {backend.name!r}: "
            f"use --backend {gallery.backend} or retrain"
        )
    if gallery.model_hashes != backend.model_hashes():
        raise ModelMismatch(
            f"the gallery{where} was made with other {backend.name} model files "
            f"({_short(gallery.model_hashes)}) than the loaded ones ({_short(backend.model_hashes())}); "
            "retrain"
        )
    if gallery.embedding_size != backend.embedding_size:
        raise ModelMismatch(f"the gallery{where} holds {gallery.embedding_size}-d embeddings; "
                            f"the {backend.name} backend makes {backend.embedding_size}-d ones")


def _short(hashes: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {digest[:12]}" for name, digest in sorted(hashes.items()))


def _face_crop(image: np.ndarray, box: tuple[float, float, float, float]) -> bytes:
    """A square JPEG around the face with some margin, at most CROP_SIZE pixels a side."""
    import cv2

    left, top, right, bottom = box
    side = max(right - left, bottom - top) * 1.3
    cx, cy = (left + right) / 2, (top + bottom) / 2
    height, width = image.shape[:2]
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    x1, y1 = min(width, int(cx + side / 2)), min(height, int(cy + side / 2))
    crop = image[y0:y1, x0:x1]
    if crop.size == 0:
        crop = image
    scale = CROP_SIZE / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    return encode_jpeg_rgb(np.ascontiguousarray(crop), quality=85)
