"""The settings of `smartlock camera`: one model, its flags made from it, read by the command and by `up`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from smartlock.config import PartSettings, TlsSettings

DEFAULT_FPS = 24.0
DEFAULT_QUALITY = 80
DEFAULT_PORT = 80


class CameraSettings(TlsSettings):
    """Which source to serve, how to encode it, where to listen, and the token that guards the frames."""

    source: str | None = Field(
        default=None,
        description="picamera, a device index (0) or /dev/videoN, a video file (looped at its own frame "
        "rate), a folder of images (slideshow at --fps), or an http(s):// or rtsp:// URL to relay. "
        "Default: picamera where picamera2 imports, else device 0",
        json_schema_extra={"metavar": "SRC"},
    )
    width: int | None = Field(
        default=None, gt=0,
        description="frame width (default 1280 for cameras; files, folders and URLs keep their own size "
        "unless given; one of --width/--height alone keeps the aspect ratio)",
    )
    height: int | None = Field(
        default=None, gt=0, description="frame height (default 720 for cameras; as --width)"
    )
    fps: float = Field(
        default=DEFAULT_FPS, gt=0,
        description="frame rate asked of a camera, slideshow and snapshot-URL rate "
        f"(default {DEFAULT_FPS:g}); video files play at their own rate",
    )
    quality: int = Field(
        default=DEFAULT_QUALITY, ge=1, le=100, description=f"JPEG quality 1..100 (default {DEFAULT_QUALITY})"
    )
    rotation: Literal[0, 90, 180, 270] = Field(default=0, description="clockwise rotation (default 0)")
    host: str = Field(default="0.0.0.0", description="address to listen on (default 0.0.0.0)")
    port: int = Field(
        default=DEFAULT_PORT, ge=0, le=65535, description=f"port to listen on (default {DEFAULT_PORT})"
    )
    token_file: Path | None = Field(
        default=None,
        description="file (mode 0600) holding the token that stream and snapshot require (Authorization: "
        "Bearer, X-Token or ?token=) and that signs every frame; created with a new random token when it "
        "does not exist. Default: camera/token in the data directory",
        json_schema_extra={"metavar": "FILE"},
    )
    no_auth: bool = Field(
        default=False,
        description="serve stream and snapshot to anyone, frames unsigned (not recommended: an engine "
        "holding a token then drops every frame)",
    )
    source_token_file: Path | None = Field(
        default=None,
        description="when --source is another smartlock camera: file (mode 0600) holding its token, proven "
        "to it without sending it; its frames are then verified and any unsigned, wrongly signed, stale or "
        "replayed frame is dropped before it is re-signed with this camera's own token",
        json_schema_extra={"metavar": "FILE"},
    )

    @model_validator(mode="after")
    def _auth_or_not(self) -> CameraSettings:
        if self.no_auth and self.token_file is not None:
            raise ValueError("--no-auth and --token-file contradict each other")
        return self

    @classmethod
    def add_options(cls, parser: Any) -> None:
        """Every field as a flag; a value outside a field's limits is an argparse error (exit 2)."""
        for name, field in cls.model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            overrides: dict[str, Any] = {"metavar": extra["metavar"]} if "metavar" in extra else {}
            if field.metadata:  # limits: check them while parsing, as the flags always did
                overrides["type"] = checked(cls, name)
            cls.add_option(parser, name, **overrides)


def checked(model: type[PartSettings], name: str) -> Callable[[str], Any]:
    """An argparse ``type`` converting a flag's text as field ``name`` of ``model`` does, limits included."""

    def convert(text: str) -> Any:
        try:
            return getattr(model.model_validate({name: text}), name)
        except ValidationError as err:
            raise argparse.ArgumentTypeError(f"{err.errors()[0]['msg']}, not {text}") from None

    convert.__name__ = name  # argparse names the type in some messages
    return convert
