"""The `smartlock recognition` sub-command: load the model once, then serve the Face Recognition API."""

from __future__ import annotations

import argparse
import logging
import stat
from pathlib import Path

from smartlock.errors import ConfigError
from smartlock.recognition.commands import DEFAULT_MODEL_DIR

log = logging.getLogger(__name__)

DEFAULT_PORT = 5000


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
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL_DIR, metavar="MODEL_DIR",
        help="model directory made by `smartlock train` (default: %(default)s); created empty if it "
        "holds no gallery, so people can be enrolled through the API",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    parser.add_argument(
        "--api-key-file", type=Path, metavar="FILE",
        help="file holding the API key; then every endpoint but /health needs header X-API-Key",
    )
    parser.add_argument(
        "--backend", default=None,
        help="backend of a NEW gallery: arcface (default; its InsightFace weights are licensed for "
        "non-commercial research only) or dlib (permissive, weaker). An existing gallery uses the "
        "backend it was made with.",
    )
    parser.add_argument(
        "--threads", type=int, default=None,
        help="recognitions run at once (default: the number of CPUs); more requests wait their turn",
    )
    parser.add_argument(
        "--max-upload-mb", type=float, default=20.0,
        help="largest image accepted, in MiB (default: %(default)s); bigger uploads get 413",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request")
    parser.set_defaults(func=run)


def read_api_key(path: Path) -> str:
    """The key in ``path`` (surrounding whitespace removed); ConfigError if unreadable or empty."""
    try:
        key = path.read_text(encoding="utf-8").strip()
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the API key file {path}: {err}") from None
    if not key:
        raise ConfigError(f"the API key file {path} is empty")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("the API key file %s is readable by other users: chmod 600 it", path)
    return key


def run(args: argparse.Namespace) -> int:
    from smartlock.logs import setup_logging

    setup_logging(args.log_level.upper())
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    if not 0 < args.max_upload_mb <= 1024:
        raise ConfigError(f"--max-upload-mb must be in (0, 1024], got {args.max_upload_mb}")
    api_key = read_api_key(args.api_key_file) if args.api_key_file else None

    import uvicorn

    from smartlock.recognition.api import create_app
    from smartlock.recognition.backends.base import get_backend
    from smartlock.recognition.recognizer import Recognizer

    backend = get_backend(args.backend) if args.backend else None
    recognizer = Recognizer.open_or_create(args.model, backend)
    people = recognizer.people()
    log.info(
        "model %s: %s backend, %d people, %d photos%s", args.model, recognizer.backend_name, len(people),
        sum(len(images) for images in people.values()),
        "" if people else " (empty gallery: enroll with POST /people/{name}/images or `smartlock train`)",
    )
    app = create_app(
        recognizer,
        api_key=api_key,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        inference_threads=args.threads,
    )
    log.info("serving on http://%s:%d (API docs at /docs)%s", args.host, args.port,
             ", X-API-Key required" if api_key else "")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower(),
                log_config=None, access_log=args.access_log)
    return 0
