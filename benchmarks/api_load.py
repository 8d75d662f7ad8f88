"""Load on the Face Recognition API: 1, 4 and 8 clients posting 640x360 JPEG frames, vs. in-process speed.

    .venv/bin/python benchmarks/api_load.py                       # 20 s per level, median of 3 rounds
    .venv/bin/python benchmarks/api_load.py --duration 3 --repeats 1  # quick look

A gallery of --people people (3 photos each, largest face, as `smartlock train` does) is built from
../shared/faces in a temporary folder (or --model is used). The frames are other photos of those people,
each pasted on a 640x360 background and kept only if the backend finds exactly one face in it.

Each round measures, on the same frames:
  * in-process: Recognizer.recognize_bytes in a loop in this process (one thread, as a single engine
    would call it), while the server is idle;
  * over HTTP: `smartlock recognition` as its own process on 127.0.0.1 (default --threads: one
    recognition per CPU, one onnxruntime intra-op thread each) and N client threads, each with a
    keep-alive httpx client posting frames back to back (multipart field `image`, as the seed's engine).
Errors are non-200 answers, exceptions, and answers whose top label is not the frame's person.
CPU ms/frame is the CPU time the recognising process (this one in-process, the server over HTTP) spent
per frame: unlike frames/s it hardly moves when other programs load the machine, so it shows the HTTP
layer's own cost. Target: with 4 clients, frames/s >= 90% of in-process, and no errors.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import numpy as np
from _common import ROOT, require_faces  # also puts the repository on sys.path
from PIL import Image

from smartlock.recognition.backends.base import get_backend
from smartlock.recognition.recognizer import Recognizer
from smartlock.recognition.settings import GENERATED_KEY_FILE
from smartlock.service import read_secret
from tests.support import free_port, stop_process, wait_until_up

FRAME_SIZE = (640, 360)


@dataclass(frozen=True)
class Frame:
    label: str
    jpeg: bytes


@dataclass(frozen=True)
class Result:
    frames_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_ms: float = float("nan")  # CPU time per frame of the recognising process (robust to a busy machine)


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def build_gallery(model_dir: Path, faces: Path, people: int, backend: str) -> tuple[Recognizer, dict]:
    recognizer = Recognizer.create(model_dir, get_backend(backend))
    folders = [p for p in sorted((faces / "people").iterdir()) if len(list(p.glob("*.jpg"))) >= 6][:people]
    probes = {}
    for folder in folders:
        photos = sorted(folder.glob("*.jpg"))
        enrolled = [(p.name, p.read_bytes()) for p in photos[:3]]
        recognizer.enroll(folder.name, enrolled, multiple_faces="largest")
        probes[folder.name] = photos[3:]
    return recognizer, probes


def make_frames(recognizer: Recognizer, probes: dict[str, list[Path]], count: int) -> list[Frame]:
    """640x360 JPEGs, one face each (checked), the photo pasted on a noisy gray background."""
    rng = np.random.default_rng(7)
    frames: list[Frame] = []
    candidates = [(name, photo) for name, photos in probes.items() for photo in photos]
    for name, photo in candidates:
        background = rng.integers(90, 140, size=(FRAME_SIZE[1], FRAME_SIZE[0], 3), dtype=np.uint8)
        canvas = Image.fromarray(background)
        face = Image.open(photo).convert("RGB").resize((300, 300))
        canvas.paste(face, (int(rng.integers(0, FRAME_SIZE[0] - 300)), 30))
        buffer = io.BytesIO()
        canvas.save(buffer, "JPEG", quality=85)
        found = recognizer.recognize_bytes(buffer.getvalue())
        if len(found) == 1 and found[0].top is not None and found[0].top.label == name:
            frames.append(Frame(name, buffer.getvalue()))
        if len(frames) == count:
            break
    if not frames:
        sys.exit("no usable frame: could not find photos with exactly one recognised face")
    return frames


def in_process(recognizer: Recognizer, frames: list[Frame], duration: float) -> Result:
    latencies = []
    errors = 0
    deadline = time.perf_counter() + duration
    i = 0
    started, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() < deadline:
        frame = frames[i % len(frames)]
        t0 = time.perf_counter()
        faces = recognizer.recognize_bytes(frame.jpeg)
        latencies.append(time.perf_counter() - t0)
        errors += not faces or faces[0].top is None or faces[0].top.label != frame.label
        i += 1
    result = _result(latencies, errors, time.perf_counter() - started)
    return replace(result, cpu_ms=(time.process_time() - cpu) * 1000 / max(1, len(latencies)))


def over_http(url: str, server_pid: int, frames: list[Frame], clients: int, duration: float,
              headers: dict[str, str]) -> Result:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(offset: int) -> None:
        mine, bad = [], 0
        with httpx.Client(timeout=30, headers=headers) as http:
            start.wait()
            i = offset
            while time.perf_counter() < deadline[0]:
                frame = frames[i % len(frames)]
                i += 1
                t0 = time.perf_counter()
                try:
                    response = http.post(url, files={"image": ("frame.jpg", frame.jpeg, "image/jpeg")})
                    faces = response.json()["faces"] if response.status_code == 200 else None
                    ok = bool(faces) and faces[0]["top_prediction"]["label"] == frame.label
                except (httpx.HTTPError, ValueError, KeyError):
                    ok = False
                mine.append(time.perf_counter() - t0)
                bad += not ok
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client, args=(k * 7,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + duration
    started, cpu = time.perf_counter(), process_cpu_seconds(server_pid)
    start.wait()
    for thread in threads:
        thread.join(timeout=duration + 60)
    result = _result(latencies, errors[0], time.perf_counter() - started)
    return replace(result, cpu_ms=(process_cpu_seconds(server_pid) - cpu) * 1000 / max(1, len(latencies)))


def _result(latencies: list[float], errors: int, elapsed: float) -> Result:
    ordered = sorted(latencies) or [float("nan")]
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    p50 = statistics.median(ordered)
    return Result(len(latencies) / elapsed, p50 * 1000, p99 * 1000, errors, len(latencies))


@contextlib.contextmanager
def server(model_dir: Path, threads: int | None, log: Path) -> Iterator[tuple[str, int, dict[str, str]]]:
    """The service as installed: with the API key it generates in the model folder (yielded as headers)."""
    port = free_port()
    args = [sys.executable, "-m", "smartlock", "recognition", "--model", str(model_dir),
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"]
    if threads:
        args += ["--threads", str(threads)]
    with open(log, "wb") as output:
        process = subprocess.Popen(args, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_until_up(f"http://127.0.0.1:{port}/health", timeout=120, process=process)
            key = read_secret(model_dir / GENERATED_KEY_FILE, "API key file")
            yield f"http://127.0.0.1:{port}/face-recognition", process.pid, {"X-API-Key": key}
        finally:
            stop_process(process)


def median_result(results: list[Result]) -> Result:
    return Result(
        statistics.median(r.frames_per_s for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
        sum(r.requests for r in results),
        statistics.median(r.cpu_ms for r in results),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measurement (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the table shows medians (default 3)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--people", type=int, default=10, help="people in the gallery (default 10)")
    parser.add_argument("--backend", default="arcface")
    parser.add_argument("--threads", type=int, default=None, help="the server's --threads (default: its own)")
    parser.add_argument("--frames", type=int, default=20, help="distinct frames to cycle through")
    args = parser.parse_args()
    faces = require_faces()

    with tempfile.TemporaryDirectory(prefix="api-load-") as work:
        model_dir = Path(work) / "model"
        recognizer, probes = build_gallery(model_dir, faces, args.people, args.backend)
        frames = make_frames(recognizer, probes, args.frames)
        print(f"{len(frames)} frames {FRAME_SIZE[0]}x{FRAME_SIZE[1]}, {len(probes)} people enrolled, "
              f"backend {args.backend}, {os.cpu_count()} CPUs, {args.duration:g} s per measurement, "
              f"{args.repeats} round(s)", flush=True)
        local: list[Result] = []
        remote: dict[int, list[Result]] = {n: [] for n in args.clients}
        with server(model_dir, args.threads, Path(work) / "server.log") as (url, pid, headers):
            for frame in frames[:4]:  # warm-up: first-run allocations of both sides
                httpx.post(url, files={"image": frame.jpeg}, headers=headers, timeout=60)
                recognizer.recognize_bytes(frame.jpeg)
            for round_no in range(1, args.repeats + 1):
                local.append(in_process(recognizer, frames, args.duration))
                print(f"round {round_no}: in-process {local[-1].frames_per_s:.1f} frames/s", flush=True)
                for clients in args.clients:
                    remote[clients].append(over_http(url, pid, frames, clients, args.duration, headers))
                    print(f"round {round_no}: {clients} client(s) {remote[clients][-1].frames_per_s:.1f} "
                          f"frames/s, {remote[clients][-1].errors} errors", flush=True)

    base = median_result(local)
    print()
    print("| mode | frames/s | p50 ms | p99 ms | errors / requests | vs in-process | CPU ms/frame |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| in-process (1 thread) | {base.frames_per_s:.1f} | {base.p50_ms:.1f} | {base.p99_ms:.1f} | "
          f"{base.errors} / {base.requests} | 100% | {base.cpu_ms:.1f} |")
    for clients, results in remote.items():
        r = median_result(results)
        share = 100 * r.frames_per_s / base.frames_per_s
        print(f"| HTTP, {clients} client{'s' if clients > 1 else ''} | {r.frames_per_s:.1f} | "
              f"{r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} / {r.requests} | {share:.0f}% | "
              f"{r.cpu_ms:.1f} |")
    if 4 in remote:
        four = median_result(remote[4])
        ratio = four.frames_per_s / base.frames_per_s
        verdict = "MET" if ratio >= 0.9 and four.errors == 0 else "NOT MET"
        print(f"\ntarget (4 clients >= 90% of in-process, zero errors): {verdict} "
              f"({100 * ratio:.0f}%, {four.errors} errors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
