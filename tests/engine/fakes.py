"""Fakes for the engine's collaborators: scripted frames and recognizer, a door, a sink (the manual clock is
tests.support's)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from smartlock.engine.frames import Frame
from smartlock.errors import DoorError
from smartlock.recognition.schemas import Face
from tests.support import ManualClock


class ClockStop:
    """Stands in for threading.Event in ``Engine.step``: waiting advances the manual clock."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.waited = 0.0

    def wait(self, seconds: float) -> bool:
        self.clock.advance(seconds)
        self.waited += seconds
        return False

    def is_set(self) -> bool:
        return False


class EndlessFrames:
    """A camera that always has a newer frame, stamped with the manual clock."""

    def __init__(self, clock: ManualClock, shape: tuple[int, int, int] = (120, 160, 3)) -> None:
        self.clock = clock
        self.seq = 0
        self.shape = shape

    def wait_newer(self, seq: int, timeout: float) -> Frame | None:
        self.seq = max(self.seq, seq) + 1
        image = np.full(self.shape, self.seq % 256, dtype=np.uint8)
        return Frame(image=image, seq=self.seq, received=self.clock(), captured=None)


BOX = (10.0, 20.0, 50.0, 70.0)


def api_face(label: str, confidence: float, box: tuple[float, float, float, float] = BOX) -> dict:
    """One face of the recognition API's JSON answer."""
    return {"top_prediction": {"label": label, "confidence": confidence},
            "bounding_box": dict(zip(("left", "top", "right", "bottom"), box, strict=True)),
            "all_predictions": None}


def face(label: str, confidence: float, box: tuple[float, float, float, float] = BOX) -> Face:
    """The same face as the shared contract's model."""
    return Face.model_validate(api_face(label, confidence, box))


class ScriptedRecognizer:
    """Answers from a script (a list of answers, or exceptions to raise), repeating the last one."""

    def __init__(self, *answers: object, cost: float = 0.0, clock: ManualClock | None = None) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.cost = cost
        self.clock = clock

    def __call__(self, image: np.ndarray) -> object:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if self.clock is not None:
            self.clock.advance(self.cost)
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer()
        return answer


class FakeDoor:
    def __init__(self, fail: int = 0) -> None:
        self.fail = fail  # number of calls that fail before it works
        self.calls: list[tuple[str, float]] = []
        self.opened: list[tuple[str, float]] = []

    def __call__(self, decision) -> None:
        self.calls.append((decision.label, decision.confidence))
        if len(self.calls) <= self.fail:
            raise DoorError("door API unreachable after 3 tries")
        self.opened.append((decision.label, decision.confidence))


class ListSink:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def emit(self, event: dict) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass

    def kinds(self) -> list[str]:
        return [event["event"] for event in self.events]


def always(value: bool) -> Callable[[np.ndarray], bool]:
    return lambda image: value
