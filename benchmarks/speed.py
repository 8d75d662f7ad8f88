"""Speed of detect + embed on 640x360 frames with 1 and 3 faces, per backend, one and two threads; and
one frame through the recognition API over HTTP against the seed's stack.

    .venv/bin/python benchmarks/speed.py [--backend arcface dlib] [--runs 30]
    .venv/bin/python benchmarks/speed.py --api [--threads 1 2] [--runs 30] [--rounds 3] [--detection-size 320]

--api: the 1-face frame is written as a JPEG, a real `smartlock recognition` server (arcface, a gallery
of 5 people) starts on 127.0.0.1 with SMARTLOCK_ARCFACE_THREADS=T, and --runs sequential POST
/face-recognition of that JPEG over one keep-alive httpx client are timed (median, after warm-up),
alternating --rounds times with the seed's stack (../shared/seedstack: facenet-pytorch MTCNN +
InceptionResnetV1 in /tmp/seed-venv, built by its setup.sh on first use) timing the same JPEG with T
torch threads, so both see the same load. Prints both and the ratio (issue 11's target: >= 6x).

Frames are made from photos of ../shared/faces pasted on a textured background (faces about 100-120
px). Each backend and thread count runs in its own process, so the peak memory (max RSS) is that
backend's alone. Prints the median and 90th percentile per frame.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, dataset, installed_backends, require_faces

FRAME = (360, 640)


def frames(root: Path) -> dict[int, np.ndarray]:
    import cv2

    from smartlock.recognition.images import load_image

    people, _ = dataset(root)
    names = sorted(people)
    rng = np.random.default_rng(0)
    background = rng.integers(60, 140, (*FRAME, 3), dtype=np.uint8)
    background = cv2.GaussianBlur(background, (0, 0), 6)
    result = {}
    for count in (1, 3):
        frame = background.copy()
        width = 250 if count == 1 else 200
        for k in range(count):
            photo = load_image(people[names[10 * k + 1]][0])
            photo = cv2.resize(photo, (width, width), interpolation=cv2.INTER_AREA)
            x = (FRAME[1] - width) // 2 if count == 1 else 10 + k * (width + 10)
            y = (FRAME[0] - width) // 2
            frame[y : y + width, x : x + width] = photo
        result[count] = frame
    return result


def worker(backend_name: str, threads: int, runs: int) -> dict:
    """Runs in its own process: time detect_and_embed and report the peak memory."""
    from smartlock.recognition.backends.base import get_backend

    root = require_faces()
    options = {"threads": threads} if backend_name == "arcface" else {}
    started = time.perf_counter()
    backend = get_backend(backend_name, **options)
    load_seconds = time.perf_counter() - started
    results = {"load_s": load_seconds, "frames": {}}
    for count, frame in frames(root).items():
        for _ in range(3):
            found = backend.detect_and_embed(frame)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            found = backend.detect_and_embed(frame)
            times.append(time.perf_counter() - started)
        results["frames"][str(count)] = {
            "found": len(found),
            "median_ms": 1000 * float(np.median(times)),
            "p90_ms": 1000 * float(np.quantile(times, 0.9)),
        }
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def seed_python(seedstack: Path) -> Path:
    """/tmp/seed-venv's python, built by the seed stack's setup.sh if missing (about 2 minutes, once)."""
    python = Path("/tmp/seed-venv/bin/python")
    if not python.exists():
        print("building the seed's stack in /tmp/seed-venv (setup.sh, about 2 minutes)...", flush=True)
        subprocess.run(["bash", str(seedstack / "setup.sh")], check=True, stdout=subprocess.DEVNULL)
    return python


def seed_median_ms(seedstack: Path, jpeg: Path, threads: int) -> tuple[float, int]:
    """The seed's stack on ``jpeg`` with ``threads`` torch threads: (median ms, faces found)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    output = subprocess.run([str(seed_python(seedstack)), str(seedstack / "seed_speed.py"), str(jpeg),
                             str(threads)], capture_output=True, text=True, check=True, env=env).stdout
    match = re.search(r"faces (\d+)\s+median ([\d.]+) ms", output)
    if match is None:
        raise RuntimeError(f"unexpected output of seed_speed.py: {output!r}")
    return float(match.group(2)), int(match.group(1))


def api_vs_seed(jpeg: bytes, jpeg_path: Path, model_dir: Path, threads: int, runs: int, rounds: int,
                seedstack: Path, log: Path) -> dict:
    """A real `smartlock recognition` (intra-op ``threads``) answering sequential POSTs of ``jpeg`` on one
    keep-alive connection, and the seed's stack on the same file, alternating for ``rounds`` rounds (so
    both see the same load): medians of the rounds' medians, and the ratio per round."""
    import httpx
    from api_load import server

    os.environ["SMARTLOCK_ARCFACE_THREADS"] = str(threads)  # read by the server process's backend
    ours, p90s, seeds, ratios, faces, seed_faces = [], [], [], [], 0, 0
    try:
        with server(model_dir, None, log) as (url, _, headers), \
                httpx.Client(timeout=60, headers=headers) as http:
            files = {"image": ("frame.jpg", jpeg, "image/jpeg")}
            for _ in range(5):  # warm-up: the connection, first-run allocations
                response = http.post(url, files=files)
                response.raise_for_status()
                faces = len(response.json()["faces"])
            for _ in range(rounds):
                times = []
                for _ in range(runs):
                    started = time.perf_counter()
                    response = http.post(url, files=files)
                    times.append(time.perf_counter() - started)
                    response.raise_for_status()
                ours.append(1000 * float(np.median(times)))
                p90s.append(1000 * float(np.quantile(times, 0.9)))
                seed, seed_faces = seed_median_ms(seedstack, jpeg_path, threads)
                seeds.append(seed)
                ratios.append(seed / ours[-1])
    finally:
        os.environ.pop("SMARTLOCK_ARCFACE_THREADS", None)
    return {"ours": float(np.median(ours)), "p90": float(np.median(p90s)), "faces": faces,
            "seed": float(np.median(seeds)), "seed_faces": seed_faces, "ratio": float(np.median(ratios)),
            "ratios": ratios}


