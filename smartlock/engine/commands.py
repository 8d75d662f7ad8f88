"""`smartlock engine`, `smartlock collect`: the seed's flags, as spelled there, plus the multi-frame rule
and retention (rotating log, unlock / collected frames kept for --keep-days and a count)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from smartlock.engine.settings import (  # re-exported: other parts import the defaults from here
    API_KEY_ENV,
    DEFAULT_LOG_BACKUPS,
    DEFAULT_LOG_MAX_MB,
    DEFAULT_MAX_FPS,
    DEFAULT_MIN_FRAMES,
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW,
    CollectorSettings,
    EngineSettings,
    StreamClientSettings,
)

if TYPE_CHECKING:
    import numpy as np

    from smartlock.engine.frames import LatestFrameReader
    from smartlock.recognition.schemas import Face

__all__ = ["API_KEY_ENV", "DEFAULT_MAX_FPS", "DEFAULT_MIN_FRAMES", "DEFAULT_THRESHOLD", "DEFAULT_WINDOW",
           "build_recognizer", "configure_logging", "register", "run_collect", "run_engine"]

logger = logging.getLogger(__name__)

# the engine publishes and obeys the switch; unlock commands are the door's
ENGINE_MQTT_FLAGS = ("mqtt_url", "mqtt_ca_file", "mqtt_password_file", "mqtt_images", "door_name")

RECOGNITION_TIMEOUT = 5.0


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_engine(subparsers)
    _register_collect(subparsers)


def _groups(parser: argparse.ArgumentParser) -> tuple[argparse._ArgumentGroup, argparse._ArgumentGroup]:
    return parser.add_argument_group("required arguments"), parser.add_argument_group("optional arguments")


def _add_recognition_source(model: type[StreamClientSettings], required: argparse._ArgumentGroup,
                            optional: argparse._ArgumentGroup) -> None:
    source = required.add_mutually_exclusive_group(required=True)
    model.add_option(source, "face_recognition_api_url")
    model.add_option(source, "model", metavar="MODEL_DIR")
    key = optional.add_mutually_exclusive_group()
    key.add_argument("--face-recognition-api-key", default=None,
                     help=f"API key for the recognition API (default: ${API_KEY_ENV} if set).")
    model.add_option(key, "face_recognition_api_key_file", metavar="FILE")


def _add_camera_options(model: type[StreamClientSettings], optional: argparse._ArgumentGroup) -> None:
    model.add_option(optional, "camera_token_file", metavar="FILE")
    for name in ("haar_file_path", "log_path", "log_level", "mirror"):
        model.add_option(optional, name)
    model.add_option(optional, "gate_size", metavar="PX")
    model.add_option(optional, "log_max_mb", metavar="MB")
    model.add_option(optional, "log_backups", metavar="N")
    model.add_option(optional, "keep_days", metavar="DAYS")


def _add_help(optional: argparse._ArgumentGroup) -> None:
    optional.add_argument("-h", "--help", action="help", default=argparse.SUPPRESS,
                          help="show this help message and exit")


def _register_engine(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "engine", add_help=False,
        help="hook to the camera, recognise faces and unlock the door",
        description="Face recognition engine which hooks to camera stream, performs face recognition on "
                    "stream frames and sends unlocks door request if a familiar face is recognised in at "
                    "least --min-frames analysed frames within --window seconds.",
    )
    required, optional = _groups(parser)
    EngineSettings.add_option(required, "camera_url")
    _add_recognition_source(EngineSettings, required, optional)
    EngineSettings.add_option(required, "door_api_url")
    for name in ("threshold", "fps", "max_fps"):
        EngineSettings.add_option(optional, name)
    EngineSettings.add_option(optional, "min_frames", metavar="K")
    EngineSettings.add_option(optional, "window", metavar="SECONDS")
    for name in ("block_time", "door_secret_file", "webhook_url", "webhook_token_file", "live_url"):
        EngineSettings.add_option(optional, name)
    _add_camera_options(EngineSettings, optional)
    EngineSettings.add_option(optional, "keep_unlocks", metavar="N")
    EngineSettings.add_option(optional, "collect_dir", metavar="DIR")
    EngineSettings.add_option(optional, "collect_min_confidence", metavar="P")
    EngineSettings.add_option(optional, "collect_max_confidence", metavar="P")
    EngineSettings.add_option(optional, "collect_keep_frames", metavar="N")
    for name in ("liveness", "liveness_timeout", "liveness_still_frame", "spoof_lockout",
                 "spoof_lockout_minutes", "liveness_model"):
        EngineSettings.add_option(optional, name)
    for name in ENGINE_MQTT_FLAGS:
        EngineSettings.add_option(optional, name)
    _add_help(optional)
    parser.set_defaults(func=run_engine)


def _register_collect(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "collect", add_help=False,
        help="save camera frames whose confidence lies in [min, max] for later enrollment",
        description="Script for collecting images from camera. Image (frame) will be saved if there is "
                    "person recognised on the frame where "
                    "min_confidence <= person_confidence <= max_confidence.",
    )
    required, optional = _groups(parser)
    CollectorSettings.add_option(required, "min_confidence")
    CollectorSettings.add_option(required, "max_confidence")
    CollectorSettings.add_option(required, "camera_url")
    _add_recognition_source(CollectorSettings, required, optional)
    CollectorSettings.add_option(optional, "fps")
    _add_camera_options(CollectorSettings, optional)
    CollectorSettings.add_option(optional, "keep_frames", metavar="N")
    _add_help(optional)
    parser.set_defaults(func=run_collect)


# -- wiring ---------------------------------------------------------------------------------------


MIN_SECRET_TO_MASK = 8  # shorter values would mask ordinary words in the log


def configure_logging(log_path: Path, level: str = "INFO", *, max_mb: float = DEFAULT_LOG_MAX_MB,
                      backups: int = DEFAULT_LOG_BACKUPS, secrets: Iterable[str | None] = ()) -> None:
    """Like the seed: every line to stdout and to ``<log-path>/log.txt`` (0600 in a 0700 folder, rotated at
    ``max_mb`` with ``backups`` old files); ``token=`` values and the ``secrets`` read at start are masked
    in every line, tracebacks included."""
    from smartlock.logs import MB, redact_url, setup_logging

    masked = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_TO_MASK}, key=len, reverse=True)

    def redact(text: str) -> str:
        text = redact_url(text)
        for secret in masked:
            text = text.replace(secret, "***")
        return text

    setup_logging(level, log_file=log_path / "log.txt", max_bytes=max(1, int(max_mb * MB)), backups=backups,
                  redact=redact, stream=sys.stdout)
    for chatty in ("httpx", "httpcore"):  # a line (or several) per request otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)


def _configure(settings: StreamClientSettings, secrets: Iterable[str | None]) -> None:
    """A service process's logging: private files (umask 077), redacted lines, uncaught errors logged."""
    from smartlock.logs import log_uncaught_exceptions

    os.umask(0o077)  # everything this process writes holds faces, names or what it saw
    configure_logging(settings.log_path, settings.log_level, max_mb=settings.log_max_mb,
                      backups=settings.log_backups, secrets=secrets)
    log_uncaught_exceptions()


