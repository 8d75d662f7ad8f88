"""Liveness in the unlock rule: a track must be judged live before its face opens the door, and repeated
attacks pause face unlock.

``LivenessCheck.check(track)`` is asked when the policy has a decision for a track: "live" opens the door;
"attack" (a cue caught a photo, a card or a screen) and "timeout" (still undecided ``timeout`` seconds
after the first decision) refuse the track for good; "wait" holds the decision while more frames come.

``SpoofLockout`` counts refused attack tracks; ``limit`` of them within ``window`` seconds pause face unlock
for ``pause`` seconds. Its state lives in a 0600 JSON file (``<log-path>/spoof-lockout.json``), so the pause
survives a restart of the engine, and an admin lifts it from the dashboard by rewriting that file
(``lift_lockout``); the engine notices the change at its next decision.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from smartlock.engine.settings import (
    DEFAULT_LIVENESS_TIMEOUT,
    DEFAULT_SPOOF_LOCKOUT,
    DEFAULT_SPOOF_LOCKOUT_MINUTES,
    DEFAULT_THRESHOLD,
)
from smartlock.engine.tracks import Observation, Track
from smartlock.fileio import atomic_write

logger = logging.getLogger(__name__)

LOCKOUT_FILE = "spoof-lockout.json"
ATTACK_WINDOW = 600.0  # seconds in which --spoof-lockout attacks pause face unlock

Outcome = Literal["live", "attack", "timeout", "wait", "refused"]  # "undecided": the track left waiting


class Judges(Protocol):
    def judge(self, track_or_observations: Any) -> Any: ...


@dataclass
class CheckResult:
    outcome: Outcome
    verdict: Any = None  # the judge's Verdict (state, cues, decided_by), when it judged
    waited: float = 0.0  # "live": seconds since the track's decision was first checked (0: live by then)

    @property
    def details(self) -> dict[str, Any]:
        """The verdict for events: which cues fired, in words."""
        verdict = self.verdict
        if verdict is None or not hasattr(verdict, "as_dict"):
            return {}
        data = verdict.as_dict()
        fired = [cue for cue in data.get("cues", []) if cue.get("decision") != "abstain"]
        return {"liveness": data.get("state"), "decided_by": data.get("decided_by", []), "cues": fired}


@dataclass
class Pending:
    """A track recognised as someone (a decision) but not yet judged live."""

    since: float  # time of its first decision
    label: str
    confidence: float
    verdict: Any = None


class LivenessCheck:
    """Judges tracks on demand and remembers the ones it refused or is waiting on (until the track ends)."""

    def __init__(self, judge: Judges, timeout: float = DEFAULT_LIVENESS_TIMEOUT,
                 threshold: float = DEFAULT_THRESHOLD) -> None:
        """``threshold``: the policy's (the engine sets it); it bounds the frames judged (see ``subject``)."""
        self.judge = judge
        self.timeout = timeout
        self.threshold = threshold
        self._pending: dict[int, Pending] = {}
        self._refused: set[int] = set()
        # a track's first decisive verdict (live or attack), kept with the start of the run it judged
        self._decided: dict[int, tuple[Any, float]] = {}
        self._first_check: dict[int, float] = {}  # when each track's decision was first checked

    def observe(self, track: Track) -> None:
        """Judge a track on a frame of its own (the engine asks for every frame of a recognised track): the
        first decisive verdict is kept, so a viewpoint change that showed depth once still counts when the
        decision comes later — as long as the run of recognitions it judged is not broken."""
        if track.id in self._refused or track.missed_at is not None or self._kept(track) is not None:
            return  # (after a short miss, nothing is judged until the next recognition says whose face it is)
        subject = self.subject(track)
        verdict = self.judge.judge(subject)
        track.verdict = verdict
        if getattr(verdict, "state", "undecided") in ("live", "attack") and subject:
            self._decided[track.id] = (verdict, subject[0].t)

    def _kept(self, track: Track) -> Any:
        """The kept verdict, unless it was "live" on a run of recognitions broken since (whoever is in the
        box now was not what was judged)."""
        kept = self._decided.get(track.id)
        if kept is None:
            return None
        if track.missed_at is not None:  # a short miss the next recognition resolves: not live meanwhile
            return None
        verdict, run_start = kept
        if getattr(verdict, "state", None) == "live" and self.broken_at(track) >= run_start:
            del self._decided[track.id]
            return None
        return verdict

    def broken_at(self, track: Track) -> float:
        """The latest break of the track's runs: the tracker's and the engine's record (``Track.broken_at``),
        a short miss not yet resolved (``Track.missed_at``), or a recognition below the threshold still in
        the history (unless the tracker found its embedding to be the run's face: ``Recognition.same_face``).
        """
        below = [obs.t for obs in track.history
                 if obs.recognition is not None and obs.recognition.confidence <= self.threshold
                 and not obs.recognition.same_face]
        missed = [] if track.missed_at is None else [track.missed_at]
        return max([track.broken_at, *missed, *below])

    def check(self, track: Track, now: float, label: str = "", confidence: float = 0.0) -> CheckResult:
        if track.id in self._refused:
            return CheckResult("refused", track.verdict)
        first = self._first_check.setdefault(track.id, now)
        verdict = self._kept(track)
        if verdict is None:
            verdict = self.judge.judge(self.subject(track))
        track.verdict = verdict
        state = getattr(verdict, "state", "undecided")
        if state == "live":  # asked again after a door failure: still the wait since the first check
            self._pending.pop(track.id, None)
            return CheckResult("live", verdict, now - first)
        if state == "attack":
            self._pending.pop(track.id, None)
            self._refused.add(track.id)
            return CheckResult("attack", verdict)
        pending = self._pending.setdefault(track.id, Pending(now, label, confidence))
        pending.verdict = verdict
        if now - pending.since > self.timeout:
            self._pending.pop(track.id, None)
            self._refused.add(track.id)
            return CheckResult("timeout", verdict)
        return CheckResult("wait", verdict)

    def subject(self, track: Track) -> list[Observation]:
        """The observations the judge may read: the track's latest run of recognitions, from its first one
        above the threshold after the track's latest break (empty before any) to its last one above the
        threshold or found to be the run's face (``Recognition.same_face``, in-process only). Without
        embeddings (the engine over HTTP) a track follows whatever face sits in its box: a live stranger who
        raises a photo of an enrolled person keeps the track, as does one who lowers it again, or blurs or
        hides their face between recognitions. Any break (see ``Track.broken_at``) starts a new run, and
        frames after the run's last recognition are not yet known to show the person, so the stranger's
        frames cannot pass for depth next to the photo's."""
        history = list(track.history)
        broken = self.broken_at(track)
        confident = [index for index, obs in enumerate(history)
                     if obs.t > broken and obs.recognition is not None
                     and obs.recognition.confidence > self.threshold]
        if not confident:
            return []
        last = max(index for index, obs in enumerate(history)
                   if index >= confident[0] and obs.recognition is not None
                   and (obs.recognition.confidence > self.threshold or obs.recognition.same_face))
        return history[confident[0]:last + 1]

    def forget(self, ended: list[Track]) -> list[tuple[Track, Pending]]:
        """Drop the state of tracks that ended (bounded memory); the ones that left while still waiting to
        be judged live (the door stayed shut: the engine reports them)."""
        left = []
        for track in ended:
            pending = self._pending.pop(track.id, None)
            if pending is not None:
                left.append((track, pending))
            self._refused.discard(track.id)
            self._decided.pop(track.id, None)
            self._first_check.pop(track.id, None)
        return left