def compare_with_seed(frame: np.ndarray, thread_counts: list[int], runs: int, rounds: int,
                      seedstack: Path) -> None:
    from api_load import build_gallery

    from smartlock.recognition.images import encode_jpeg_rgb

    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="speed-api-") as work:
        jpeg_path = Path(work) / "frame.jpg"
        jpeg = encode_jpeg_rgb(frame, quality=90)
        jpeg_path.write_bytes(jpeg)
        model_dir = Path(work) / "model"
        build_gallery(model_dir, require_faces(), 5, "arcface")
        for threads in thread_counts:
            rows.append((threads, api_vs_seed(jpeg, jpeg_path, model_dir, threads, runs, rounds, seedstack,
                                              Path(work) / "server.log")))
    size = os.environ.get("SMARTLOCK_ARCFACE_DETECTION_SIZE") or "the server's default"
    print(f"one 640x360 JPEG ({len(jpeg):,} bytes, 1 face) per request, sequential, keep-alive; {rounds} "
          f"rounds alternating {runs} requests and the seed's 10 runs, medians of the rounds' medians; "
          f"detector input size: {size}; {os.cpu_count()} CPUs, load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")
    print("| threads | API over HTTP: median | p90      | faces | seed's stack: median | faces | ratio "
          "| ratio per round |")
    print("|---------|-----------------------|----------|-------|----------------------|-------|-------"
          "|-----------------|")
    for threads, r in rows:
        per_round = " ".join(f"{v:.1f}" for v in r["ratios"])
        print(f"| {threads:7} | {r['ours']:18.1f} ms | {r['p90']:5.1f} ms | {r['faces']:5} | "
              f"{r['seed']:17.1f} ms | {r['seed_faces']:5} | {r['ratio']:4.1f}x | {per_round:15} |")
    print("target (issue 11): the API >= 6x faster than the seed's stack")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", nargs="+", default=None)
    parser.add_argument("--runs", type=int, default=30, help="timed frames per configuration (median)")
    parser.add_argument("--api", action="store_true",
                        help="one frame over HTTP through `smartlock recognition` vs the seed's stack")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="--api: intra-op threads of the server and torch threads of the seed")
    parser.add_argument("--detection-size", type=int, default=None,
                        help="--api: the server's detector input size, given to it as "
                        "SMARTLOCK_ARCFACE_DETECTION_SIZE (default: the server's own default)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="--api: rounds alternating our requests and the seed's runs (default 3)")
    parser.add_argument("--seedstack", type=Path, default=ROOT.parent / "shared" / "seedstack",
                        help="--api: the seed's stack folder (README.md, setup.sh, seed_speed.py)")
    parser.add_argument("--worker", nargs=2, metavar=("BACKEND", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.runs)))
        return
    if args.api:
        if args.detection_size is not None:
            # the server inherits it
            os.environ["SMARTLOCK_ARCFACE_DETECTION_SIZE"] = str(args.detection_size)
        compare_with_seed(frames(require_faces())[1], args.threads, args.runs, args.rounds, args.seedstack)
        return
    require_faces()
    rows = []
    for name in installed_backends(args.backend):
        for threads in (1, 2):
            if name == "dlib" and threads == 2:
                rows.append((name, threads, None))  # dlib's detector and descriptor run on one thread
                continue
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            output = subprocess.run(
                [sys.executable, __file__, "--worker", name, str(threads), "--runs", str(args.runs)],
                capture_output=True, text=True, check=True, env=env, cwd=ROOT,
            ).stdout
            rows.append((name, threads, json.loads(output.strip().splitlines()[-1])))
    cpus = os.cpu_count()
    print(f"detect + embed per 640x360 frame, median of {args.runs} runs (after 3 warm-up runs); "
          f"{cpus} CPUs, load average {os.getloadavg()[0]:.2f}")
    print("| backend  | threads | 1 face: median | p90      | 3 faces: median | p90      | peak RSS "
          "| load    |")
    print("|----------|---------|----------------|----------|-----------------|----------|----------"
          "|---------|")
    for name, threads, result in rows:
        if result is None:
            print(f"| {name:8} | {threads:7} | {'n/a':>14} | {'':8} | {'n/a':>15} | {'':8} | {'':8} "
                  f"| {'':7} |  (dlib runs on one thread)")
            continue
        one, three = result["frames"]["1"], result["frames"]["3"]
        print(f"| {name:8} | {threads:7} | {one['median_ms']:11.1f} ms | {one['p90_ms']:5.1f} ms "
              f"| {three['median_ms']:12.1f} ms | {three['p90_ms']:5.1f} ms "
              f"| {result['peak_rss_mb']:5.0f} MB | {result['load_s']:5.2f} s |")
        if one["found"] != 1 or three["found"] != 3:
            print(f"  warning: {name} found {one['found']} and {three['found']} faces (expected 1 and 3)")


if __name__ == "__main__":
    main()
