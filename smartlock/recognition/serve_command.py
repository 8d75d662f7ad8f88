"""The `smartlock recognition` sub-command: load the model once, then serve the Face Recognition API."""

from __future__ import annotations

import argparse
import logging

from smartlock.recognition.settings import RecognitionSettings

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recognition",
        help="serve the Face Recognition API (POST /face-recognition, enrollment, /docs)",
        description=(
            "Serve the Face Recognition API: POST /face-recognition (multipart field 'image') answers "
            "{'faces': [{'top_prediction': {'label', 'confidence'}, 'bounding_box': {...}, "
            "'all_predictions': ...}]}; people are enrolled and removed under /people while it runs. "
            "Swagger UI at /docs (served locally: works offline). If MODEL_DIR holds no gallery yet, an "
            "empty one is created there."
        ),
    )
    add = RecognitionSettings.add_option
    add(parser, "model", metavar="MODEL_DIR")
    add(parser, "host")
    add(parser, "port")
    add(parser, "api_key_file", metavar="FILE")
    add(parser, "backend")
    add(parser, "threads")
    add(parser, "max_upload_mb")
    add(parser, "log_level")
    add(parser, "access_log")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return serve_recognition(RecognitionSettings.from_args(args))


def serve_recognition(settings: RecognitionSettings) -> int:
    """Load (or create) the gallery and serve the API until SIGINT/SIGTERM/SIGHUP."""
    from smartlock.logs import setup_logging
    from smartlock.service import read_secret, serve

    setup_logging(settings.log_level)
    api_key = read_secret(settings.api_key_file, "API key file") if settings.api_key_file else None

    from smartlock.recognition.api import create_app
    from smartlock.recognition.backends.base import get_backend
    from smartlock.recognition.recognizer import Recognizer

    backend = get_backend(settings.backend) if settings.backend else None
    recognizer = Recognizer.open_or_create(settings.model, backend)
    people = recognizer.people()
    logger.info(
        "model %s: %s backend, %d people, %d photos%s", settings.model, recognizer.backend_name, len(people),
        sum(len(images) for images in people.values()),
        "" if people else " (empty gallery: enroll with POST /people/{name}/images or `smartlock train`)",
    )
    app = create_app(recognizer, api_key=api_key, max_upload_bytes=settings.max_upload_bytes,
                     inference_threads=settings.threads)
    logger.info("serving on http://%s:%d (API docs at /docs)%s", settings.host, settings.port,
                ", X-API-Key required" if api_key else "")
    serve(app, settings.host, settings.port, log_level=settings.log_level, access_log=settings.access_log)
    return 0
