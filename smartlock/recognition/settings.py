"""The settings of `smartlock recognition`: one model read by its CLI, its code and `up`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from smartlock.config import PartSettings, TlsSettings

DEFAULT_MODEL_DIR = Path("model")
DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 5000
DEFAULT_MAX_UPLOAD_MB = 20.0
MAX_UPLOAD_MB = 1024.0
GENERATED_KEY_FILE = "api-key"  # in the model folder; `smartlock train` carries it over to a new model
# the API's detector input size: benchmarks/gate_recall.py (recall) and speed.py --api (time)
API_DETECTION_SIZE = 320
DETECTION_SIZE_VARIABLE = "SMARTLOCK_ARCFACE_DETECTION_SIZE"  # as backends/arcface.py reads it


class RecognitionSettings(TlsSettings):
    """`smartlock recognition`: the model folder, where to listen, the API key (or --no-auth), TLS, limits."""

    model: Path = Field(
        DEFAULT_MODEL_DIR,
        description="model directory made by `smartlock train`; created empty if it holds no gallery, so "
        "people can be enrolled through the API",
    )
    host: str = Field(DEFAULT_HOST, description="address to listen on")
    port: int = Field(DEFAULT_PORT, ge=1, le=65535, description="port")
    api_key_file: Path | None = Field(
        None, description="file holding the API key (mode 600) that every endpoint but /health and the docs "
        f"needs in header X-API-Key (default: MODEL_DIR/{GENERATED_KEY_FILE}, generated on first start)",
    )
    no_auth: bool = Field(
        False, description="serve WITHOUT an API key: anyone on the network can enroll a face (and so open "
        "the door), remove people and download their face crops",
    )
    backend: str | None = Field(
        None,
        description="backend of a NEW gallery: arcface (default; its InsightFace weights are licensed for "
        "non-commercial research only) or dlib (permissive, weaker). An existing gallery uses the "
        "backend it was made with.",
    )
    threads: int | None = Field(
        None, ge=1,
        description="recognitions run at once (default: the number of CPUs); more requests wait their turn",
    )
    detection_size: int | None = Field(
        None, ge=64, le=4096, multiple_of=32,
        description="arcface: long side (a multiple of 32) images are shrunk to for finding faces "
        f"(default {API_DETECTION_SIZE}, or SMARTLOCK_ARCFACE_DETECTION_SIZE: finds the door camera's "
        "80-300 px faces in 640x360 frames in a quarter of the time of 640; photos larger than the "
        "camera's with small faces may need 640)",
    )
    max_upload_mb: float = Field(
        DEFAULT_MAX_UPLOAD_MB, gt=0, le=MAX_UPLOAD_MB,
        description="largest image accepted, in MiB; bigger uploads get 413",
    )
    log_level: str = Field("INFO", description="logging level")
    access_log: bool = Field(False, description="log every HTTP request")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if not isinstance(logging.getLevelName(level), int):
            raise ValueError(f"unknown logging level {value!r} (DEBUG, INFO, WARNING, ERROR)")
        return level

    @model_validator(mode="after")
    def _one_way_of_auth(self) -> RecognitionSettings:
        if self.no_auth and self.api_key_file is not None:
            raise ValueError("--no-auth and --api-key-file exclude each other")
        return self

    def backend_options(self) -> dict[str, dict[str, Any]]:
        """Keyword arguments per backend name, for Recognizer.open_or_create / get_backend."""
        size = self.detection_size
        if size is None:
            size = None if os.environ.get(DETECTION_SIZE_VARIABLE, "").strip() else API_DETECTION_SIZE
        # None: the backend reads SMARTLOCK_ARCFACE_DETECTION_SIZE itself (and refuses a bad value)
        return {"arcface": {"detection_size": size}}

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def key_file(self) -> Path | None:
        """Where the API key is read from (generated there if it is the default and missing); None with
        --no-auth."""
        if self.no_auth:
            return None
        return self.api_key_file or self.model / GENERATED_KEY_FILE


# The registry's keys (backends/base.py BACKENDS), written out so that the CLI can offer them as choices.
BackendName = Literal["arcface", "dlib"]


class TrainSettings(PartSettings):
    """`smartlock train`: a photo folder in, a model folder out."""

    dataset: Path = Field(json_schema_extra={"short": "-d"},
                          description="folder with one sub-folder of photos per person")
    backend: BackendName = Field("arcface", description="recognition backend")
    output: Path = Field(DEFAULT_MODEL_DIR, json_schema_extra={"short": "-o"},
                         description="model folder to write (default: model/); replaced atomically")
    prior_odds: float | None = Field(
        None, gt=0,
        description="prior odds that a face at the door is someone enrolled rather than a stranger "
        "(default 0.25, i.e. 1 in 5; lower is stricter)",
    )
    no_progress: bool = Field(False, description="no progress bar")


class ClassifySettings(PartSettings):
    """`smartlock classify`: image files or folders recognized with a trained model."""

    images: list[Path] = Field(min_length=1, description="image files or folders")
    model: Path = Field(DEFAULT_MODEL_DIR, description="trained model folder (default: model/)")
    as_json: bool = Field(
        False, json_schema_extra={"flag": "--json"},
        description='one JSON line per image: {"image": PATH, "faces": [...]} as the API returns',
    )
    all_predictions: bool = Field(
        False, description="include every enrolled person's confidence (all_predictions)"
    )
    save_dir: Path | None = Field(None, description="write each image with boxes and labels drawn into DIR")
    threshold: float = Field(0.8, ge=0, le=1,
                             description="confidence from which a face is drawn as recognised (default 0.8)")
