"""Face tracks: detections linked across frames by box overlap and identity, each with a bounded history.

The gate detects faces on every frame the camera delivers; ``Tracker.update`` links each detection to the
track whose last box it overlaps most (IoU, greedy, best pairs first) or starts a new track. Recognition
results are attached to the observation they were computed on (``Track.recognised``); a track that is
recognised as two different people, or whose embedding jumps to another face, is split, so the unlock rule
("K frames of the same track above the threshold") never mixes two people. A track not seen for ``max_gap``
seconds ends.

Each track keeps its last ``history`` observations (time, frame number, box, five landmarks, a face crop
with some context) for the liveness cues, which judge a track from its history alone.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

Box = tuple[float, float, float, float]  # left, top, right, bottom in analysis-frame pixels

DEFAULT_HISTORY = 48  # observations kept per track: 2 s at 24 fps
DEFAULT_MAX_GAP = 0.7  # seconds without a detection before a track ends
DEFAULT_MIN_IOU = 0.3
# the crop reaches this many box widths/heights beyond the box on each side: 1.0 lets the liveness frame cue
# see a card's or a screen's border (chosen on the bench's tune half: attacks accepted 1.9% -> 1.0%)
CROP_CONTEXT = 1.0
CROP_MAX_SIDE = 256  # crops larger than this are downscaled (memory: 48 x 256 x 256 x 3 = 9 MB a track)
SPLIT_SIMILARITY = 0.2  # embeddings of one track less alike than this are two people (cosine, ArcFace)
# a recognition below the threshold whose embedding is at least this alike (cosine) to the confident ones of
# the track's current run is the same face seen less well, not a break: on the liveness bench's walk-ups such
# frames measured 0.81-0.96 (5th-95th percentile) against those, while frames of two different people never
# reached 0.43 (max over 780 pairs of people; benchmarks/same_face.py); only with embeddings (in-process
# ArcFace), else always a break
SAME_FACE = 0.6
# a detector miss of the face for at most this long (seconds from its last detection to the next) is a break
# only if the next recognition is not the run's face (named so and SAME_FACE alike, with embeddings) or not
# MISS_SAME_FACE alike to the last recognition before the miss; the gate misses a walking face for a frame or
# two now and then (bench walk-ups: 0.08-0.12 s), and each such break made liveness start over
# (benchmarks/liveness.py, time to unlock through the engine's code); a healed miss drops the unrecognised
# frames around it (_drop_unrecognised_since)
MISS_HEAL = 0.2
# the same face across a short miss: frames of the tune half's walk-ups 0.25 s apart measured 0.77 / 0.85 /
# 0.90 / 0.95 (0/1/5/50th percentile, n=1292); two photos of one person (a card flipped or swapped to another
# picture of them, whose two views could look like depth) 0.62 / 0.77 / 0.83 (50/95/99th percentile, n=1767
# pairs), 2% at or above 0.8 (benchmarks/same_face.py)
MISS_SAME_FACE = 0.8


@dataclass(frozen=True)
class Detection:
    """One face the gate found: box, detector score and five landmarks (left eye, right eye, nose, left
    and right mouth corner — SCRFD's order), all in analysis-frame pixels as the camera saw it (tracks keep
    it so; only the copy handed to a mirroring recogniser is mirrored, engine.mirrored)."""

    box: Box
    score: float
    landmarks: np.ndarray | None = None  # (5, 2) float32

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass(frozen=True)
class Recognition:
    """What recognition said about one observation."""

    label: str
    confidence: float
    embedding: np.ndarray | None = None
    # below the threshold, but the embedding is the face the track's run recognised (SAME_FACE): no break
    same_face: bool = False


@dataclass(frozen=True)
class Observation:
    """A track's face in one frame."""

    t: float  # time.monotonic() when the frame arrived
    seq: int  # the frame's number from the reader
    detection: Detection
    frame_size: tuple[int, int]  # (width, height) of the analysis frame
    crop: np.ndarray | None = None  # BGR uint8: the box plus CROP_CONTEXT on each side, at most CROP_MAX_SIDE
    crop_origin: tuple[float, float, float] = (0.0, 0.0, 1.0)  # (x0, y0, scale): frame = crop / scale + x0/y0
    recognition: Recognition | None = None

    @property
    def box(self) -> Box:
        return self.detection.box

    @property
    def landmarks(self) -> np.ndarray | None:
        return self.detection.landmarks


