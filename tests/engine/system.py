"""The whole system on loopback, for the end-to-end tests and benchmarks/time_to_unlock.py.

Builds the inputs from ../shared/faces (a gallery of a few people, videos of an enrolled person's
held-out photo or a stranger's photo on a plain background) and runs the real services as processes:
`smartlock camera | recognition | door | engine | collect`.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request

from tests.support import LOOPBACK, free_port, service_process, stop_process, uvicorn_server, wait_for

FRAME_SIZE = (640, 360)
BACKGROUND_LEVEL = 96


def background() -> np.ndarray:
    """A plain wall: a soft vertical gradient, no face."""
    height, width = FRAME_SIZE[1], FRAME_SIZE[0]
    ramp = np.linspace(BACKGROUND_LEVEL - 20, BACKGROUND_LEVEL + 20, height, dtype=np.float32)
    return np.repeat(np.repeat(ramp[:, None, None], width, axis=1), 3, axis=2).astype(np.uint8)


def on_canvas(photo: Path, shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The photo centred (then shifted by ``shift`` pixels) on the 640x360 background."""
    import cv2

    image = cv2.imread(str(photo))
    if image is None:
        raise ValueError(f"cannot read {photo}")
    canvas = background()
    height, width = image.shape[:2]
    top = (FRAME_SIZE[1] - height) // 2 + shift[1]
    left = (FRAME_SIZE[0] - width) // 2 + shift[0]
    canvas[top : top + height, left : left + width] = image
    return canvas


