"""The one /health answer every part gives: a status, the part's name and version, and part-specific facts."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from smartlock import __version__


class Health(BaseModel):
    """``status`` is "ok" when the part does its job, "degraded" when it runs but something needs a look.

    Parts add their own public facts as extra fields (the camera's fps, the recognizer's backend, ...);
    nothing secret and nothing about who came in belongs here: /health needs no credentials.
    """

    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "degraded"] = "ok"
    part: str = Field(description="Which smartlock part answers: door, camera, recognition, dashboard.")
    version: str = __version__
    problems: list[str] = Field(default_factory=list, description="What is degraded, for a human.")

    @classmethod
    def of(cls, part: str, problems: list[str] | None = None, **facts: Any) -> Self:
        """``status`` follows from ``problems``: any problem makes the part degraded."""
        problems = [p for p in (problems or []) if p]
        return cls(part=part, status="degraded" if problems else "ok", problems=problems, **facts)
