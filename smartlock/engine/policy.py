"""When to unlock: one face track recognised as one person above the threshold in at least K analysed
frames within a time window.

Pure (no I/O, no clock of its own), so the rule is tested exactly. K = 1 is the seed's rule: any single
frame with a face above the threshold opens the door. A stranger who resembles someone enrolled may clear
the threshold on one lucky frame; asking for K frames in a short window cuts that, at the cost of the
K - 1 extra frames the engine analyses in a burst once a face is in view. Evidence is counted per face
track (``tracks``, from the engine's tracker), so K frames must show the same face: two people who each
resemble someone enrolled once do not add up. Without track ids, evidence is counted per person.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from smartlock.engine.settings import DEFAULT_MIN_FRAMES, DEFAULT_THRESHOLD, DEFAULT_WINDOW
from smartlock.errors import ConfigError


class ScoredFace(Protocol):
    """What the rule reads of a face: a recognition ``schemas.Face`` (or anything with the same two)."""

    @property
    def label(self) -> str: ...

    @property
    def confidence(self) -> float: ...


@dataclass(frozen=True)
class Decision:
    """The policy's verdict: open the door for ``label``."""

    label: str
    confidence: float  # in the frame that completed the evidence
    confidences: tuple[float, ...]  # one per frame counted, oldest first
    first_seen: float  # time of the oldest frame counted
    decided_at: float  # time of the frame that completed the evidence
    track: int | None = None  # the face track the frames came from

    @property
    def frames(self) -> int:
        return len(self.confidences)


class UnlockPolicy:
    """Counts, per person, the analysed frames above ``threshold`` in the last ``window`` seconds.

    ``observe`` must be called with non-decreasing times. Strictly above the threshold, like the seed.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, min_frames: int = DEFAULT_MIN_FRAMES,
                 window: float = DEFAULT_WINDOW) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must lie in [0, 1], got {threshold}")
        if min_frames < 1:
            raise ConfigError(f"min-frames must be at least 1, got {min_frames}")
        if window < 0 or (min_frames > 1 and window <= 0):
            raise ConfigError(f"window must be positive when min-frames > 1, got {window}")
        self.threshold = threshold
        self.min_frames = min_frames
        self.window = window
        self._evidence: dict[tuple[int | None, str], deque[tuple[float, float]]] = {}

    def above_threshold(self, faces: Iterable[ScoredFace]) -> dict[str, float]:
        """Best confidence per person among the faces that clear the threshold."""
        best: dict[str, float] = {}
        for face in faces:
            if face.confidence > self.threshold and face.confidence > best.get(face.label, -1.0):
                best[face.label] = face.confidence
        return best

    def observe(self, t: float, faces: Sequence[ScoredFace],
                tracks: Sequence[int | None] | None = None) -> Decision | None:
        """Add one analysed frame taken at time ``t`` (``tracks[i]`` is the track of ``faces[i]``); a
        Decision when a track now has enough evidence for one person."""
        ids: Sequence[int | None] = tracks if tracks is not None else [None] * len(faces)
        best: dict[tuple[int | None, str], float] = {}
        for face, track in zip(faces, ids, strict=True):
            key = (track, face.label)
            if face.confidence > self.threshold and face.confidence > best.get(key, -1.0):
                best[key] = face.confidence
        for key, confidence in best.items():
            self._evidence.setdefault(key, deque()).append((t, confidence))
        self._expire(t)
        ready = [(evidence[-1][1], key) for key, evidence in self._evidence.items()
                 if len(evidence) >= self.min_frames and evidence[-1][0] == t]
        if not ready:
            return None
        _, (track, label) = max(ready, key=lambda item: item[0])
        counted = list(self._evidence[(track, label)])[-self.min_frames:]
        return Decision(
            label=label,
            confidence=counted[-1][1],
            confidences=tuple(confidence for _, confidence in counted),
            first_seen=counted[0][0],
            decided_at=t,
            track=track,
        )

    def evidence(self, label: str, track: int | None = None) -> int:
        """Frames currently counted for ``label`` (on ``track``, or its best track; for logs and tests)."""
        if track is not None:
            return len(self._evidence.get((track, label), ()))
        return max((len(evidence) for (_, name), evidence in self._evidence.items() if name == label),
                   default=0)

    def reset(self) -> None:
        """Forget all evidence (after an unlock: the next one needs fresh frames)."""
        self._evidence.clear()

    def _expire(self, now: float) -> None:
        for key in list(self._evidence):
            evidence = self._evidence[key]
            while evidence and now - evidence[0][0] > self.window:
                evidence.popleft()
            if not evidence:
                del self._evidence[key]