def write_video(path: Path, segments: Sequence[tuple[np.ndarray, float]], fps: float = 15.0) -> Path:
    """An mp4v video: each (frame, seconds) segment repeated for that long."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, FRAME_SIZE)
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v videos here")
    for frame, seconds in segments:
        for _ in range(max(1, round(seconds * fps))):
            writer.write(frame)
    writer.release()
    return path


@dataclass(frozen=True)
class Gallery:
    model_dir: Path
    people: tuple[str, ...]
    probes: dict[str, Path]  # per enrolled person: a photo NOT used for enrollment, recognised on canvas
    strangers: tuple[Path, ...]  # photos of people never enrolled, with a face Haar sees


def build_gallery(faces_dir: Path, model_dir: Path, people: int = 3, photos: int = 3,
                  strangers: int = 3) -> Gallery:
    """Enroll ``photos`` photos each of the first ``people`` identities that have a usable held-out photo.

    A usable probe is a held-out photo that Haar finds on the canvas and the recogniser gives > 0.9 as
    the engine sees it (mirrored): the tests are about the pipeline, not about hard photos.
    """
    from smartlock.engine.gate import HaarFinder
    from smartlock.engine.vision import bgr_to_rgb, default_haar_path, prepare
    from smartlock.recognition.backends.base import get_backend
    from smartlock.recognition.recognizer import Recognizer

    recognizer = Recognizer.create(model_dir, get_backend())
    haar = HaarFinder(default_haar_path())

    def engine_view(photo: Path) -> np.ndarray:
        return prepare(on_canvas(photo), mirror=True)

    enrolled: list[str] = []
    candidates: dict[str, list[Path]] = {}
    for folder in sorted((faces_dir / "people").iterdir()):
        files = sorted(folder.glob("*.jpg"))
        if len(files) < photos + 1:
            continue
        outcomes = recognizer.enroll(folder.name, [(f.name, f.read_bytes()) for f in files[:photos]],
                                     multiple_faces="largest")
        if sum(o.enrolled for o in outcomes) < 2:
            if any(o.enrolled for o in outcomes):
                recognizer.remove_person(folder.name)
            continue
        enrolled.append(folder.name)
        candidates[folder.name] = files[photos:]
        if len(enrolled) == people:
            break
    probes: dict[str, Path] = {}
    for name in enrolled:
        for photo in candidates[name]:
            view = engine_view(photo)
            if not haar(view):
                continue
            faces = recognizer.recognize(bgr_to_rgb(view))
            if faces and faces[0].top.label == name and faces[0].top.confidence > 0.9:
                probes[name] = photo
                break
    chosen: list[Path] = []
    for folder in sorted((faces_dir / "strangers").iterdir()):
        photo = next(iter(sorted(folder.glob("*.jpg"))), None)
        if photo is None:
            continue
        view = engine_view(photo)
        faces = recognizer.recognize(bgr_to_rgb(view)) if haar(view) else []
        if len(faces) == 1 and faces[0].top.confidence < 0.3:
            chosen.append(photo)
            if len(chosen) == strangers:
                break
    if not probes or not chosen:
        raise RuntimeError("could not find a usable probe and stranger photo in the faces folder")
    return Gallery(model_dir, tuple(enrolled), probes, tuple(chosen))


# -- processes -------------------------------------------------------------------------------------


def url(port: int, path: str) -> str:
    return f"http://{LOOPBACK}:{port}{path}"


# The parts require their secrets by default: the camera's token and the recognition API's key, by port,
# so engine_args / secret_args can hand the files to the engine and collector.
CAMERA_TOKENS: dict[int, Path] = {}
API_KEYS: dict[int, Path] = {}


def secret_args(camera_port: int | None = None, api_port: int | None = None) -> list[str]:
    """--camera-token-file / --face-recognition-api-key-file for the camera and API started here."""
    args: list[str] = []
    if camera_port in CAMERA_TOKENS:
        args += ["--camera-token-file", str(CAMERA_TOKENS[camera_port])]
    if api_port in API_KEYS:
        args += ["--face-recognition-api-key-file", str(API_KEYS[api_port])]
    return args


@contextlib.contextmanager
def camera(video: Path, logs: Path, port: int | None = None) -> Iterator[int]:
    port = port or free_port()
    token = CAMERA_TOKENS[port] = logs / f"camera-{port}.token"  # the camera creates it (0600)
    try:
        with service_process(["camera", "--source", str(video), "--host", LOOPBACK, "--port", str(port),
                              "--token-file", str(token)],
                             url(port, "/health"), log_path=logs / f"camera-{port}.log"):
            yield port
    finally:
        CAMERA_TOKENS.pop(port, None)  # the port may serve something else later


@contextlib.contextmanager
def recognition(model_dir: Path, logs: Path, port: int | None = None) -> Iterator[int]:
    port = port or free_port()
    API_KEYS[port] = model_dir / "api-key"  # generated there (0600) on the first start
    try:
        with service_process(["recognition", "--model", str(model_dir), "--host", LOOPBACK, "--port",
                              str(port), "--threads", "1"],
                             url(port, "/health"),
                             log_path=logs / f"recognition-{port}-{time.time_ns()}.log"):
            yield port
    finally:
        API_KEYS.pop(port, None)


def start_recognition(model_dir: Path, logs: Path, port: int) -> subprocess.Popen:
    """A recognition API process that the caller stops (or kills); returns once it answers."""
    from tests.support import wait_until_up

    API_KEYS[port] = model_dir / "api-key"
    output = open(logs / f"recognition-{port}-{time.time_ns()}.log", "wb")  # noqa: SIM115
    popen = subprocess.Popen(
        [sys.executable, "-m", "smartlock", "recognition", "--model", str(model_dir), "--host", LOOPBACK,
         "--port", str(port), "--threads", "1"],
        stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output.close()  # the child has its own descriptor
    try:
        wait_until_up(url(port, "/health"), timeout=90, process=popen)
    except BaseException:
        stop_process(popen)
        raise
    return popen


@dataclass(frozen=True)
class Door:
    port: int
    secret_file: Path

    @property
    def unlock_url(self) -> str:
        return url(self.port, "/unlock")

    def client(self):
        from smartlock.door.auth import load_secret
        from smartlock.door.client import DoorClient

        return DoorClient(self.unlock_url, load_secret(self.secret_file), timeout=5.0)

    def unlocks(self, after_id: int = 0) -> list[dict]:
        """Accepted unlocks recorded by the door (its own audit), oldest first, with id > after_id."""
        with self.client() as client:
            events = client.events(limit=500)["events"]
        return sorted((e for e in events if e["action"] == "unlock" and e["outcome"] == "accepted"
                       and e["id"] > after_id), key=lambda e: e["id"])

    def last_id(self) -> int:
        with self.client() as client:
            events = client.events(limit=1)["events"]
        return events[0]["id"] if events else 0


@contextlib.contextmanager
def door(workdir: Path, logs: Path, lock_delay: float = 1.0) -> Iterator[Door]:
    from smartlock.door.auth import generate_secret

    port = free_port()
    secret_file = workdir / f"door-{port}.secret"
    generate_secret(secret_file)
    args = ["door", "--pin-factory", "mock", "--pin", "7", "--host", LOOPBACK, "--port", str(port),
            "--secret-file", str(secret_file), "--events-db", str(workdir / f"door-{port}.sqlite3"),
            "--lock-delay", str(lock_delay)]
    with service_process(args, url(port, "/health"), log_path=logs / f"door-{port}.log"):
        yield Door(port, secret_file)


# the engine's DEBUG line after each frame it processed (EngineStats.summary), with --log-level DEBUG
FRAME_COUNTS = re.compile(
    r"Frames: seen (?P<seen>\d+), without face (?P<without_face>\d+), stale (?P<stale>\d+), "
    r"analysed (?P<analysed>\d+), recognition errors (?P<recognition_errors>\d+), "
    r"door errors (?P<door_errors>\d+), unlocks (?P<unlocks>\d+)"
)
NO_FRAMES = dict.fromkeys(("seen", "without_face", "stale", "analysed", "recognition_errors", "door_errors",
                           "unlocks"), 0)


@dataclass
class Process:
    popen: subprocess.Popen
    output: Path

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace") if self.output.exists() else ""

    def frame_counts(self) -> list[dict[str, int]]:
        """Every frame-count line the engine logged so far, oldest first (needs --log-level DEBUG)."""
        return [{key: int(value) for key, value in match.groupdict().items()}
                for match in FRAME_COUNTS.finditer(self.text())]

    def counts(self) -> dict[str, int]:
        """The engine's latest frame counts (all 0 before its first processed frame)."""
        counts = self.frame_counts()
        return counts[-1] if counts else dict(NO_FRAMES)

    def wait_for(self, needle: str, timeout: float) -> bool:
        """Whether ``needle`` appears in the output within ``timeout`` s (False at once if it exits)."""
        with contextlib.suppress(AssertionError):
            wait_for(lambda: needle in self.text() or self.popen.poll() is not None, timeout, 0.1, needle)
        return needle in self.text()


