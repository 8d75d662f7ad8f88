"""Time to unlock (camera frame with the face -> door relay unlocked) and stranger acceptance per appearance.

    python benchmarks/time_to_unlock.py                  # both tables
    python benchmarks/time_to_unlock.py --part latency --runs 12
    python benchmarks/time_to_unlock.py --part strangers --strangers 300 --seconds 2

Latency: real processes on 127.0.0.1 — `smartlock camera` looping a video (cycles of 2.5-3.0 s of
background, then an enrolled person's held-out photo for 2 s), `smartlock recognition`, `smartlock door
--pin-factory mock`, and `smartlock engine` with the API or with --model. This script reads the camera's
stream too and takes the X-Timestamp (capture time) of the first frame of each appearance; the door's
audit gives the time the relay was switched (recorded right after the pin changed). The engine runs with
--block-time 2 so that each appearance is one run; that does not change the latency.

Latency configurations: the defaults (the SCRFD gate on every camera frame, recognition of frames with a
usable face up to --max-fps, K=2 frames of one face track), and the seed's pre-filter for comparison
(--haar-file-path: the Haar cascade on frames sampled at --fps 2, the engine before the gate).

Strangers: in-process, the engine's own code path (mirror, SCRFD gate, a gallery of
--people enrolled people, UnlockPolicy). Each appearance is --seconds of frames at 10 analysed frames/s
(the engine's burst rate), each frame the stranger's photo on the 640x360 canvas with a small random
shift, scale, rotation, brightness change and noise, JPEG-compressed as the camera does. The seed's rule
is K=1 on frames sampled at 2 fps; ours analyses every frame of the burst, so K=1 at 10 fps is shown too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smartlock.config import faces_dir  # noqa: E402
from smartlock.engine.policy import UnlockPolicy  # noqa: E402
from smartlock.recognition.schemas import Face  # noqa: E402
from tests.engine import system  # noqa: E402

BURST_RATE = 10.0  # analysed frames per second while a face is in view (engine default --max-fps)
# Background lengths vary per cycle: the block time restarts the engine's idle sampling clock after each
# unlock, so with a fixed cycle every run would catch the face at the same sampling phase.
BACKGROUND_SECONDS = (2.5, 3.0)
FACE_SECONDS = 2.0
CYCLES = 9  # appearances in the looped video
VIDEO_FPS = 25.0
CODE_BASE, CODE_STEP = 20, 25  # grey levels of the cycle marker (cycles 0-8)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# -- latency -----------------------------------------------------------------------------------------


class OnsetWatcher:
    """Reads the camera's MJPEG stream like any client; records the capture time of each appearance's
    first face frame (a frame that differs from the plain background, after one that did not)."""

    def __init__(self, stream_url: str, token_file: Path, marked: bool = False) -> None:
        """``marked``: an appearance starts where the frames carry a white 8x8 corner (the rendered
        approaches, whose hallway is not the plain wall), else where a frame leaves the plain wall."""
        from smartlock.camera.signing import viewing_token
        from smartlock.engine.frames import MjpegStream

        token = viewing_token(token_file.read_text().strip())  # watch like a person, with the viewing token
        self._stream = MjpegStream(stream_url, headers={"Authorization": f"Bearer {token}"})
        self._background = system.background().astype(np.int16)
        self._marked = marked
        self.onsets: list[float] = []
        self.codes: list[int | None] = []  # per onset, the cycle number a marked frame carries (else None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        showing = False
        while not self._stop.is_set():
            item = self._stream.read()
            if item is None:
                return
            image, captured = item
            if self._marked:
                face = float(image[:8, :8].mean()) > 200.0
            else:
                face = float(np.abs(image.astype(np.int16) - self._background).mean()) > 8.0
            if face and not showing:
                self.onsets.append(captured if captured is not None else time.time())
                self.codes.append(read_cycle(image) if self._marked else None)
            showing = face

    def close(self) -> None:
        self._stop.set()
        self._stream.close()
        self._thread.join(5)


def mark_cycle(frame: np.ndarray, cycle: int) -> None:
    """The onset marker (a white 8x8 corner the face never reaches) and, below it, the cycle number as a
    grey level JPEG cannot blur into the next one's."""
    frame[:8, :8] = 255
    frame[8:16, :8] = CODE_BASE + CODE_STEP * cycle