@dataclass
class Track:
    """One face followed across frames."""

    id: int
    started: float
    history: deque[Observation]
    split_from: int | None = None  # the track this one was split off (another person under the same box)
    verdict: object | None = None  # the liveness judge's latest verdict, when liveness is on
    misses: int = 0  # tracker updates since the last one that saw this face
    # the last time the face in this box may not have been the one recognised (liveness judges only after
    # it): a recognition below the threshold, frames where the face was missed (see MISS_HEAL), an
    # observation split off to another track; the engine adds a face too small or blurred, or one
    # recognition did not find or name
    broken_at: float = float("-inf")
    # a short miss (MISS_HEAL) not yet known to be a break: the track's next recognition decides
    missed_at: float | None = None
    _labels: dict[str, int] = field(default_factory=dict)

    @property
    def last(self) -> Observation:
        return self.history[-1]

    def mark_break(self, t: float) -> None:
        """Someone other than the recognised face may have been in this box at ``t`` (see ``broken_at``)."""
        self.broken_at = max(self.broken_at, t)

    @property
    def last_seen(self) -> float:
        return self.history[-1].t

    @property
    def duration(self) -> float:
        return self.last_seen - self.started

    def recognised(self) -> Iterator[Observation]:
        """The observations recognition has judged, oldest first."""
        return (obs for obs in self.history if obs.recognition is not None)


def iou(a: Box, b: Box) -> float:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def cosine_to_mean(embeddings: list[np.ndarray], embedding: np.ndarray) -> float | None:
    """Cosine of ``embedding`` to the mean of ``embeddings``; None when there is nothing to compare to."""
    if not embeddings:
        return None
    mean = np.mean(np.stack(embeddings), axis=0)
    norm = float(np.linalg.norm(mean) * np.linalg.norm(embedding))
    return float(mean @ embedding) / norm if norm > 0 else None


def face_crop(image: np.ndarray, box: Box, context: float = CROP_CONTEXT,
              max_side: int = CROP_MAX_SIDE) -> tuple[np.ndarray, tuple[float, float, float]] | None:
    """The box plus ``context`` on each side, clipped to the image and downscaled to ``max_side``; with the
    (x0, y0, scale) that maps crop pixels back to the frame. None for an empty box."""
    height, width = image.shape[:2]
    pad_x, pad_y = (box[2] - box[0]) * context, (box[3] - box[1]) * context
    x0, y0 = max(0, int(box[0] - pad_x)), max(0, int(box[1] - pad_y))
    x1, y1 = min(width, int(np.ceil(box[2] + pad_x))), min(height, int(np.ceil(box[3] + pad_y)))
    if x1 <= x0 or y1 <= y0:
        return None
    crop = image[y0:y1, x0:x1]
    scale = min(1.0, max_side / max(crop.shape[:2]))
    if scale < 1.0:
        from smartlock.camera.imaging import load_cv2

        cv2 = load_cv2()
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop), (float(x0), float(y0), scale)


