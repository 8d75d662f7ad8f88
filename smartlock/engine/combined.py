"""`smartlock vision`: the camera, the recognition API and the engine in one process, as `up` runs them.

On a small machine three Python processes with OpenCV and onnxruntime each cost hundreds of megabytes, and
the camera would JPEG-encode every frame only for the engine to decode it again. Here the capture thread
hands each frame to the engine directly (a ``FrameSlot``), recognition is a function call on the same
gallery the API serves (an enrollment counts at once), and the camera encodes JPEG only while someone
watches (the dashboard's live view, a snapshot). The camera and recognition APIs are served on loopback
exactly as by `smartlock camera` and `smartlock recognition`, with the same secrets. The door is not part
of it: the relay stays in its own process, which locks it on any failure there.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from smartlock.engine.settings import EngineSettings

if TYPE_CHECKING:  # the CLI imports this module: nothing heavy at import time
    import numpy as np

    from smartlock.engine.frames import Frame

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
SERVER_START_TIMEOUT = 30.0


class VisionSettings(EngineSettings):
    """The engine's settings, plus the camera source and the two loopback ports it serves."""

    camera_url: str | None = Field(  # type: ignore[assignment]
        default=None, description="Not used: frames come from --source in this very process.")
    source: str | None = Field(
        default=None, description="Camera source, as `smartlock camera --source` (default: as there).")
    camera_port: int = Field(ge=1, le=65535, description="Serve the camera's API on 127.0.0.1 at this port.")
    recognition_port: int = Field(
        ge=1, le=65535, description="Serve the recognition API on 127.0.0.1 at this port.")
    backend: Literal["arcface", "dlib"] | None = Field(
        default=None, description="Backend of a new gallery (an existing one keeps its own).")
    quality: int = Field(default=80, ge=1, le=100, description="JPEG quality of the served stream.")


class TapFrames:
    """The engine's frame source: the newest frame the capture thread handed over (``FrameSource``)."""

    def __init__(self) -> None:
        from smartlock.camera.slot import FrameSlot

        self._slot: FrameSlot[Frame] = FrameSlot()

    def feed(self, image: np.ndarray, captured: float) -> None:
        from smartlock.engine.frames import Frame

        received = time.monotonic()
        self._slot.publish(lambda seq: Frame(image=image, seq=seq, received=received, captured=captured))

    def wait_newer(self, seq: int, timeout: float) -> Frame | None:
        return self._slot.wait_newer(seq, timeout)

    def close(self) -> None:
        self._slot.close()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "vision", help="the camera, recognition API and engine in one process (what `smartlock up` runs)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    for name in VisionSettings.model_fields:
        if name not in ("camera_url", "face_recognition_api_url"):
            VisionSettings.add_option(parser, name)
    parser.set_defaults(func=run_vision)


class _Servers:
    """uvicorn servers run in threads of this process, stopped together."""

    def __init__(self) -> None:
        self._servers: list[Any] = []
        self._threads: list[threading.Thread] = []

    def start(self, name: str, app: Any, port: int, on_stop: Any = None) -> None:
        from smartlock.service.server import make_server

        server = make_server(app, LOOPBACK, port, on_stop=on_stop)
        thread = threading.Thread(target=server.run, name=f"serve {name}", daemon=True)
        thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            from smartlock.errors import ServiceError

            raise ServiceError(f"the {name} API did not start on {LOOPBACK}:{port}")
        self._servers.append(server)
        self._threads.append(thread)
        logger.info("%s API serving on http://%s:%d", name, LOOPBACK, port)

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        for thread in self._threads:
            thread.join(10)


def run_vision(args: argparse.Namespace) -> int:
    from smartlock.camera.api import create_app as create_camera_app
    from smartlock.camera.sources import open_source
    from smartlock.camera.stream import FrameEncoder, FrameHub
    from smartlock.engine.assembly import build_engine, camera_frame_options, in_process, webhook_token
    from smartlock.engine.commands import _configure, stop_on_signals
    from smartlock.engine.gate import build_gate
    from smartlock.recognition import store
    from smartlock.recognition.api import create_app as create_recognition_app
    from smartlock.recognition.backends.base import get_backend
    from smartlock.recognition.recognizer import Recognizer
    from smartlock.recognition.serve_command import GENERATED_KEY_FILE, generated_key
    from smartlock.service import ensure_secret, read_secret

    settings = VisionSettings.from_args(args)
    assert settings.model is not None  # the settings hold exactly one recognition source; here the gallery
    camera_secret = None
    if settings.camera_token_file is not None:
        camera_secret, _ = ensure_secret(settings.camera_token_file, what="camera token file")
    api_key = None
    if settings.face_recognition_api_key_file is not None:
        api_key = read_secret(settings.face_recognition_api_key_file, "API key file")
    token = webhook_token(settings)
    _configure(settings, (camera_secret, api_key, token))
    gate = build_gate(settings.haar_file_path, settings.gate_size)

    options = camera_frame_options()
    backend = get_backend(settings.backend, **options.get(settings.backend, {})) if settings.backend else None
    recognizer = Recognizer.open_or_create(settings.model, backend, options)
    store.make_private(settings.model)
    if api_key is None:
        api_key = generated_key(settings.model / GENERATED_KEY_FILE)
    frames = TapFrames()
    source = open_source(settings.source)
    hub = FrameHub(source, encoder=FrameEncoder(quality=settings.quality), tap=frames.feed,
                   encode_unwatched=False)
    parts = build_engine(settings, frames, in_process(recognizer), gate, token)
    servers = _Servers()
    with stop_on_signals() as stop:
        try:
            servers.start("recognition", create_recognition_app(recognizer, api_key=api_key),
                          settings.recognition_port)
            servers.start("camera", create_camera_app(hub, camera_secret), settings.camera_port,
                          on_stop=hub.stop)
            logger.info("Camera %s, recognition (%s backend, %s) and engine running in one process",
                        source.name, recognizer.backend_name, Path(settings.model))
            parts.unlock_log.start_pruning()
            parts.engine.run(stop)
        finally:
            frames.close()
            hub.stop()
            servers.stop()
            parts.close()
    return 0
