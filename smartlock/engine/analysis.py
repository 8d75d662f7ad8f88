"""One analysed frame as the engine passes it on (live view, collector): the frame and its boxes.

Boxes are in the frame's own pixels, as the camera saw it (never mirrored), so whoever draws them draws them
on this very frame and they sit on the faces at walking speed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smartlock.engine.frames import Frame
from smartlock.engine.tracks import Box, Track
from smartlock.recognition.schemas import Face

MAX_LIVE_FACES = 32  # the dashboard refuses an analysis with more (a crowd: the largest, nearest, are shown)


@dataclass(frozen=True)
class AnalysedFace:
    box: Box
    track: int
    label: str | None = None  # None: the gate found the face, recognition has not judged it yet
    confidence: float | None = None
    recognised_now: bool = False  # recognition ran on this very frame (else: the track's latest result)
    liveness: str | None = None  # the track's liveness verdict, when liveness is on

    def to_api(self) -> dict[str, Any]:
        left, top, right, bottom = self.box
        return {"box": {"left": left, "top": top, "right": right, "bottom": bottom}, "track": self.track,
                "label": self.label, "confidence": self.confidence, "recognised_now": self.recognised_now,
                "liveness": self.liveness}


@dataclass(frozen=True)
class Analysis:
    seq: int
    received: float  # time.monotonic() when the frame arrived
    time: float  # epoch seconds
    image: np.ndarray = field(repr=False)  # BGR analysis frame, unmirrored
    faces: list[AnalysedFace]
    recognised: list[Face]  # recognition's answer for this frame (empty unless ``analysed``)
    analysed: bool  # recognition ran on this frame
    threshold: float

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @classmethod
    def of(cls, frame: Frame, image: np.ndarray, faces: Sequence[Face], tracks: Sequence[Track],
           analysed: bool, threshold: float) -> Analysis:
        """``tracks`` are the recognised faces' tracks when ``analysed`` (same order as ``faces``), else the
        tracks of the gate's detections."""
        shown = []
        if analysed:
            for face, track in zip(faces, tracks, strict=True):
                shown.append(AnalysedFace(face.box, track.id, face.label, face.confidence, True,
                                          _verdict(track)))
        else:
            for track in tracks:
                latest = next((obs.recognition for obs in reversed(track.history)
                               if obs.recognition is not None), None)
                shown.append(AnalysedFace(track.last.box, track.id,
                                          latest.label if latest else None,
                                          latest.confidence if latest else None, False, _verdict(track)))
        return cls(seq=frame.seq, received=frame.received, time=time.time(), image=image, faces=shown,
                   recognised=list(faces), analysed=analysed, threshold=threshold)

    def summary(self) -> dict[str, Any]:
        """The JSON the live view gets beside the frame (the MAX_LIVE_FACES largest faces in a crowd)."""
        def area(face: AnalysedFace) -> float:
            return (face.box[2] - face.box[0]) * (face.box[3] - face.box[1])

        largest = sorted(self.faces, key=area, reverse=True)
        return {"seq": self.seq, "time": self.time, "width": self.width, "height": self.height,
                "analysed": self.analysed, "threshold": self.threshold,
                "faces": [face.to_api() for face in largest[:MAX_LIVE_FACES]]}


def _verdict(track: Track) -> str | None:
    state = getattr(track.verdict, "state", None)
    return state if isinstance(state, str) else None
