"""The `smartlock recognition` sub-command: load the model once, then serve the Face Recognition API.

Secure by default: without ``--api-key-file`` the key is MODEL_DIR/api-key, generated (0600) on first start;
its path is logged, never its value. ``--no-auth`` serves an open API and says so loudly.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from smartlock.errors import ConfigError
from smartlock.recognition.settings import GENERATED_KEY_FILE, RecognitionSettings

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
            "empty one is created there. Every endpoint but /health and the docs needs header X-API-Key: "
            "the key is read from --api-key-file, else from MODEL_DIR/api-key, which is generated (mode "
            "600) on first start; give that file to the engine and collector "
            "(--face-recognition-api-key-file). Requests that change something are refused (403) when "
            "a browser says they come from another web site (Origin)."
        ),
    )
    add = RecognitionSettings.add_option
    add(parser, "model", metavar="MODEL_DIR")
    add(parser, "host")
    add(parser, "port")
    add(parser, "api_key_file", metavar="FILE")
    add(parser, "no_auth")
    add(parser, "tls_cert", metavar="PEM")
    add(parser, "tls_key", metavar="PEM")
    add(parser, "backend")
    add(parser, "threads")
    add(parser, "detection_size", metavar="PX")
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
    from smartlock.service.server import check_tls

    setup_logging(settings.log_level)
    check_tls(settings.tls_cert, settings.tls_key)  # before the (slow) model load
    # A key file named on the command line must be usable before the (slow) model load.
    api_key = read_secret(settings.api_key_file, "API key file") if settings.api_key_file else None

    from smartlock.recognition import store
    from smartlock.recognition.api import create_app
    from smartlock.recognition.backends.base import get_backend
    from smartlock.recognition.recognizer import Recognizer

    options = settings.backend_options()
    backend = get_backend(settings.backend, **options.get(settings.backend, {})) if settings.backend else None
    recognizer = Recognizer.open_or_create(settings.model, backend, options)
    store.make_private(settings.model)
    people = recognizer.people()
    logger.info(
        "model %s: %s backend, %d people, %d photos%s", settings.model, recognizer.backend_name, len(people),
        sum(len(images) for images in people.values()),
        "" if people else " (empty gallery: enroll with POST /people/{name}/images or `smartlock train`)",
    )
    if settings.no_auth:
        logger.warning("AUTHENTICATION IS OFF (--no-auth): anyone who can reach port %d can enroll their own "
                       "face (and so open the door), remove people and download their face crops",
                       settings.port)
    elif api_key is None:
        api_key = generated_key(settings.model / GENERATED_KEY_FILE)
    else:
        logger.info("API key read from %s: clients send it in header X-API-Key", settings.api_key_file)
    app = create_app(recognizer, api_key=api_key, max_upload_bytes=settings.max_upload_bytes,
                     inference_threads=settings.threads)
    scheme = "https" if settings.tls else "http"
    logger.info("serving on %s://%s:%d (API docs at /docs)%s", scheme, settings.host, settings.port,
                ", X-API-Key required" if api_key else "")
    serve(app, settings.host, settings.port, log_level=settings.log_level, access_log=settings.access_log,
          tls_cert=settings.tls_cert, tls_key=settings.tls_key)
    return 0


def generated_key(path: Path) -> str:
    """The key in ``path`` (MODEL_DIR/api-key), made (random, 0600) if missing; logs the file's path, never
    the key."""
    from smartlock.service import ensure_secret

    try:
        key, created = ensure_secret(path, what="API key file")
    except OSError as err:
        raise ConfigError(f"cannot create the API key file {path}: {err}; give --api-key-file FILE "
                          "(mode 600) or make the model folder writable") from err
    logger.info("API key %s %s: clients send it in header X-API-Key (the engine and collector read it "
                "with --face-recognition-api-key-file FILE)", "generated in" if created else "read from",
                path.absolute())
    return key