def read_cycle(image: np.ndarray) -> int:
    return round((float(image[8:16, :8].mean()) - CODE_BASE) / CODE_STEP)


def measure(label: str, make_args, door: system.Door, watcher: OnsetWatcher,
            workdir: Path, runs: int, face_seconds: float = FACE_SECONDS) -> dict:
    log_path = workdir / f"engine-{time.time_ns()}"
    log_path.mkdir()
    start_id = door.last_id()
    engine_cmd = [*make_args(log_path), "--block-time", "2"]
    latencies: list[float] = []
    cycles: list[int | None] = []  # the cycle of each latency (marked videos)
    missed = 0
    with system.smartlock_process(engine_cmd, log_path / "stdout.txt") as engine:
        if not engine.wait_for("Video stream opened", timeout=90):
            raise RuntimeError(f"{label}: engine did not start:\n{engine.text()[-2000:]}")
        warm = time.time() + 1.0
        counted = 0
        cycle = BACKGROUND_SECONDS[1] + face_seconds
        deadline = time.monotonic() + runs * cycle * 2 + 30
        while counted < runs and time.monotonic() < deadline:
            time.sleep(0.5)
            onsets = [t for t in watcher.onsets if t > warm]
            counted = len([t for t in onsets if time.time() - t > cycle - 0.5])
        count = min(len(watcher.onsets), len(watcher.codes))  # the watcher appends to both, in turn
        marked = [(t, code) for t, code in zip(watcher.onsets[:count], watcher.codes[:count], strict=True)
                  if t > warm][:runs]
        onsets = [t for t, _ in marked]
        unlocks = [datetime.fromisoformat(e["time"]).timestamp() for e in door.unlocks(start_id)]
    for index, onset in enumerate(onsets):
        end = onsets[index + 1] if index + 1 < len(onsets) else onset + BACKGROUND_SECONDS[1] + face_seconds
        hits = [u for u in unlocks if onset <= u < end]
        if hits:
            latencies.append(hits[0] - onset)
            cycles.append(marked[index][1])
        else:
            missed += 1
    return {"label": label, "runs": len(onsets), "missed": missed, "latencies": latencies, "cycles": cycles}


def rig(prefix: str) -> tuple[Path, Path, system.Gallery]:
    """A private work folder, its logs folder, and a gallery of 3 people x 3 photos from the faces folder."""
    faces = faces_dir()
    if faces is None:
        sys.exit("face photos not found: set SMARTLOCK_FACES_DIR or put them at ../shared/faces")
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    logs = workdir / "logs"
    logs.mkdir()
    return workdir, logs, system.build_gallery(faces, workdir / "model", people=3, photos=3)


