"""The liveness verdict on a face track: every cue judges the track's history, then one rule combines them.

Rule: any cue that says "attack" makes the verdict "attack" (a frame around the face, a plane seen from
several angles, a face that never moves, a screen's grid or glare); else a *geometric* cue (``live_cues``,
by default depth from the 106 landmarks' motion) saying "live" makes it "live" once each confirming cue
(``confirm_cues``, by default depth from the texture's flow, run only then) says "live" too — one of them
saying "attack" makes it an attack; else "undecided" — the engine waits, and refuses the track when it
stays undecided past its timeout. Blink and a user's model add evidence that the event shows but never
unlock on their own (a replayed video blinks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from smartlock.engine.liveness import blink, dense, depth, flow, frame, motion, texture
from smartlock.engine.liveness.base import CueResult, Verdict
from smartlock.engine.liveness.model import ModelCue, ModelSettings, Session, load_session
from smartlock.engine.tracks import Observation, Track
from smartlock.errors import ConfigError

logger = logging.getLogger(__name__)

CUES = ("depth", "depth106", "flow", "frame", "motion", "texture", "blink")
# texture is off by default: on the real poster and tablet photographs it measured nothing, and on the
# bench it fired mostly for the source photos' magnified JPEG blocks (and on 2 of 48 genuine heads)
DEFAULT_CUES = ("depth", "depth106", "frame", "motion", "blink")


@dataclass(frozen=True)
class LivenessSettings:
    """Which cues run and their thresholds (defaults tuned on the bench's tune half)."""

    cues: tuple[str, ...] = DEFAULT_CUES
    live_cues: tuple[str, ...] = ("depth106",)
    # asked only when the others would say "live" (they cost more); the verdict is "live" only when each of
    # them says "live" too, and "attack" when one does (texture flow: a card the landmark model made look 3D)
    confirm_cues: tuple[str, ...] = ("flow",)
    model_path: Path | None = None
    depth: depth.DepthSettings = field(default_factory=depth.DepthSettings)
    depth106: dense.DenseSettings = field(default_factory=dense.DenseSettings)
    flow: flow.FlowSettings = field(default_factory=flow.FlowSettings)
    frame: frame.FrameSettings = field(default_factory=frame.FrameSettings)
    motion: motion.MotionSettings = field(default_factory=motion.MotionSettings)
    texture: texture.TextureSettings = field(default_factory=texture.TextureSettings)
    blink: blink.BlinkSettings = field(default_factory=blink.BlinkSettings)
    model: ModelSettings = field(default_factory=ModelSettings)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.cues + self.confirm_cues) - set(CUES))
        if unknown:
            raise ConfigError(f"unknown liveness cue(s) {', '.join(unknown)}; known: {', '.join(CUES)}")
        both = sorted(set(self.live_cues) & set(self.confirm_cues))
        if both:  # a cue run only after it already said "live" would never run: nothing would be live
            raise ConfigError(f"liveness cue(s) {', '.join(both)} cannot both decide and confirm \"live\"")


