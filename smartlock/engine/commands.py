"""`smartlock engine`, `smartlock collect`: the seed's flags, as spelled there, plus the multi-frame rule."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

DEFAULT_THRESHOLD = 0.8
DEFAULT_MIN_FRAMES = 2
DEFAULT_WINDOW = 1.5
DEFAULT_MAX_FPS = 10.0
RECOGNITION_TIMEOUT = 5.0
API_KEY_ENV = "SMARTLOCK_API_KEY"


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_engine(subparsers)
    _register_collect(subparsers)


def _add_recognition_source(required: argparse._ArgumentGroup, optional: argparse._ArgumentGroup) -> None:
    source = required.add_mutually_exclusive_group(required=True)
    source.add_argument("--face-recognition-api-url", help="URL of face recognition endpoint "
                        "(e.g. http://HOST:5000/face-recognition).")
    source.add_argument("--model", metavar="MODEL_DIR", type=Path,
                        help="Recognise in this process with a trained model directory "
                             "instead of calling the API.")
    optional.add_argument("--face-recognition-api-key", default=None,
                          help=f"API key for the recognition API (default: ${API_KEY_ENV} if set).")


def _add_camera_options(optional: argparse._ArgumentGroup, what: str) -> None:
    optional.add_argument("--haar-file-path", default=None,
                          help="Path to Haar Cascade (simple and fast face detector) xml file. Default: the "
                               "frontal-face cascade shipped with OpenCV.")
    optional.add_argument("--log-path", default="log", type=Path,
                          help=f"Directory path where {what} will be saved. Default is \"log\".")
    optional.add_argument("--no-mirror", dest="mirror", action="store_false",
                          help="Do not flip frames horizontally (the seed always did).")


def _register_engine(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "engine", add_help=False,
        help="hook to the camera, recognise faces and unlock the door",
        description="Face recognition engine which hooks to camera stream, performs face recognition on "
                    "stream frames and sends unlocks door request if a familiar face is recognised in at "
                    "least --min-frames analysed frames within --window seconds.",
    )
    required = parser.add_argument_group("required arguments")
    optional = parser.add_argument_group("optional arguments")
    required.add_argument("--camera-url", required=True, help="URL of video stream.")
    _add_recognition_source(required, optional)
    required.add_argument("--door-api-url", required=True,
                          help="URL of smart lock door-api which unlocks door.")
    optional.add_argument(
        "--threshold", type=float, default=DEFAULT_THRESHOLD,
        help="Number from 0 to 1 which represents minimal confidence which need to be met to unlock the door "
             "when face is recognised from a video stream. Default value is 0.8 (We need to be at least 80%% "
             "sure that we recognised some person to unlock the door for him).")
    optional.add_argument(
        "--fps", type=float, default=2.0,
        help="How many frames per second will engine be processing while nobody is in view. Default 2. While "
             "a face is in view the engine analyses faster, up to --max-fps.")
    optional.add_argument("--max-fps", type=float, default=DEFAULT_MAX_FPS,
                          help=f"Highest analysis rate while a face is in view. Default {DEFAULT_MAX_FPS:g}.")
    optional.add_argument(
        "--min-frames", type=int, default=DEFAULT_MIN_FRAMES, metavar="K",
        help=f"Unlock only when one person clears the threshold in at least K analysed frames within "
             f"--window seconds. 1 behaves as the seed (a single frame). Default {DEFAULT_MIN_FRAMES}.")
    optional.add_argument("--window", type=float, default=DEFAULT_WINDOW, metavar="SECONDS",
                          help=f"Time window for --min-frames. Default {DEFAULT_WINDOW:g}.")
    optional.add_argument(
        "--block-time", type=float, default=6,
        help="After door is unlocked engine will stop processing frame for block-time seconds. Default 6.")
    optional.add_argument("--door-secret-file", type=Path, default=None,
                          help="Shared secret of the door API; unlock requests are signed with it.")
    optional.add_argument("--webhook-url", default=None,
                          help="POST JSON events (recognised, unlocked, refused-unknown) to this URL.")
    _add_camera_options(optional, "logs and unlock frames")
    optional.add_argument("-h", "--help", action="help", default=argparse.SUPPRESS,
                          help="show this help message and exit")
    parser.set_defaults(func=run_engine)


def _register_collect(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "collect", add_help=False,
        help="save camera frames whose confidence lies in [min, max] for later enrollment",
        description="Script for collecting images from camera. Image (frame) will be saved if there is "
                    "person recognised on the frame where "
                    "min_confidence <= person_confidence <= max_confidence.",
    )
    required = parser.add_argument_group("required arguments")
    optional = parser.add_argument_group("optional arguments")
    required.add_argument("-min", "--min-confidence", type=float, required=True,
                          help="Minimum confidence required for saving the frame. Number from 0 to 1.")
    required.add_argument("-max", "--max-confidence", type=float, required=True,
                          help="Maximum confidence allowed for saving the frame. Number from 0 to 1.")
    required.add_argument("--camera-url", required=True, help="URL of video stream.")
    _add_recognition_source(required, optional)
    optional.add_argument("--fps", type=float, default=2.0,
                          help="How many frames per second will collector be processing. Default is 2.")
    _add_camera_options(optional, "logs and collected frames")
    optional.add_argument("-h", "--help", action="help", default=argparse.SUPPRESS,
                          help="show this help message and exit")
    parser.set_defaults(func=run_collect)


# -- wiring ---------------------------------------------------------------------------------------


def configure_logging(log_path: Path) -> None:
    """Like the seed: every line to stdout and to ``<log-path>/log.txt``."""
    from smartlock.logs import setup_logging

    setup_logging(log_file=log_path / "log.txt")
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setStream(sys.stdout)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise


def build_recogniser(args: argparse.Namespace) -> Callable[[np.ndarray], object]:
    """The API client, or an in-process Recognizer when --model is given; both return the API's faces."""
    from smartlock.engine.vision import bgr_to_rgb, encode_jpeg

    if args.model is not None:
        from smartlock.recognition.recognizer import Recognizer

        recognizer = Recognizer.load(args.model)
        logging.getLogger("smartlock.engine").info("Recognising in-process with %s (%s backend)",
                                                   args.model, recognizer.backend_name)
        return lambda image: [face.to_api() for face in recognizer.recognize(bgr_to_rgb(image))]
    import os

    from smartlock.recognition.client import RecognitionClient

    client = RecognitionClient(args.face_recognition_api_url,
                               api_key=args.face_recognition_api_key or os.environ.get(API_KEY_ENV),
                               timeout=RECOGNITION_TIMEOUT)
    return lambda image: client.recognize_jpeg(encode_jpeg(image))


