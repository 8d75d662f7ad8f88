"""Speed of detect + embed on 640x360 frames with 1 and 3 faces, per backend, one and two threads.

    .venv/bin/python benchmarks/speed.py [--backend arcface dlib] [--runs 30]

Frames are made from photos of ../shared/faces pasted on a textured background (faces about 100-120
px). Each backend and thread count runs in its own process, so the peak memory (max RSS) is that
backend's alone. Prints the median and 90th percentile per frame.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", nargs="+", default=None)
    parser.add_argument("--runs", type=int, default=30, help="timed frames per configuration (median)")
    parser.add_argument("--worker", nargs=2, metavar=("BACKEND", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.runs)))
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