@dataclass
class LockoutState:
    attacks: list[float] = field(default_factory=list)  # epoch seconds of refused attack tracks
    until: float = 0.0  # face unlock paused until this epoch time
    lifted_by: str | None = None


class SpoofLockout:
    """Pauses face unlock after ``limit`` refused attacks within ``window`` s; persisted in ``path``."""

    def __init__(self, path: Path | None, limit: int = DEFAULT_SPOOF_LOCKOUT, window: float = ATTACK_WINDOW,
                 pause: float = DEFAULT_SPOOF_LOCKOUT_MINUTES * 60,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.limit = limit
        self.window = window
        self.pause = pause
        self.clock = clock
        self._mtime: float | None = None
        self.state = LockoutState()
        self._load()

    def record_attack(self) -> float | None:
        """Count one refused attack; the end of the pause (epoch) when this one starts it, else None."""
        self._load()
        now = self.clock()
        self.state.attacks = [t for t in self.state.attacks if now - t <= self.window] + [now]
        started = None
        if self.limit > 0 and len(self.state.attacks) >= self.limit and self.state.until <= now:
            self.state.until = now + self.pause
            self.state.attacks = []
            self.state.lifted_by = None
            started = self.state.until
            logger.warning("Face unlock paused until %s: %d presentation attacks within %.0f minutes",
                           time.strftime("%H:%M:%S", time.localtime(started)), self.limit, self.window / 60)
        self._save()
        return started

    def paused_until(self) -> float | None:
        """The end of the current pause (epoch), or None when face unlock is not paused."""
        self._load()
        return self.state.until if self.state.until > self.clock() else None

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return
        except OSError as err:
            logger.warning("Cannot read %s (%s): the pause is kept as it was", self.path, err)
            return
        if mtime == self._mtime:
            return
        self._mtime = mtime
        self.state = read_state(self.path)

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            write_state(self.path, self.state)
            self._mtime = self.path.stat().st_mtime
        except OSError as err:  # a full disk: the pause holds in memory until the engine restarts
            logger.error("Cannot save the spoof lockout to %s: %s", self.path, err)


def read_state(path: Path) -> LockoutState:
    """The lockout in ``path``; an unreadable file counts as a pause of one window from now (never as
    "no lockout": an attacker must not lift it by corrupting the file)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockoutState(attacks=[float(t) for t in data.get("attacks", [])][-1000:],
                            until=float(data.get("until", 0.0)), lifted_by=data.get("lifted_by"))
    except FileNotFoundError:
        return LockoutState()
    except (OSError, ValueError, TypeError, AttributeError) as err:
        logger.error("Unreadable spoof lockout %s (%s): face unlock stays paused for %.0f minutes", path, err,
                     ATTACK_WINDOW / 60)
        return LockoutState(until=time.time() + ATTACK_WINDOW)


def write_state(path: Path, state: LockoutState) -> None:
    payload = json.dumps({"attacks": state.attacks, "until": state.until, "lifted_by": state.lifted_by})
    atomic_write(path, payload.encode("utf-8"), mode=0o600)


def lift_lockout(log_path: Path, by: str) -> bool:
    """End a pause now (the dashboard's button); True when there was one. The engine sees it at its next
    decision."""
    path = log_path / LOCKOUT_FILE
    state = read_state(path)
    active = state.until > time.time()
    write_state(path, LockoutState(attacks=[], until=0.0, lifted_by=by))
    return active
