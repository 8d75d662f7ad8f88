"""The shared /health model: degraded exactly when a problem is named; part facts kept as fields."""

from __future__ import annotations

from smartlock.service import Health


def test_status_follows_problems() -> None:
    assert Health.of("door").status == "ok"
    degraded = Health.of("door", problems=["audit cannot be written"], relay="simulated")
    assert degraded.status == "degraded"
    assert degraded.model_dump()["relay"] == "simulated"
    assert Health.of("door", problems=["", None]).status == "ok"  # type: ignore[list-item]
