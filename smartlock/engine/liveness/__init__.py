"""Passive presentation-attack detection per face track: cues (one module each) and the judge's verdict."""

from smartlock.engine.liveness.base import CueResult, Verdict
from smartlock.engine.liveness.judge import CUES, LivenessJudge, LivenessSettings, combine

__all__ = ["CUES", "CueResult", "LivenessJudge", "LivenessSettings", "Verdict", "combine"]