@contextlib.contextmanager
def smartlock_process(args: Sequence[str], output: Path) -> Iterator[Process]:
    """``python -m smartlock ARGS`` with stdout+stderr to ``output``; stopped (SIGTERM) afterwards."""
    handle = open(output, "wb")  # noqa: SIM115 - closed below, after the process ends
    popen = subprocess.Popen([sys.executable, "-m", "smartlock", *args], stdout=handle,
                             stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield Process(popen, output)
    finally:
        stop_process(popen)
        handle.close()


def engine_args(camera_port: int, door_: Door, log_path: Path, *, api_port: int | None = None,
                model_dir: Path | None = None, extra: Sequence[str] = (), liveness: str = "off") -> list[str]:
    """`smartlock engine` against these parts. Liveness is off by default here: these videos show a
    photo on a wall, which liveness rightly refuses; the liveness tests turn it on."""
    source = (["--face-recognition-api-url", url(api_port, "/face-recognition")] if api_port
              else ["--model", str(model_dir)])
    return ["engine", "--camera-url", url(camera_port, "/stream.mjpg"), *source,
            *secret_args(camera_port, api_port),
            "--door-api-url", door_.unlock_url, "--door-secret-file", str(door_.secret_file),
            "--log-path", str(log_path), "--liveness", liveness, *extra]


# -- a light rig: a real engine / collector process without a real recogniser -------------------------


def face_photo(faces_dir: Path) -> Path:
    """The first enrolled-person photo in which Haar finds a face as the engine sees it (on the canvas,
    mirrored): the pre-filter lets its frames through to recognition."""
    from smartlock.engine.gate import HaarFinder
    from smartlock.engine.vision import default_haar_path, prepare

    haar = HaarFinder(default_haar_path())
    for folder in sorted((faces_dir / "people").iterdir()):
        for photo in sorted(folder.glob("*.jpg"))[:1]:
            if haar(prepare(on_canvas(photo), mirror=True)):
                return photo
    raise RuntimeError("no photo with a face Haar finds in the faces folder")


def face_video(faces_dir: Path, path: Path, seconds: float, fps: float = 5.0) -> Path:
    """A video of ``face_photo`` on the plain wall for ``seconds``."""
    return write_video(path, [(on_canvas(face_photo(faces_dir)), seconds)], fps=fps)


@dataclass
class FakeRecognition:
    """A recognition API (real uvicorn) that finds ``label`` at ``confidence`` in every image it gets."""

    url: str
    calls: list[int]


@contextlib.contextmanager
def fake_recognition(label: str = "alice", confidence: float = 0.99) -> Iterator[FakeRecognition]:
    calls: list[int] = []
    app = FastAPI()

    @app.post("/face-recognition")
    async def recognize(request: Request) -> dict:
        calls.append(len(await request.body()))
        box = {"left": 200.0, "top": 100.0, "right": 300.0, "bottom": 220.0}
        return {"faces": [{"top_prediction": {"label": label, "confidence": confidence},
                           "bounding_box": box, "all_predictions": None}]}

    with uvicorn_server(app) as base:
        yield FakeRecognition(f"{base}/face-recognition", calls)


def webhook_receiver() -> tuple[list[dict], FastAPI]:
    """An app receiving the engine's webhook events (``POST /events``) into the returned list."""
    received: list[dict] = []
    app = FastAPI()

    @app.post("/events")
    async def events(request: Request) -> dict:
        received.append(await request.json())
        return {}

    return received, app
