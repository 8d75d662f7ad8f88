"""The calibration report (GET /calibration) and what follows from it: the score a confidence needs and
the stranger false-accept rate at a threshold, so the dashboard asks instead of redoing the maths."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from smartlock.recognition.gallery import Calibration, Gallery

CONFIDENCE_LEVELS = (0.5, 0.8, 0.9)


def calibration_report(gallery: Gallery) -> dict[str, Any]:
    """The fitted line, the score a lone match needs for each confidence level with the current gallery
    size, genuine and impostor scores, leave-one-out accuracy and the estimated stranger false-accept
    rates (the JSON of GET /calibration)."""
    cal = gallery.calibration
    people = len(gallery.people())
    stats = cal.stats
    return {
        "backend": gallery.backend,
        "people": people,
        "images": len(gallery.records),
        "method": cal.method,
        "slope": cal.slope,
        "intercept": cal.intercept,
        "prior_odds": cal.prior_odds,
        "parameters": {"slope": cal.slope, "center": -cal.intercept / cal.slope,
                       "prior_odds": cal.prior_odds},
        "threshold_scores": {str(c): round(cal.threshold_score(c, people), 4) for c in CONFIDENCE_LEVELS}
        if people
        else {},
        "genuine_scores": list(cal.genuine_scores),
        "impostor_scores": list(cal.impostor_scores),
        "loo_accuracy": stats.get("loo_accuracy"),
        "genuine_accept_at": stats.get("genuine_accept_at", {}),
        "false_accept_at": stats.get("false_accept_at", {}),
        "n_genuine": stats.get("n_genuine", 0),
        "n_impostor": stats.get("n_impostor", 0),
        "stranger_trials": stats.get("stranger_trials", 0),
    }


def _line(report: Mapping[str, Any]) -> tuple[Calibration, int] | None:
    """The calibration line and the number of people of a report; None when it has no usable line."""
    try:
        people = int(report.get("people") or 0)
        line = Calibration(slope=float(report["slope"]), intercept=float(report["intercept"]),
                           prior_odds=float(report.get("prior_odds", 1.0)))
    except (KeyError, TypeError, ValueError):
        return None
    if people < 1 or line.slope == 0 or not (math.isfinite(line.slope) and math.isfinite(line.intercept)):
        return None
    return line, people


def threshold_score(report: Mapping[str, Any], confidence: float) -> float | None:
    """The score a lone match needs to reach ``confidence`` in the gallery a calibration report (GET
    /calibration) describes; None when nobody is enrolled or the report has no line."""
    found = _line(report)
    if found is None or not 0 < confidence < 1:
        return None
    line, people = found
    return line.threshold_score(confidence, people)


def estimate_false_accept(report: Mapping[str, Any], threshold: float) -> dict[str, Any] | None:
    """The stranger false-accept rate at ``threshold``: ``{"threshold", "score", "far", "method",
    "trials"}``. The recognizer's leave-one-out figure when it measured that very threshold, else an
    estimate from its impostor scores (the per-comparison rate p at the score a lone match needs, over
    N people: 1 - (1 - p)^N); None when nobody is enrolled."""
    score = threshold_score(report, threshold)
    if score is None:
        return None
    people = int(report.get("people") or 0)
    measured = report.get("false_accept_at") or {}
    for key, value in measured.items():
        try:
            if abs(float(key) - threshold) < 1e-9 and value is not None:
                trials = report.get("stranger_trials") or report.get("images")
                return {"threshold": threshold, "score": score, "far": float(value),
                        "method": "leave-one-out", "trials": trials}
        except (TypeError, ValueError):
            continue
    impostors = [s for s in report.get("impostor_scores") or [] if isinstance(s, int | float)]
    if not impostors:
        return {"threshold": threshold, "score": score, "far": None, "method": "no impostor scores yet",
                "trials": 0}
    p = sum(1 for s in impostors if s >= score) / len(impostors)
    return {"threshold": threshold, "score": score, "far": 1 - (1 - p) ** people, "method": "estimate",
            "trials": len(impostors)}