class Tracker:
    """Links detections into tracks. Not thread-safe: the engine's loop owns it."""

    def __init__(self, history: int = DEFAULT_HISTORY, max_gap: float = DEFAULT_MAX_GAP,
                 min_iou: float = DEFAULT_MIN_IOU, split_similarity: float = SPLIT_SIMILARITY,
                 keep_crops: bool = True, same_face: float = SAME_FACE, miss_heal: float = MISS_HEAL,
                 miss_same_face: float = MISS_SAME_FACE) -> None:
        self.history = history
        self.miss_heal = miss_heal
        self.miss_same_face = miss_same_face
        self.max_gap = max_gap
        self.min_iou = min_iou
        self.split_similarity = split_similarity
        self.same_face = same_face
        self.keep_crops = keep_crops
        self._ids = itertools.count(1)
        self._tracks: dict[int, Track] = {}
        self.ended: list[Track] = []  # tracks ended by the last update (the engine reports and forgets them)

    @property
    def active(self) -> list[Track]:
        return list(self._tracks.values())

    def get(self, track_id: int) -> Track | None:
        return self._tracks.get(track_id)

    def update(self, t: float, seq: int, detections: Sequence[Detection],
               image: np.ndarray | None = None, *, more: bool = False) -> list[Track]:
        """Add one frame's detections; returns the track of each detection, in the same order. A track
        ends when an update did not see it and it was last seen more than ``max_gap`` s ago (so frames
        analysed further apart than that, e.g. a slow recogniser, keep their tracks while the face stays).
        ``more``: further detections of a frame already updated (it does not count as a miss)."""
        if not more:
            self.ended = [track for track in self._tracks.values()
                          if track.misses > 0 and t - track.last_seen > self.max_gap]
            for track in self.ended:
                del self._tracks[track.id]
        pairs = sorted(
            ((iou(track.last.box, det.box), track.id, index)
             for track in self._tracks.values() if track.last.seq != seq
             for index, det in enumerate(detections)),
            reverse=True,
        )
        assigned: dict[int, Track] = {}
        taken: set[int] = set()
        for overlap, track_id, index in pairs:
            if overlap < self.min_iou:
                break
            if index in assigned or track_id in taken:
                continue
            assigned[index] = self._tracks[track_id]
            taken.add(track_id)
        frame_size = (image.shape[1], image.shape[0]) if image is not None else (0, 0)
        result = []
        for index, det in enumerate(detections):
            track = assigned[index] if index in assigned else self._new_track(t)
            if track.misses > 0:  # unseen in between (a hand over the face?): not known to be the same face
                if t - track.last_seen <= self.miss_heal:
                    track.missed_at = track.last_seen
                else:
                    track.mark_break(track.last_seen)
            track.history.append(self._observation(t, seq, det, frame_size, image))
            track.misses = 0
            result.append(track)
        if not more:
            seen = {track.id for track in result}
            for track in self._tracks.values():
                if track.id not in seen:
                    track.misses += 1
        return result

    def recognised(self, track: Track, recognition: Recognition, threshold: float) -> Track:
        """Attach a recognition to the track's newest observation. When it contradicts what the track was
        recognised as before (another confident person, or an embedding of another face), the newest
        observation moves to a new track, which is returned; else the same track. A short miss before it
        (``Track.missed_at``) becomes a break unless this recognition is the run's face (``_heals``)."""
        if track.missed_at is not None:
            missed, track.missed_at = track.missed_at, None
            before = _last_recognised(track, missed)
            if before is not None and self._heals(track, recognition, threshold, before):
                _drop_unrecognised_since(track, before)
            else:
                track.mark_break(missed)
        if self._contradicts(track, recognition, threshold):
            newest = track.history.pop()
            track.mark_break(newest.t)  # someone else was under its box
            new = self._new_track(newest.t, split_from=track.id)
            new.history.append(newest)
            if not track.history:
                del self._tracks[track.id]
            track = new
        if recognition.confidence > threshold:
            track._labels[recognition.label] = track._labels.get(recognition.label, 0) + 1
        elif self._same_face(track, recognition, threshold):
            recognition = replace(recognition, same_face=True)
        else:
            track.mark_break(track.history[-1].t)
        track.history[-1] = replace(track.history[-1], recognition=recognition)
        return track

    def reset(self) -> None:
        self._tracks.clear()
        self.ended = []

    def _contradicts(self, track: Track, recognition: Recognition, threshold: float) -> bool:
        if recognition.confidence > threshold and any(
                label != recognition.label for label, count in track._labels.items() if count > 0):
            return True
        if recognition.embedding is None:
            return False
        earlier = [obs.recognition.embedding for obs in list(track.history)[:-1]
                   if obs.recognition is not None and obs.recognition.embedding is not None]
        alike = cosine_to_mean(earlier, recognition.embedding)
        return alike is not None and alike < self.split_similarity

    def _same_face(self, track: Track, recognition: Recognition, threshold: float) -> bool:
        """A recognition that names the person of the track's current run (after its latest break) and whose
        embedding is SAME_FACE alike to the mean of that run's confident ones (earlier observations)."""
        if recognition.embedding is None:
            return False
        confident = [obs.recognition.embedding for obs in list(track.history)[:-1]
                     if obs.t > track.broken_at and obs.recognition is not None
                     and obs.recognition.confidence > threshold and obs.recognition.embedding is not None
                     and obs.recognition.label == recognition.label]
        alike = cosine_to_mean(confident, recognition.embedding)
        return alike is not None and alike >= self.same_face

    def _heals(self, track: Track, recognition: Recognition, threshold: float, before: Observation) -> bool:
        """The recognition after a short miss is the run's face (``_same_face``) and the face seen just
        before the miss (MISS_SAME_FACE alike to ``before``, the last recognition before it): not another
        picture of the same person swapped in while the gate saw nothing."""
        earlier = before.recognition.embedding if before.recognition is not None else None
        if recognition.embedding is None or earlier is None:
            return False
        alike = cosine_to_mean([earlier], recognition.embedding)
        return (alike is not None and alike >= self.miss_same_face
                and self._same_face(track, recognition, threshold))

    def _new_track(self, t: float, split_from: int | None = None) -> Track:
        track = Track(id=next(self._ids), started=t, history=deque(maxlen=self.history),
                      split_from=split_from)
        self._tracks[track.id] = track
        return track

    def _observation(self, t: float, seq: int, det: Detection, frame_size: tuple[int, int],
                     image: np.ndarray | None) -> Observation:
        crop, origin = None, (0.0, 0.0, 1.0)
        if image is not None and self.keep_crops:
            cropped = face_crop(image, det.box)
            if cropped is not None:
                crop, origin = cropped
        return Observation(t=t, seq=seq, detection=det, frame_size=frame_size, crop=crop,
                           crop_origin=origin)


def _drop_unrecognised_since(track: Track, before: Observation) -> None:
    """Forget the frames between ``before``, the last recognition before a healed miss, and the newest
    observation (the one whose recognition healed it): nobody recognised them, and the gate lost the face
    among them, so whoever was in the box then is not known (a live stranger shown there, between a photo's
    recognitions, must not count as its depth)."""
    newest = track.history[-1]
    kept = [obs for obs in track.history if obs is newest or obs.recognition is not None or obs.t <= before.t]
    track.history = deque(kept, maxlen=track.history.maxlen)


def _last_recognised(track: Track, until: float) -> Observation | None:
    """The track's last observation at or before ``until`` that recognition judged."""
    return next((obs for obs in reversed(track.history) if obs.t <= until and obs.recognition is not None),
                None)
