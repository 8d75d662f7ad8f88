"""Camera fan-out: frames/s each MJPEG client gets, and the server's CPU, with 1, 5 and 20 clients.

Runs `smartlock camera` as a real process over a 1280x720, 24 fps video file it writes first, and reads
the stream from a separate client process (asyncio + httpx, counting part boundaries only, so the
measuring side stays light). Server CPU time comes from /proc/<pid>/stat over the measuring window.

Target: with 20 clients every client gets >= 95% of 24 fps, and the server's CPU with 20 clients is
<= 1.5 x its CPU with one.

    .venv/bin/python benchmarks/camera_fanout.py                # 1/5/20 clients, 15 s, median of 3 runs
    .venv/bin/python benchmarks/camera_fanout.py --runs 1 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOURCE_FPS = 24.0
SIZE = (1280, 720)
MARKER = b"--FRAME\r\n"


# -- client process ---------------------------------------------------------------------------------------


async def _client(url: str, counts: list[int], index: int, stop: asyncio.Event) -> None:
    import httpx

    tail = b""
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as client,
        client.stream("GET", url) as response,
    ):
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            data = tail + chunk
            counts[index] += data.count(MARKER)
            tail = data[-(len(MARKER) - 1) :]
            if stop.is_set():
                return


async def _clients_main(url: str, clients: int, warmup: float, duration: float) -> None:
    counts = [0] * clients
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_client(url, counts, i, stop)) for i in range(clients)]
    await asyncio.sleep(warmup)
    start_counts = list(counts)
    cpu_start = time.process_time()
    print("start", flush=True)
    started = time.monotonic()
    await asyncio.sleep(duration)
    elapsed = time.monotonic() - started
    end_counts = list(counts)
    cpu = time.process_time() - cpu_start
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    fps = [(end - begin) / elapsed for begin, end in zip(start_counts, end_counts, strict=True)]
    print("result " + json.dumps({"fps": fps, "client_cpu": cpu, "elapsed": elapsed}), flush=True)


# -- orchestration ----------------------------------------------------------------------------------------


def write_video(path: Path, seconds: float = 5.0) -> None:
    """A camera-like scene: a detailed (textured) background, a moving disc, a label and sensor noise.

    The texture makes the JPEGs about as large as a real 720p camera's at q80 (~100 kB).
    """
    import cv2
    import numpy as np

    width, height = SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), SOURCE_FPS, SIZE)
    if not writer.isOpened():
        raise SystemExit("cv2.VideoWriter cannot write mp4v on this machine")
    rng = np.random.default_rng(0)
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    base = np.stack(
        [
            np.broadcast_to(x, (height, width)),
            np.broadcast_to(y, (height, width)),
            np.full((height, width), 128, np.float32),
        ],
        axis=-1,
    )
    texture = cv2.GaussianBlur(rng.normal(0, 1, base.shape).astype(np.float32), (0, 0), 1.2) * 20
    base = base + texture
    for i in range(int(seconds * SOURCE_FPS)):
        frame = base + rng.normal(0, 3, base.shape).astype(np.float32)
        frame = np.clip(frame, 0, 255).astype(np.uint8)
        cx = int(width * (0.2 + 0.6 * (i / (seconds * SOURCE_FPS))))
        cv2.circle(frame, (cx, height // 2), 120, (40, 180, 240), -1)
        cv2.putText(frame, f"frame {i:03d}", (40, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 4)
        writer.write(frame)
    writer.release()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, server_pid: int, clients: int, warmup: float, duration: float) -> dict:
    command = [sys.executable, __file__, "--client-mode", url, str(clients), str(warmup), str(duration)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    cpu_start = wall_start = None
    result = None
    for line in process.stdout:
        if line.startswith("start"):
            cpu_start, wall_start = cpu_seconds(server_pid), time.monotonic()
        elif line.startswith("result "):
            cpu_end, wall_end = cpu_seconds(server_pid), time.monotonic()
            result = json.loads(line.split(" ", 1)[1])
    process.wait(timeout=30)
    if result is None or cpu_start is None or wall_start is None:
        raise SystemExit(f"the client process failed (exit {process.returncode})")
    result["server_cpu"] = (cpu_end - cpu_start) / (wall_end - wall_start)  # cores busy, 1.0 = one core
    return result


def wait_ok(base_url: str, server: subprocess.Popen, timeout: float = 60.0) -> dict:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the camera server exited with {server.returncode}")
        try:
            health = httpx.get(f"{base_url}/health", timeout=2).json()
            if health["state"] == "ok":
                return health
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the camera server did not become healthy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,5,20", help="client counts to measure (default 1,5,20)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per run (default 15)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="runs per client count; medians reported")
    parser.add_argument("--quality", type=int, default=80)
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]

    from tests.support import free_port, stop_process

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "scene.mp4"
        write_video(video)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "smartlock",
                "camera",
                "--source",
                str(video),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--quality",
                str(args.quality),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ok(base_url, server)
            import httpx

            frame_bytes = len(httpx.get(f"{base_url}/snapshot.jpg", timeout=5).content)
            rows = []
            for clients in levels:
                runs = [
                    measure(f"{base_url}/stream.mjpg", server.pid, clients, args.warmup, args.duration)
                    for _ in range(args.runs)
                ]
                rows.append(
                    {
                        "clients": clients,
                        "min": statistics.median(min(r["fps"]) for r in runs),
                        "median": statistics.median(statistics.median(r["fps"]) for r in runs),
                        "cpu": statistics.median(r["server_cpu"] for r in runs),
                        "client_cpu": statistics.median(r["client_cpu"] / r["elapsed"] for r in runs),
                    }
                )
        finally:
            stop_process(server)

    print(
        f"camera fan-out: {SIZE[0]}x{SIZE[1]} {SOURCE_FPS:g} fps mp4v file source, JPEG q{args.quality} "
        f"(~{frame_bytes // 1000} kB/frame), {args.duration:g} s per run, median of {args.runs} run(s), "
        f"{os.cpu_count()} CPUs"
    )
    print()
    print(
        "| clients | fps/client min | fps/client median | server CPU (cores) | CPU vs 1 client | client CPU |"
    )
    print(
        "|--------:|---------------:|------------------:|-------------------:|----------------:|-----------:|"
    )
    base_cpu = next((r["cpu"] for r in rows if r["clients"] == 1), rows[0]["cpu"])
    for r in rows:
        print(
            f"| {r['clients']:7d} | {r['min']:14.2f} | {r['median']:17.2f} | {r['cpu']:18.3f} | "
            f"{r['cpu'] / base_cpu:15.2f} | {r['client_cpu']:10.3f} |"
        )
    print()
    top = max(rows, key=lambda r: r["clients"])
    fps_ok = top["min"] >= 0.95 * SOURCE_FPS
    cpu_ok = top["cpu"] <= 1.5 * base_cpu
    print(
        f"target: every client >= {0.95 * SOURCE_FPS:.1f} fps with {top['clients']} clients: "
        f"{'PASS' if fps_ok else 'FAIL'} (min {top['min']:.2f}); "
        f"server CPU({top['clients']}) <= 1.5 x CPU(1): {'PASS' if cpu_ok else 'FAIL'} "
        f"({top['cpu'] / base_cpu:.2f} x)"
    )


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--client-mode":
        _, _, url, n, warmup, duration = sys.argv
        asyncio.run(_clients_main(url, int(n), float(warmup), float(duration)))
    else:
        main()
