"""Footprint of `smartlock up`: CPU (% of one core) and memory of all its processes, idle and with a face.

    .venv/bin/python benchmarks/footprint.py                 # 720p 24 fps file, 3 windows of 10 s each
    .venv/bin/python benchmarks/footprint.py --windows 5 --seconds 20

A 1280x720, 24 fps video is written to a temporary folder: a textured wall with camera noise (nobody in
view), and the same wall with a person's photo (from ../shared/faces) moving a little (a face in view).
`smartlock up --camera VIDEO` runs in a fresh data directory (relay simulated, default everything); after
it is ready and has warmed up, CPU time of `up` and every process below it is read from /proc over several
windows (median reported), and memory at the end: RSS summed (what the issue asks; shared libraries count
once per process) and PSS summed (shared pages split between processes: the real total).
Targets (issue 11): idle <= 10 % of one core; RSS of all processes <= 400 MB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smartlock.config import faces_dir  # noqa: E402
from tests.support import free_port, stop_process, wait_until_up  # noqa: E402

SIZE = (1280, 720)
FPS = 24.0
TICKS = os.sysconf("SC_CLK_TCK")


def write_video(path: Path, photo: Path | None, seconds: float = 20.0) -> Path:
    import cv2

    rng = np.random.default_rng(0)
    wall = cv2.GaussianBlur(rng.integers(70, 150, (SIZE[1], SIZE[0], 3), dtype=np.uint8), (0, 0), 8)
    face = None
    if photo is not None:
        face = cv2.resize(cv2.imread(str(photo)), (500, 500), interpolation=cv2.INTER_LINEAR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    for index in range(int(seconds * FPS)):
        frame = wall.copy()
        if face is not None:
            x = 390 + int(20 * np.sin(index / 12))
            frame[110:610, x:x + 500] = face
        noise = rng.normal(0, 2.0, frame.shape)
        writer.write(np.clip(frame + noise, 0, 255).astype(np.uint8))
    writer.release()
    return path


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far, per process."""
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    return used


def part_name(pid: int) -> str:
    """``vision``, ``door``, ``up``... from a process's command line."""
    try:
        words = [w.decode() for w in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if w]
    except OSError:
        return "?"
    if "smartlock" in words and words.index("smartlock") + 1 < len(words):
        return words[words.index("smartlock") + 1]
    return Path(words[0]).name if words else "?"


def memory_mb(pids: list[int]) -> tuple[float, float, dict[str, float]]:
    """(RSS sum, PSS sum, RSS per command) in MB."""
    rss = pss = 0.0
    per: dict[str, float] = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        value = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        rss += value / 1024
        pss += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")) / 1024
        name = part_name(pid)
        per[name] = per.get(name, 0.0) + value / 1024
    return rss, pss, per


def measure(video: Path, windows: int, seconds: float, warmup: float) -> dict:
    data = Path(tempfile.mkdtemp(prefix="footprint-"))
    password = data / "password"
    password.write_text("footprint-benchmark\n")
    password.chmod(0o600)
    port = free_port()
    log = open(data / "up.log", "wb")  # noqa: SIM115 - closed below
    up = subprocess.Popen([sys.executable, "-m", "smartlock", "up", "--camera", str(video), "--data-dir",
                           str(data / "data"), "--port", str(port), "--password-file", str(password)],
                          stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", timeout=180)
        time.sleep(warmup)
        shares, per_part = [], {}
        for _ in range(windows):
            pids = descendants(up.pid)
            before, started = cpu_seconds(pids), time.monotonic()
            time.sleep(seconds)
            after, elapsed = cpu_seconds(pids), time.monotonic() - started
            shares.append(100 * (sum(after.values()) - sum(before.get(pid, 0.0) for pid in after)) / elapsed)
            for pid, used in after.items():
                name = part_name(pid)
                per_part.setdefault(name, []).append(100 * (used - before.get(pid, 0.0)) / elapsed)
        rss, pss, per = memory_mb(descendants(up.pid))
    finally:
        stop_process(up)
        log.close()
    return {"cpu": statistics.median(shares), "cpu_all": shares, "rss": rss, "pss": pss, "per": per,
            "cpu_per": {name: statistics.median(values) for name, values in per_part.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    args = parser.parse_args()
    faces = faces_dir()
    work = Path(tempfile.mkdtemp(prefix="footprint-video-"))
    scenes = {"idle (nobody in view)": write_video(work / "idle.mp4", None)}
    if faces is not None:
        photo = sorted(next(p for p in sorted((faces / "strangers").iterdir())).glob("*.jpg"))[0]
        scenes["a face in view (a stranger)"] = write_video(work / "face.mp4", photo)
    print(f"`smartlock up` on a {SIZE[0]}x{SIZE[1]} {FPS:g} fps file; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; "
          f"CPU = median of {args.windows} windows of {args.seconds:g} s")
    print("| scene | CPU (% of one core) | windows | CPU per process | RSS, all processes "
          "| PSS, all processes | RSS per process (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, video in scenes.items():
        result = measure(video, args.windows, args.seconds, args.warmup)
        per = ", ".join(f"{part} {mb:.0f}" for part, mb in sorted(result["per"].items()))
        windows = " / ".join(f"{share:.1f}" for share in result["cpu_all"])
        cpu_per = ", ".join(f"{part} {share:.1f}" for part, share in sorted(result["cpu_per"].items()))
        print(f"| {name} | {result['cpu']:.1f} % | {windows} | {cpu_per} | {result['rss']:.0f} MB "
              f"| {result['pss']:.0f} MB | {per} |", flush=True)


if __name__ == "__main__":
    main()
