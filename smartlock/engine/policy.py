"""When to unlock: one person above the threshold in at least K analysed frames within a time window.

Pure (no I/O, no clock of its own), so the rule is tested exactly. K = 1 is the seed's rule: any single
frame with a face above the threshold opens the door. A stranger who resembles someone enrolled may clear
the threshold on one lucky frame; asking for K frames in a short window cuts that, at the cost of the
K - 1 extra frames the engine analyses in a burst once a face is in view.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from smartlock.errors import ConfigError, ServiceError


@dataclass(frozen=True)
class Face:
    """One face of the Face Recognition API's answer (its ``top_prediction`` and ``bounding_box``)."""

    label: str
    confidence: float
    box: tuple[float, float, float, float] | None  # left, top, right, bottom

    def to_api(self) -> dict:
        box = None
        if self.box is not None:
            box = dict(zip(("left", "top", "right", "bottom"), self.box, strict=True))
        return {"top_prediction": {"label": self.label, "confidence": self.confidence}, "bounding_box": box}


def parse_faces(payload: object) -> list[Face]:
    """Validate the API's ``faces`` list; ServiceError for anything malformed (a bad answer never unlocks)."""
    if not isinstance(payload, list):
        raise ServiceError(f"face recognition answer: expected a list of faces, got {type(payload).__name__}")
    faces = []
    for item in payload:
        try:
            top = item["top_prediction"]
            label, confidence = top["label"], top["confidence"]
            if not isinstance(label, str) or isinstance(confidence, bool):
                raise TypeError("label must be a string")
            confidence = float(confidence)
            if not 0.0 <= confidence <= 1.0:  # also refuses NaN
                raise ValueError(f"confidence {confidence} outside [0, 1]")
            raw_box = item.get("bounding_box")
            box = None
            if raw_box is not None:
                box = tuple(float(raw_box[key]) for key in ("left", "top", "right", "bottom"))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ServiceError(f"face recognition answer: malformed face {item!r}: {err}") from err
        faces.append(Face(label=label, confidence=confidence, box=box))  # type: ignore[arg-type]
    return faces


@dataclass(frozen=True)
class Decision:
    """The policy's verdict: open the door for ``label``."""

    label: str
    confidence: float  # in the frame that completed the evidence
    confidences: tuple[float, ...]  # one per frame counted, oldest first
    first_seen: float  # time of the oldest frame counted
    decided_at: float  # time of the frame that completed the evidence

    @property
    def frames(self) -> int:
        return len(self.confidences)


class UnlockPolicy:
    """Counts, per person, the analysed frames above ``threshold`` in the last ``window`` seconds.

    ``observe`` must be called with non-decreasing times. Strictly above the threshold, like the seed.
    """

    def __init__(self, threshold: float = 0.8, min_frames: int = 2, window: float = 1.5) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must lie in [0, 1], got {threshold}")
        if min_frames < 1:
            raise ConfigError(f"min-frames must be at least 1, got {min_frames}")
        if window < 0 or (min_frames > 1 and window <= 0):
            raise ConfigError(f"window must be positive when min-frames > 1, got {window}")
        self.threshold = threshold
        self.min_frames = min_frames
        self.window = window
        self._evidence: dict[str, deque[tuple[float, float]]] = {}

    def above_threshold(self, faces: Iterable[Face]) -> dict[str, float]:
        """Best confidence per person among the faces that clear the threshold."""
        best: dict[str, float] = {}
        for face in faces:
            if face.confidence > self.threshold and face.confidence > best.get(face.label, -1.0):
                best[face.label] = face.confidence
        return best

    def observe(self, t: float, faces: Sequence[Face]) -> Decision | None:
        """Add one analysed frame taken at time ``t``; a Decision when someone now has enough evidence."""
        for label, confidence in self.above_threshold(faces).items():
            self._evidence.setdefault(label, deque()).append((t, confidence))
        self._expire(t)
        ready = [(evidence[-1][1], label) for label, evidence in self._evidence.items()
                 if len(evidence) >= self.min_frames and evidence[-1][0] == t]
        if not ready:
            return None
        _, label = max(ready)
        counted = list(self._evidence[label])[-self.min_frames:]
        return Decision(
            label=label,
            confidence=counted[-1][1],
            confidences=tuple(confidence for _, confidence in counted),
            first_seen=counted[0][0],
            decided_at=t,
        )

    def evidence(self, label: str) -> int:
        """Frames currently counted for ``label`` (for logs and tests)."""
        return len(self._evidence.get(label, ()))

    def reset(self) -> None:
        """Forget all evidence (after an unlock: the next one needs fresh frames)."""
        self._evidence.clear()

    def _expire(self, now: float) -> None:
        for label in list(self._evidence):
            evidence = self._evidence[label]
            while evidence and now - evidence[0][0] > self.window:
                evidence.popleft()
            if not evidence:
                del self._evidence[label]