def latency_table(runs: int, seed: int) -> str:
    workdir, logs, gallery = rig("time-to-unlock-")
    name = next(iter(gallery.probes))
    rng = np.random.default_rng(seed)
    face = system.on_canvas(gallery.probes[name])
    segments = []
    for _ in range(CYCLES):
        segments += [(system.background(), float(rng.uniform(*BACKGROUND_SECONDS))), (face, FACE_SECONDS)]
    video = system.write_video(workdir / "loop.mp4", segments, fps=VIDEO_FPS)
    from smartlock.engine.vision import default_haar_path

    haar = ["--haar-file-path", str(default_haar_path())]
    configs = [
        ("API", "defaults (gate on every frame, K=2 of one track)", []),
        ("API", "--min-frames 1", ["--min-frames", "1"]),
        ("API", "seed pre-filter: Haar at --fps 2, K=2", haar),
        ("--model", "defaults (gate on every frame, K=2 of one track)", []),
        ("--model", "seed pre-filter: Haar at --fps 2, K=2", haar),
    ]
    results = []
    with system.door(workdir, logs) as door, system.recognition(gallery.model_dir, logs) as api_port, \
            system.camera(video, logs) as camera_port:
        watcher = OnsetWatcher(system.url(camera_port, "/stream.mjpg"), system.CAMERA_TOKENS[camera_port])
        try:
            for mode, label, extra in configs:
                def make_args(log_path: Path, mode: str = mode, extra: list[str] = extra) -> list[str]:
                    return system.engine_args(
                        camera_port, door, log_path, api_port=api_port if mode == "API" else None,
                        model_dir=None if mode == "API" else gallery.model_dir, extra=extra)

                result = measure(label, make_args, door, watcher, workdir, runs)
                result["mode"] = mode
                results.append(result)
                print(f"  {mode:8} {label}: {format_row(result)}", file=sys.stderr)
        finally:
            watcher.close()
    lines = [
        "| recognition | settings | unlocked / runs | median (s) | p95 (s) | min (s) | max (s) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        lines.append(f"| {result['mode']} | {result['label']} | {format_row(result)} |")
    return "\n".join(lines)


def liveness_table(runs: int, seed: int) -> str:
    """An enrolled person's rendered 3D head walking up to the door (benchmarks/liveness_bench), through the
    real camera, recognition API, door and engine, with --liveness on and off: from the first frame of the
    approach (the head ~2 m away, small) to the relay, and from the approach's first frame with a face the
    engine's gate finds usable (40 px and up: the walk before it no engine setting can shorten)."""

    from benchmarks.liveness_bench import load_photo, scenes
    from benchmarks.liveness_bench.unlock import first_usable

    workdir, logs, gallery = rig("time-to-unlock-live-")
    photos = [p for p in map(load_photo, gallery.probes.values()) if p is not None]
    if not photos:
        sys.exit("no enrolled person's held-out photo is large enough to render")
    rng = np.random.default_rng(seed)
    wall = scenes.background(np.random.default_rng(seed))
    frames: list[np.ndarray] = []
    usable_at: list[float] = []  # per cycle: seconds from the approach's first frame to its first usable face
    for cycle in range(CYCLES):
        hallway = int(rng.uniform(*BACKGROUND_SECONDS) * scenes.FPS)
        frames += [scenes.finish(wall, rng, 1.0) for _ in range(hallway)]
        # the enrolled people take turns (one held-out photo each): not one face's luck
        approach = list(scenes.frames("genuine-approach", photos[cycle % len(photos)], seed + cycle, 60))
        usable_at.append(first_usable(approach))
        for frame in approach:
            mark_cycle(frame, cycle)
            frames.append(frame)
    video = system.write_video(workdir / "approach.mp4", [(frame, 1 / scenes.FPS) for frame in frames],
                               fps=scenes.FPS)
    results = []
    with system.door(workdir, logs) as door, system.recognition(gallery.model_dir, logs) as api_port, \
            system.camera(video, logs) as camera_port:
        watcher = OnsetWatcher(system.url(camera_port, "/stream.mjpg"), system.CAMERA_TOKENS[camera_port],
                               marked=True)
        try:
            # API: the engine calling the recognition API over HTTP; --model: recognition in the engine's
            # process (what `up` runs, as `vision`), whose face embeddings also split a track on a face swap
            for mode, liveness in (("API", "on"), ("API", "off"), ("--model", "on"), ("--model", "off")):
                def make_args(log_path: Path, mode: str = mode, liveness: str = liveness) -> list[str]:
                    return system.engine_args(camera_port, door, log_path,
                                              api_port=api_port if mode == "API" else None,
                                              model_dir=None if mode == "API" else gallery.model_dir,
                                              liveness=liveness)

                result = measure(f"--liveness {liveness}", make_args, door, watcher, workdir, runs,
                                 face_seconds=60 / scenes.FPS)
                result["mode"] = mode
                result["from_usable"] = [latency - usable_at[cycle] for latency, cycle
                                         in zip(result["latencies"], result["cycles"], strict=True)
                                         if cycle is not None and 0 <= cycle < CYCLES]
                results.append(result)
                print(f"  {mode:8} --liveness {liveness}: {format_row(result)}", file=sys.stderr)
        finally:
            watcher.close()
    lines = ["| recognition | liveness | unlocked / approaches | median (s) | p95 (s) | min (s) | max (s) "
             "| from a usable face: median (s) | p95 (s) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {result['mode']} | {result['label']} | {format_row(result)} | "
              f"{spread(result['from_usable'])} |" for result in results]
    walk = [value for value in usable_at if value == value]
    lines.append("\nFirst usable face (40+ px) after the approach's first frame: median "
                 f"{statistics.median(walk):.2f} s over the video's {len(walk)} approaches (SCRFD at 320)")
    return "\n".join(lines)


def spread(values: list[float]) -> str:
    if not values:
        return "- | -"
    return f"{statistics.median(values):.3f} | {percentile(values, 95):.3f}"


def format_row(result: dict) -> str:
    values = result["latencies"]
    unlocked = f"{len(values)} / {result['runs']}"
    if not values:
        return f"{unlocked} | - | - | - | -"
    return (f"{unlocked} | {statistics.median(values):.3f} | {percentile(values, 95):.3f} | "
            f"{min(values):.3f} | {max(values):.3f}")


# -- strangers ----------------------------------------------------------------------------------------


def jittered_frames(photo: Path, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` camera frames of one appearance: the photo on the canvas, moving and flickering a little."""
    import cv2

    base = system.on_canvas(photo)
    width, height = system.FRAME_SIZE
    frames = []
    for _ in range(count):
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-4, 4), rng.uniform(0.92, 1.08))
        matrix[:, 2] += rng.integers(-10, 11, size=2)
        warped = cv2.warpAffine(base, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
        noisy = warped.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.normal(0, 3, warped.shape)
        frame = np.clip(noisy, 0, 255).astype(np.uint8)
        _, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
        frames.append(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
    return frames


def score_appearance(recognizer, gate, photo: Path, count: int, rng: np.random.Generator) -> list[list[Face]]:
    """Per analysed frame, the faces the engine would see (empty when the gate finds no usable face)."""
    from smartlock.engine.vision import bgr_to_rgb, prepare

    out = []
    for frame in jittered_frames(photo, count, rng):
        view = prepare(frame, mirror=True)
        if not gate(view):
            out.append([])
            continue
        faces = recognizer.recognize(bgr_to_rgb(view))
        out.append([f.to_face() for f in faces if f.top is not None])
    return out


THRESHOLDS = (0.2, 0.5, 0.8)
RULES = [  # (name, K, window, analysed frames per second)
    ("seed: K=1 at 2 fps", 1, 0.0, 2.0),
    ("K=1 at 10 fps", 1, 0.0, BURST_RATE),
    ("K=2 in 1.0 s at 10 fps", 2, 1.0, BURST_RATE),
    ("K=2 in 1.5 s at 10 fps (default)", 2, 1.5, BURST_RATE),
    ("K=3 in 1.5 s at 10 fps", 3, 1.5, BURST_RATE),
]


def decide(frames: list[list[Face]], threshold: float, k: int, window: float,
           rate: float) -> tuple[float, str] | None:
    """(seconds from the first frame, person) of the first unlock under a rule; None if it never unlocks."""
    step = max(1, round(BURST_RATE / rate))
    policy = UnlockPolicy(threshold, k, window)
    for index in range(0, len(frames), step):
        decision = policy.observe(index / BURST_RATE, frames[index])
        if decision is not None:
            return index / BURST_RATE, decision.label
    return None


def sample(items: list, count: int, rng: np.random.Generator) -> list:
    return [items[i] for i in sorted(rng.choice(len(items), size=min(count, len(items)), replace=False))]


def strangers_table(n_people: int, n_strangers: int, n_genuine: int, seconds: float, seed: int,
                    backend: str) -> str:
    from smartlock.recognition.backends.base import get_backend
    from smartlock.recognition.recognizer import Recognizer

    faces = faces_dir()
    if faces is None:
        sys.exit("face photos not found: set SMARTLOCK_FACES_DIR or put them at ../shared/faces")
    rng = np.random.default_rng(seed)
    model_dir = Path(tempfile.mkdtemp(prefix="strangers-")) / "model"
    recognizer = Recognizer.create(model_dir, get_backend(backend))
    people = sample([p for p in sorted((faces / "people").iterdir()) if len(list(p.glob("*.jpg"))) >= 5],
                    n_people, rng)
    held_out: list[tuple[str, Path]] = []
    photos = {folder.name: sorted(folder.glob("*.jpg")) for folder in people}
    enrollment = {name: [(p.name, p.read_bytes()) for p in files[:3]] for name, files in photos.items()}
    recognizer.enroll_many(enrollment, multiple_faces="largest")
    for name, files in photos.items():
        held_out += [(name, p) for p in files[3:]]
    enrolled = set(recognizer.people())
    haar = usable_face_gate()
    count = round(seconds * BURST_RATE)

    strangers = sample(sorted(p for p in (faces / "strangers").rglob("*.jpg")), n_strangers, rng)
    genuine = [(name, photo) for name, photo in sample(held_out, n_genuine, rng) if name in enrolled]
    started = time.monotonic()
    stranger_frames = []
    for index, photo in enumerate(strangers, 1):
        stranger_frames.append(score_appearance(recognizer, haar, photo, count, rng))
        if index % 50 == 0:
            elapsed = time.monotonic() - started
            print(f"  strangers {index}/{len(strangers)} ({elapsed:.0f} s)", file=sys.stderr, flush=True)
    genuine_frames = [(name, score_appearance(recognizer, haar, photo, count, rng))
                      for name, photo in genuine]
    seen = sum(any(frame) for appearance in stranger_frames for frame in appearance)
    lines = [
        f"{len(enrolled)} people enrolled (3 photos each, {backend}); {len(strangers)} stranger appearances "
        f"and {len(genuine_frames)} genuine appearances (held-out photos of enrolled people), {seconds:g} s "
        f"each at {BURST_RATE:g} analysed frames/s; {seen} of {len(strangers) * count} stranger frames had a "
        f"usable face under the gate.",
        "",
        "| threshold | rule | strangers accepted | genuine accepted | genuine let in as someone else | "
        "genuine: median / p95 s after first frame |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for threshold in THRESHOLDS:
        for name, k, window, rate in RULES:
            accepted = sum(decide(a, threshold, k, window, rate) is not None for a in stranger_frames)
            outcomes = [(person, decide(a, threshold, k, window, rate)) for person, a in genuine_frames]
            times = [o[0] for person, o in outcomes if o is not None and o[1] == person]
            wrong = sum(o is not None and o[1] != person for person, o in outcomes)
            timing = f"{statistics.median(times):.2f} / {percentile(times, 95):.2f}" if times else "-"
            stranger_rate = 100 * accepted / max(1, len(stranger_frames))
            genuine_rate = 100 * len(times) / max(1, len(genuine_frames))
            lines.append(
                f"| {threshold} | {name} | {accepted} / {len(stranger_frames)} ({stranger_rate:.2f} %) | "
                f"{len(times)} / {len(genuine_frames)} ({genuine_rate:.1f} %) | {wrong} | {timing} |"
            )
    lines += ["", "Stranger frames above the threshold (per analysed frame with a face):", ""]
    for threshold in THRESHOLDS:
        above = sum(any(f.confidence > threshold for f in frame) for a in stranger_frames for frame in a)
        lines.append(f"- {threshold}: {above} / {seen} ({100 * above / max(1, seen):.2f} %)")
    lines += ["", "Strangers accepted at 0.8 under K=1 (10 fps), with the frames that cleared it:", ""]
    if not any(f.confidence > 0.8 for a in stranger_frames for frame in a for f in frame):
        lines.append("- none")
    for photo, appearance in zip(strangers, stranger_frames, strict=True):
        hits = [f for frame in appearance for f in frame if f.confidence > 0.8]
        if hits:
            labels = sorted({f.label for f in hits})
            most = max(len(frame) for frame in appearance)
            lines.append(f"- {photo.parent.name} -> {', '.join(labels)}: {len(hits)} of {count} frames, "
                         f"median confidence {statistics.median(f.confidence for f in hits):.3f}; "
                         f"{most} face(s) in the photo")
    video = faces / "video" / "pedestrians.mp4"
    if video.exists():
        lines += ["", f"Real video, nobody enrolled: {video.name} (people walking toward the camera), "
                  f"analysed at {BURST_RATE:g} frames/s:", ""]
        appearance = video_appearance(recognizer, haar, video)
        for threshold in THRESHOLDS:
            above = sum(any(f.confidence > threshold for f in frame) for frame in appearance)
            verdicts = ", ".join(
                f"{name.split(' at ')[0]}: "
                f"{'refused' if decide(appearance, threshold, k, window, rate) is None else 'ACCEPTED'}"
                for name, k, window, rate in RULES)
            lines.append(f"- {threshold}: {above} of {len(appearance)} frames above; {verdicts}")
    return "\n".join(lines)


def usable_face_gate():
    """The engine's default gate as a yes/no test (each frame judged on its own)."""
    from smartlock.engine.gate import build_gate
    from smartlock.engine.settings import DEFAULT_GATE_SIZE

    gate = build_gate(None, DEFAULT_GATE_SIZE)
    clock = iter(range(0, 10**9, 10))  # far apart: the gate never skips a frame as unchanged
    return lambda view: bool(gate(view, float(next(clock))).faces)


def video_appearance(recognizer, haar, path: Path) -> list[list[Face]]:
    """The frames of a real video as the engine would analyse them at the burst rate."""
    import cv2

    from smartlock.engine.vision import bgr_to_rgb, prepare

    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    out = []
    for index in range(int(len(frames) / fps * BURST_RATE)):
        view = prepare(frames[min(len(frames) - 1, round(index * fps / BURST_RATE))], mirror=True)
        faces = recognizer.recognize(bgr_to_rgb(view)) if haar(view) else []
        out.append([f.to_face() for f in faces if f.top is not None])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("latency", "liveness", "strangers", "all"), default="all")
    parser.add_argument("--runs", type=int, default=12, help="appearances per latency configuration")
    parser.add_argument("--people", type=int, default=100, help="people enrolled for the stranger table")
    parser.add_argument("--backend", default="arcface", help="recognition backend for the stranger table")
    parser.add_argument("--strangers", type=int, default=300, help="stranger appearances")
    parser.add_argument("--genuine", type=int, default=60, help="genuine appearances")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one appearance")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.part in ("latency", "all"):
        table = latency_table(args.runs, args.seed)
        print("\nTime to unlock: first camera frame showing the face -> door relay unlocked\n")
        print(table)
    if args.part in ("liveness", "all"):
        table = liveness_table(args.runs, args.seed)
        print("\nTime to unlock for a genuine approach (rendered 3D head walking up), liveness on and off\n")
        print(table)
    if args.part in ("strangers", "all"):
        table = strangers_table(args.people, args.strangers, args.genuine, args.seconds, args.seed,
                                args.backend)
        print("\nAcceptance per appearance\n")
        print(table)


if __name__ == "__main__":
    main()
