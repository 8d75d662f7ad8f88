"""The settings of `smartlock engine` and `smartlock collect`: one model each, the CLI is made from them.

Every default and limit of the two commands lives here once (the seed's spellings and defaults: threshold
0.8, fps 2, block time 6, log path "log"); `up` builds the same models for its children. Secrets are not
settings: only the files that hold them (``--face-recognition-api-key-file``, ``--camera-token-file``,
``--door-secret-file``). Retention is: a size-capped, rotating log.txt and unlock / collected frames kept
for --keep-days and at most --keep-unlocks / --keep-frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator

from smartlock.config import PartSettings
from smartlock.integrations.settings import MqttSettings
from smartlock.logs import DEFAULT_LOG_BACKUPS, DEFAULT_LOG_MAX_MB

DEFAULT_THRESHOLD = 0.8
DEFAULT_FPS = 2.0
DEFAULT_MAX_FPS = 10.0
DEFAULT_MIN_FRAMES = 2
DEFAULT_WINDOW = 1.5
DEFAULT_BLOCK_TIME = 6.0
DEFAULT_LOG_PATH = Path("log")
DEFAULT_KEEP_DAYS = 30.0
DEFAULT_KEEP_UNLOCKS = 1000
DEFAULT_KEEP_FRAMES = 1000
DEFAULT_LIVENESS_TIMEOUT = 3.0
DEFAULT_SPOOF_LOCKOUT = 3
DEFAULT_SPOOF_LOCKOUT_MINUTES = 10.0
DEFAULT_GATE_SIZE = 320  # smartlock.engine.gate imports it from here (and onnxruntime only when used)
API_KEY_ENV = "SMARTLOCK_API_KEY"


class StreamClientSettings(PartSettings):
    """What the engine and the collector share: the camera, the recogniser, the pre-filter, the logs."""

    camera_url: str = Field(description="URL of video stream.")
    camera_token_file: Path | None = Field(
        default=None,
        description="File (mode 600) holding the camera's token. It is proven to the camera, never sent; "
        "every frame must then carry the camera's signature: unsigned, wrongly signed, stale (> 2 s) or "
        "replayed frames are dropped and counted.",
    )
    face_recognition_api_url: str | None = Field(
        default=None, description="URL of face recognition endpoint (e.g. http://HOST:5000/face-recognition)."
    )
    model: Path | None = Field(
        default=None,
        description="Recognise in this process with a trained model directory instead of calling the API.",
    )
    face_recognition_api_key_file: Path | None = Field(
        default=None,
        description="File holding the recognition API key (mode 0600); overrides --face-recognition-api-key "
        f"and ${API_KEY_ENV}.",
    )
    haar_file_path: str | None = Field(
        default=None,
        description="Path to Haar Cascade (simple and fast face detector) xml file. Given, it replaces the "
        "default pre-filter (the recognizer's SCRFD detector run on every frame) with the seed's cascade, "
        "sampled at --fps.",
    )
    gate_size: int = Field(
        default=DEFAULT_GATE_SIZE, ge=64, le=1280, multiple_of=32,
        description="Input size (long side, a multiple of 32) of the SCRFD pre-filter that looks at every "
        f"frame. Default {DEFAULT_GATE_SIZE}: finds faces from about 40 px in a 640x360 frame.",
        json_schema_extra={"metavar": "PX"},
    )
    log_path: Path = Field(
        default=DEFAULT_LOG_PATH, description='Directory path where logs will be saved. Default is "log".'
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Logging level; DEBUG adds a line of frame counts per frame processed."
    )
    mirror: bool = Field(
        default=True,
        description="Do not flip frames horizontally (the seed always did).",
        json_schema_extra={"flag": "--no-mirror", "negate": True},
    )
    log_max_mb: float = Field(
        default=DEFAULT_LOG_MAX_MB, gt=0.0, le=10_000.0,
        description=f"Rotate <log-path>/log.txt at this many MB. Default {DEFAULT_LOG_MAX_MB:g}.",
    )
    log_backups: int = Field(
        default=DEFAULT_LOG_BACKUPS, ge=0, le=100,
        description=f"Rotated logs kept (log.txt.1 ...). Default {DEFAULT_LOG_BACKUPS}.",
    )

    @model_validator(mode="after")
    def _one_recognition_source(self) -> Self:
        if (self.face_recognition_api_url is None) == (self.model is None):
            raise ValueError("give exactly one of --face-recognition-api-url and --model")
        return self


class EngineSettings(StreamClientSettings, MqttSettings):
    """`smartlock engine`: when to unlock, how fast to sample, where to send what happened."""

    door_api_url: str = Field(description="URL of smart lock door-api which unlocks door.")
    log_path: Path = Field(
        default=DEFAULT_LOG_PATH,
        description='Directory path where logs and unlock frames will be saved. Default is "log".',
    )
    threshold: float = Field(
        default=DEFAULT_THRESHOLD, ge=0.0, le=1.0,
        description="Number from 0 to 1 which represents minimal confidence which need to be met to unlock "
        "the door when face is recognised from a video stream. Default value is 0.8 (We need to be at least "
        "80% sure that we recognised some person to unlock the door for him).",
    )
    fps: float = Field(
        default=DEFAULT_FPS, gt=0.0,
        description="How many frames per second will engine be processing while nobody is in view. "
        "Default 2. While a face is in view the engine analyses faster, up to --max-fps.",
    )
    max_fps: float = Field(
        default=DEFAULT_MAX_FPS, gt=0.0,
        description=f"Highest analysis rate while a face is in view. Default {DEFAULT_MAX_FPS:g}.",
    )
    min_frames: int = Field(
        default=DEFAULT_MIN_FRAMES, ge=1,
        description="Unlock only when one person clears the threshold in at least K analysed frames within "
        f"--window seconds. 1 behaves as the seed (a single frame). Default {DEFAULT_MIN_FRAMES}.",
    )
    window: float = Field(
        default=DEFAULT_WINDOW, ge=0.0,
        description=f"Time window for --min-frames. Default {DEFAULT_WINDOW:g}.",
    )
    block_time: float = Field(
        default=DEFAULT_BLOCK_TIME, ge=0.0,
        description="After door is unlocked engine will stop processing frame for block-time seconds. "
        "Default 6.",
    )
    door_secret_file: Path | None = Field(
        default=None, description="Shared secret of the door API; unlock requests are signed with it."
    )
    webhook_url: str | None = Field(
        default=None, description="POST JSON events (recognised, unlocked, refused-unknown) to this URL."
    )
    webhook_token_file: Path | None = Field(
        default=None,
        description="File (mode 600) holding a token sent with each event as 'Authorization: Bearer'.",
    )
    keep_days: float = Field(
        default=DEFAULT_KEEP_DAYS, gt=0.0,
        description=f"Delete unlock frames older than this many days. Default {DEFAULT_KEEP_DAYS:g}.",
    )
    live_url: str | None = Field(
        default=None,
        description="POST each analysed frame with its boxes (JPEG + JSON, at most 10 a second, only while "
        "faces are in view) to this URL, with the --webhook-token-file token: the dashboard's live view.",
    )
    collect_dir: Path | None = Field(
        default=None,
        description="Also do the collector's job on the frames this engine analyses: save those with a face "
        "whose confidence lies in [--collect-min-confidence, --collect-max-confidence] here.",
    )
    collect_min_confidence: float = Field(default=0.5, ge=0.0, le=1.0,
                                          description="Lower end of --collect-dir's band. Default 0.5.")
    collect_max_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Upper end of --collect-dir's band. Default: --threshold.")
    collect_keep_frames: int = Field(
        default=DEFAULT_KEEP_FRAMES, ge=1,
        description=f"Keep at most this many collected frames. Default {DEFAULT_KEEP_FRAMES}.",
    )
    liveness: Literal["on", "off"] = Field(
        default="on",
        description="Unlock only for a face track judged live (refuses photos, printed cards and screens "
        "showing an enrolled person). off: the seed's rule, any face that is recognised opens the door.",
    )
    liveness_timeout: float = Field(
        default=DEFAULT_LIVENESS_TIMEOUT, gt=0.0, le=60.0,
        description="Seconds a recognised track may stay undecided (not yet judged live) before it is "
        f"refused. Default {DEFAULT_LIVENESS_TIMEOUT:g}.",
        json_schema_extra={"metavar": "SECONDS"},
    )
    liveness_still_frame: Literal["on", "off"] = Field(
        default="on",
        description="Refuse a face held still between two parallel straight edges close on either side (a "
        "screen or a card on a stand, replaying a video). off: where the background frames the head of a "
        "person standing at the camera (a doorway, a window, shelves); such a screen then gets in.",
    )
    spoof_lockout: int = Field(
        default=DEFAULT_SPOOF_LOCKOUT, ge=0, le=1000,
        description=f"Pause face unlock after this many refused presentation attacks within 10 minutes "
        f"(0: never). Default {DEFAULT_SPOOF_LOCKOUT}.",
        json_schema_extra={"metavar": "N"},
    )
    spoof_lockout_minutes: float = Field(
        default=DEFAULT_SPOOF_LOCKOUT_MINUTES, gt=0.0, le=7 * 24 * 60,
        description=f"How long face unlock pauses after --spoof-lockout attacks. Default "
        f"{DEFAULT_SPOOF_LOCKOUT_MINUTES:g}; an admin lifts it from the dashboard.",
        json_schema_extra={"metavar": "MINUTES"},
    )
    liveness_model: Path | None = Field(
        default=None,
        description="Also use this ONNX presentation-attack classifier (input: a face crop, output: live "
        "probability; see the README). Nothing is downloaded; nothing is needed without it.",
        json_schema_extra={"metavar": "FILE"},
    )
    keep_unlocks: int = Field(
        default=DEFAULT_KEEP_UNLOCKS, ge=1,
        description=f"Keep at most this many unlock frames (the newest). Default {DEFAULT_KEEP_UNLOCKS}.",
    )

    @property
    def collect_band(self) -> tuple[float, float]:
        high = self.threshold if self.collect_max_confidence is None else self.collect_max_confidence
        return self.collect_min_confidence, high

    @model_validator(mode="after")
    def _window_for_several_frames(self) -> Self:
        if self.min_frames > 1 and self.window <= 0:
            raise ValueError(f"--window must be positive when --min-frames > 1, got {self.window:g}")
        if self.liveness == "on" and self.haar_file_path:
            raise ValueError("--liveness on needs the default face gate (its landmarks follow each face): "
                             "leave out --haar-file-path, or give --liveness off")
        low, high = self.collect_band
        if self.collect_dir is not None and low > high:
            raise ValueError("need --collect-min-confidence <= --collect-max-confidence, "
                             f"got {low:g} > {high:g}")
        return self


class CollectorSettings(StreamClientSettings):
    """`smartlock collect`: which frames to keep ([min, max] confidence) and how often to look."""

    min_confidence: float = Field(
        ge=0.0, le=1.0,
        description="Minimum confidence required for saving the frame. Number from 0 to 1.",
        json_schema_extra={"short": "-min"},
    )
    max_confidence: float = Field(
        ge=0.0, le=1.0,
        description="Maximum confidence allowed for saving the frame. Number from 0 to 1.",
        json_schema_extra={"short": "-max"},
    )
    log_path: Path = Field(
        default=DEFAULT_LOG_PATH,
        description='Directory path where logs and collected frames will be saved. Default is "log".',
    )
    fps: float = Field(
        default=DEFAULT_FPS, gt=0.0,
        description="How many frames per second will collector be processing. Default is 2.",
    )
    keep_days: float = Field(
        default=DEFAULT_KEEP_DAYS, gt=0.0,
        description=f"Delete collected frames older than this many days. Default {DEFAULT_KEEP_DAYS:g}.",
    )
    keep_frames: int = Field(
        default=DEFAULT_KEEP_FRAMES, ge=1,
        description=f"Keep at most this many collected frames (the newest). Default {DEFAULT_KEEP_FRAMES}.",
    )

    @model_validator(mode="after")
    def _band(self) -> Self:
        if self.min_confidence > self.max_confidence:
            raise ValueError("need 0 <= --min-confidence <= --max-confidence <= 1")
        return self