class LivenessJudge:
    """Judges a track (or its observations, oldest first). Pure: no I/O after construction (the optional
    model file is loaded here), safe to call on every frame."""

    def __init__(self, settings: LivenessSettings | None = None, *, model_session: Session | None = None,
                 landmarker: dense.DenseLandmarker | None = None) -> None:
        self.settings = settings or LivenessSettings()
        s = self.settings
        self._failures: set[tuple[str, str]] = set()
        self.live_cues = s.live_cues
        cues = s.cues
        if landmarker is None and "depth106" in cues + s.confirm_cues:
            try:
                landmarker = dense.DenseLandmarker()
            except ImportError as err:
                if "depth106" in s.confirm_cues:  # nothing would ever be confirmed live
                    raise ConfigError(f"liveness: depth106 must confirm, but {err}") from err
                logger.warning("liveness: %s; the 5-point depth cue decides instead", err)
                cues = tuple(name for name in cues if name != "depth106")
        if "depth106" not in cues:  # without the 106-point model, the 5-point depth cue decides "live"
            self.live_cues = tuple(dict.fromkeys(
                "depth" if name == "depth106" else name for name in s.live_cues))
        self.landmarker = landmarker
        self._cues: list[tuple[str, Callable[[Sequence[Observation]], CueResult]]] = []
        table: dict[str, Callable[[Sequence[Observation]], CueResult]] = {
            "depth": lambda obs: depth.judge(obs, s.depth),
            "depth106": lambda obs: dense.judge(obs, landmarker, s.depth106),  # type: ignore[arg-type]
            "frame": lambda obs: frame.judge(obs, s.frame),
            "motion": lambda obs: motion.judge(obs, s.motion),
            "texture": lambda obs: texture.judge(obs, s.texture),
            "blink": lambda obs: blink.judge(obs, s.blink),
        }
        if "flow" in cues or "flow" in s.confirm_cues:
            tracker = flow.FlowTracker(s.flow)
            table["flow"] = lambda obs: flow.judge(obs, tracker)
        self._cues = [(name, table[name]) for name in cues if name not in s.confirm_cues]
        self._confirm = [(name, table[name]) for name in s.confirm_cues]
        if model_session is None and s.model_path is not None:
            model_session = load_session(s.model_path)
        if model_session is not None:
            self._cues.append(("model", ModelCue(model_session, s.model).judge))

    @property
    def cue_names(self) -> list[str]:
        return [name for name, _ in self._cues]

    @property
    def confirm_names(self) -> list[str]:
        return [name for name, _ in self._confirm]

    def judge(self, track_or_observations: Track | Sequence[Observation]) -> Verdict:
        observations = (list(track_or_observations.history) if isinstance(track_or_observations, Track)
                        else list(track_or_observations))
        if not observations:
            return Verdict("undecided", [], [])
        failed: list[str] = []
        results = [self._guarded(name, cue, observations, failed) for name, cue in self._cues]
        verdict = combine(results, self.live_cues)
        if verdict.state == "live" and failed:  # a cue that could not look might have seen an attack
            return Verdict("undecided", results, [])
        if verdict.state != "live" or not self._confirm:
            return verdict
        checks = [self._guarded(name, cue, observations, failed) for name, cue in self._confirm]
        results += checks
        if any(check.decision == "attack" for check in checks):
            return Verdict("attack", results, [check.name for check in checks if check.decision == "attack"])
        if not all(check.decision == "live" for check in checks):  # a failed one abstained
            return Verdict("undecided", results, [])
        return Verdict("live", results, verdict.decided_by + [check.name for check in checks])

    def _guarded(self, name: str, cue: Callable[[Sequence[Observation]], CueResult],
                 observations: list[Observation], failed: list[str]) -> CueResult:
        """The cue's result; a cue that raised (a degenerate frame, a model error) is recorded in ``failed``
        and abstains, so the engine carries on and the verdict cannot be "live" on this call."""
        try:
            return cue(observations)
        except Exception as err:
            failed.append(name)
            kind = (name, type(err).__name__)
            if kind not in self._failures:  # once per cue and error: a bad frame stays 2 s in the window
                self._failures.add(kind)
                logger.warning("liveness cue %s failed (the track is not judged live while it does): %s: %s",
                               name, type(err).__name__, err)
            return CueResult(name, 0.0, "abstain", f"failed: {type(err).__name__}")


def combine(results: list[CueResult], live_cues: Sequence[str]) -> Verdict:
    attacks = [r.name for r in results if r.decision == "attack"]
    if attacks:
        return Verdict("attack", results, attacks)
    geometric = [r.name for r in results if r.decision == "live" and r.name in live_cues]
    if geometric:
        supporting = [r.name for r in results if r.decision == "live" and r.name not in live_cues]
        return Verdict("live", results, geometric + supporting)
    return Verdict("undecided", results, [])