def build_door(args: argparse.Namespace) -> Callable:
    """Signed unlock requests, 0.3 s timeout and 3 tries as the seed; raises DoorError when all fail."""
    from smartlock.door.client import DoorClient

    secret = None
    if args.door_secret_file is not None:
        from smartlock.door.auth import load_secret

        secret = load_secret(args.door_secret_file)
    client = DoorClient(args.door_api_url, secret, timeout=0.3, tries=3)

    def unlock(decision) -> None:
        client.unlock(person=decision.label, confidence=decision.confidence, source="engine")

    return unlock


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or Ctrl-C, so the loop ends cleanly and the threads are stopped."""
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_engine(args: argparse.Namespace) -> int:
    from smartlock.engine.engine import Engine, EngineSettings
    from smartlock.engine.frames import LatestFrameReader
    from smartlock.engine.policy import UnlockPolicy
    from smartlock.engine.sinks import NullSink, UnlockLog, WebhookSink
    from smartlock.engine.vision import HaarFaceDetector

    policy = UnlockPolicy(args.threshold, args.min_frames, args.window)
    settings = EngineSettings(fps=args.fps, max_fps=max(args.max_fps, args.fps), block_time=args.block_time,
                              mirror=args.mirror, burst_hold=max(args.window, 1.0))
    detector = HaarFaceDetector(args.haar_file_path)
    configure_logging(args.log_path)
    recognise = build_recogniser(args)
    door = build_door(args)
    events = WebhookSink(args.webhook_url) if args.webhook_url else NullSink()
    reader = LatestFrameReader(args.camera_url)
    engine = Engine(reader, recognise, door, policy, detector=detector,
                    unlock_log=UnlockLog(args.log_path, args.threshold), events=events, settings=settings)
    with stop_on_signals() as stop:
        reader.start()
        try:
            engine.run(stop)
        finally:
            reader.stop()
            events.close()
    return 0


def run_collect(args: argparse.Namespace) -> int:
    from smartlock.engine.collector import Collector
    from smartlock.engine.frames import LatestFrameReader
    from smartlock.engine.vision import HaarFaceDetector
    from smartlock.errors import ConfigError

    if not 0.0 <= args.min_confidence <= args.max_confidence <= 1.0:
        raise ConfigError("need 0 <= --min-confidence <= --max-confidence <= 1")
    detector = HaarFaceDetector(args.haar_file_path)
    configure_logging(args.log_path)
    recognise = build_recogniser(args)
    reader = LatestFrameReader(args.camera_url)
    collector = Collector(reader, recognise, args.log_path, min_confidence=args.min_confidence,
                          max_confidence=args.max_confidence, detector=detector, fps=args.fps,
                          mirror=args.mirror)
    with stop_on_signals() as stop:
        reader.start()
        try:
            collector.run(stop)
        finally:
            reader.stop()
    return 0