def build_recognizer(settings: StreamClientSettings,
                     api_key: str | None = None) -> Callable[[np.ndarray], list[Face]]:
    """The API client (with ``api_key``, see access.recognition_api_key), or an in-process Recognizer when
    --model is given; both return Face models."""
    from smartlock.engine.vision import encode_jpeg_bgr

    if settings.model is not None:
        from smartlock.engine.assembly import camera_frame_options, in_process
        from smartlock.recognition.recognizer import Recognizer

        recognizer = Recognizer.load(settings.model, backend_options=camera_frame_options())
        logger.info("Recognising in-process with %s (%s backend)", settings.model, recognizer.backend_name)
        return in_process(recognizer)
    from smartlock.recognition.client import RecognitionClient

    assert settings.face_recognition_api_url is not None  # the settings hold exactly one source
    client = RecognitionClient(settings.face_recognition_api_url, api_key=api_key,
                               timeout=RECOGNITION_TIMEOUT)
    return lambda image: client.recognize_jpeg(encode_jpeg_bgr(image))


def secrets_and_reader(args: argparse.Namespace,
                       settings: StreamClientSettings) -> tuple[str | None, LatestFrameReader]:
    """The recognition API key and the camera reader, read before anything starts (a bad secret file is
    an error up front)."""
    from smartlock.engine.access import recognition_api_key

    api_key = recognition_api_key(settings.face_recognition_api_key_file, args.face_recognition_api_key)
    return api_key, frame_reader(settings)


def frame_reader(settings: StreamClientSettings) -> LatestFrameReader:
    """The camera reader; with --camera-token-file the token goes in a Bearer header, not the URL. The
    engine analyses (and keeps) frames at ANALYSIS_SIZE, so a large camera frame is decoded reduced; the
    collector keeps full-size frames."""
    from smartlock.engine.access import camera_token, stream_opener
    from smartlock.engine.frames import LatestFrameReader
    from smartlock.engine.vision import ANALYSIS_SIZE

    opener = stream_opener(settings.camera_url, camera_token(settings.camera_token_file))
    size = ANALYSIS_SIZE if isinstance(settings, EngineSettings) else None
    return LatestFrameReader(settings.camera_url, opener=opener, analysis_size=size)


def _camera_token(settings: StreamClientSettings) -> str | None:
    from smartlock.engine.access import camera_token

    return camera_token(settings.camera_token_file)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the services' stop signals (SIGTERM, Ctrl-C, SIGHUP), so the loop ends cleanly and
    the threads are stopped."""
    from smartlock.service.server import STOP_SIGNALS

    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_engine(args: argparse.Namespace) -> int:
    from smartlock.engine.assembly import build_engine, webhook_token
    from smartlock.engine.gate import build_gate

    settings = EngineSettings.from_args(args)
    gate = build_gate(settings.haar_file_path, settings.gate_size)
    api_key, reader = secrets_and_reader(args, settings)
    token = webhook_token(settings)
    _configure(settings, (api_key, _camera_token(settings), token))
    parts = build_engine(settings, reader, build_recognizer(settings, api_key), gate, token)
    with stop_on_signals() as stop:
        parts.unlock_log.start_pruning()
        reader.start()
        try:
            parts.engine.run(stop)
        finally:
            reader.stop()
            parts.close()
    return 0


def run_collect(args: argparse.Namespace) -> int:
    from smartlock.engine.collector import Collector
    from smartlock.engine.gate import build_gate

    settings = CollectorSettings.from_args(args)
    gate = build_gate(settings.haar_file_path, settings.gate_size)
    api_key, reader = secrets_and_reader(args, settings)
    _configure(settings, (api_key, _camera_token(settings)))
    recognize = build_recognizer(settings, api_key)
    collector = Collector(reader, recognize, settings.log_path, min_confidence=settings.min_confidence,
                          max_confidence=settings.max_confidence,
                          detector=lambda image: bool(gate(image, time.monotonic()).faces), fps=settings.fps,
                          mirror=settings.mirror, keep_days=settings.keep_days,
                          keep_frames=settings.keep_frames)
    with stop_on_signals() as stop:
        collector.start_pruning()
        reader.start()
        try:
            collector.run(stop)
        finally:
            reader.stop()
            collector.close()
    return 0
