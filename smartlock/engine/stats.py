"""The engine loop's pacing settings (from the CLI's rates) and its counters (the DEBUG "Frames:" line)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from smartlock.engine.policy import Decision
from smartlock.engine.settings import DEFAULT_BLOCK_TIME, DEFAULT_FPS, DEFAULT_MAX_FPS, EngineSettings


@dataclass(frozen=True)
class LoopSettings:
    """How the loop runs: the CLI's rates and block time (from EngineSettings) plus internal pacing."""

    fps: float = DEFAULT_FPS  # sampling rate while nobody is in view (the seed's --fps)
    max_fps: float = DEFAULT_MAX_FPS  # cap on the analysis rate while a face is in view
    block_time: float = DEFAULT_BLOCK_TIME  # frames ignored for this long after an unlock
    mirror: bool = True  # flip frames horizontally, as the seed did
    burst_hold: float = 1.5  # keep analysing fast this long after the last sign of a face
    door_retry: float = 1.0  # after a failed unlock, wait this long before trying again
    event_interval: float = 1.0  # at most one recognised / refused-unknown event per person per interval
    max_frame_age: float = 2.0  # a frame this old (the camera froze) is not evidence of who is there now

    def __post_init__(self) -> None:
        from smartlock.errors import ConfigError

        if self.fps <= 0 or self.max_fps <= 0:
            raise ConfigError("fps must be positive")
        if self.block_time < 0:
            raise ConfigError("block-time must not be negative")

    @classmethod
    def of(cls, settings: EngineSettings) -> LoopSettings:
        """The loop settings of `smartlock engine`'s settings (a face keeps the burst going for a window)."""
        return cls(fps=settings.fps, max_fps=max(settings.max_fps, settings.fps),
                   block_time=settings.block_time, mirror=settings.mirror,
                   burst_hold=max(settings.window, 1.0))


@dataclass
class EngineStats:
    frames_seen: int = 0
    frames_without_face: int = 0
    frames_gated: int = 0  # a usable face in view, but recognition was busy (at --max-fps): tracked only
    faces_unusable: int = 0  # faces the gate found too small or blurred to recognise
    stale_frames: int = 0
    frames_analysed: int = 0
    recognition_errors: int = 0
    door_errors: int = 0
    unlocks: int = 0
    unlocks_switched_off: int = 0  # decisions not acted on: the "face unlock" switch was off
    refused_spoof: int = 0  # tracks refused by liveness (an attack, or undecided past the timeout)
    refused_lockout: int = 0  # decisions refused while face unlock was paused after attacks
    liveness_waits: int = 0  # decisions held while liveness was still undecided
    frames_not_saved: int = 0  # unlock frames lost (full disk, ...): the unlocks still happened
    unlocked: deque[Decision] = field(default_factory=lambda: deque(maxlen=100))  # the latest (for tests)

    def summary(self) -> str:
        """One line a test (or a person) can wait on: "seen 12, without face 8, ..., unlocks 1"."""
        return (f"seen {self.frames_seen}, without face {self.frames_without_face}, "
                f"stale {self.stale_frames}, analysed {self.frames_analysed}, "
                f"recognition errors {self.recognition_errors}, door errors {self.door_errors}, "
                f"unlocks {self.unlocks}")
