"""Door API latency: signed unlocks over one keep-alive connection against a real uvicorn + mock relay.

For each of --requests unlocks (on a locked door, so every one moves the pin) it measures the request
latency (send -> 202 received) and the delay from sending to the pin's change, which gpiozero's MockPin
timestamps itself. A signed /lock after each unlock re-locks the door (not timed). Then --relocks
unlocks are left to the timer, and the relock lateness (time unlocked minus the lock delay) is taken
from the pin's own timestamps. Prints one row per run and the median of the runs; the targets are
p99 latency <= 20 ms and relocks within 50 ms. Since the door audits an unlock before it moves the
relay, request -> pin includes one SQLite write (a full disk refuses the unlock instead).

    .venv/bin/python benchmarks/door_latency.py [--requests 1000] [--relocks 30] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402

from smartlock.door.api import create_app  # noqa: E402
from smartlock.door.auth import RequestVerifier, generate_secret, sign_request  # noqa: E402
from smartlock.door.events import EventLog  # noqa: E402
from smartlock.door.relay import Relay  # noqa: E402

TARGET_P99_MS = 20.0
TARGET_RELOCK_MS = 50.0
LOCK_DELAY = 0.1  # short, so the relock phase is quick; /lock ends each window of the latency phase first
PIN = 11


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Server:
    """uvicorn in a thread on a free 127.0.0.1 port (same process, so MockPin times share our clock)."""

    def __init__(self, app: object) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    access_log=False, proxy_headers=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def one_run(requests: int, relocks: int, warmup: int, workdir: Path) -> dict[str, list[float]]:
    factory = MockFactory()
    relay = Relay(PIN, pin_factory=factory)
    pin = factory.pin(f"BOARD{PIN}")
    secret = generate_secret(workdir / "door.secret")
    events = EventLog(workdir / "events.sqlite3")
    app = create_app(relay, RequestVerifier(secret), events, lock_delay=LOCK_DELAY)
    latency: list[float] = []
    to_pin: list[float] = []
    late: list[float] = []
    body = json.dumps({"person": "benchmark", "confidence": 0.9, "source": "benchmark"}).encode()
    try:
        with Server(app) as url, httpx.Client(base_url=url, timeout=5.0) as client:
            def send(path: str, content: bytes, expected: int) -> tuple[float, float]:
                headers = sign_request(secret, "POST", path, content)
                request = client.build_request("POST", path, content=content, headers=headers)
                started = time.monotonic()
                response = client.send(request)
                finished = time.monotonic()
                if response.status_code != expected:
                    raise RuntimeError(f"{path} answered {response.status_code}: {response.text}")
                return started, finished

            for _ in range(warmup):
                send("/unlock", body, 202)
                send("/lock", b"", 200)
            before = time.monotonic()
            pin.clear_states()
            origin = (before + time.monotonic()) / 2  # MockPin timestamps are deltas from here
            seen, clock = 1, origin
            for _ in range(requests):
                started, finished = send("/unlock", body, 202)
                for state in pin.states[seen:]:
                    clock += state.timestamp
                    if state.state is False:  # LOW = unlocked (active-low)
                        to_pin.append(clock - started)
                seen = len(pin.states)
                latency.append(finished - started)
                send("/lock", b"", 200)
            if len(to_pin) != requests:
                raise RuntimeError(f"{requests} unlocks but {len(to_pin)} pin changes to unlocked")

            for _ in range(relocks):
                pin.clear_states()
                send("/unlock", body, 202)
                deadline = time.monotonic() + LOCK_DELAY + 10
                time.sleep(LOCK_DELAY)
                while not pin.state and time.monotonic() < deadline:
                    time.sleep(0.002)
                states = [state.state for state in pin.states]
                if states != [True, False, True]:
                    raise RuntimeError(f"expected one opening and a relock, the pin went {states}")
                late.append(pin.states[2].timestamp - LOCK_DELAY)  # MockPin times are since the last change
    finally:
        relay.close()
        events.close()
        factory.close()
    return {"latency": latency, "to_pin": to_pin, "late": late}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="signed unlocks per run (default 1000)")
    parser.add_argument("--relocks", type=int, default=30, help="timer relocks per run (default 30)")
    parser.add_argument("--runs", type=int, default=5, help="runs; the median row is the result (default 5)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed unlock/lock pairs first (default 20)")
    args = parser.parse_args()
    logging.getLogger("smartlock").setLevel(logging.ERROR)  # one "relay is simulated" warning per run

    rows = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="door-bench-") as workdir:
            result = one_run(args.requests, args.relocks, args.warmup, Path(workdir))
        lat = [x * 1000 for x in result["latency"]]
        pin = [x * 1000 for x in result["to_pin"]]
        late = [x * 1000 for x in result["late"]] or [float("nan")]
        rows.append((run, percentile(lat, 50), percentile(lat, 99), max(lat), percentile(pin, 50),
                     percentile(pin, 99), percentile(late, 50), max(late)))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"door latency: {args.requests} signed unlocks per run over keep-alive, real uvicorn on 127.0.0.1, "
          f"MockFactory relay, SQLite audit; python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load {load:.2f}")
    print()
    columns = ["latency p50 ms", "latency p99 ms", "latency max ms",
               "request→pin p50 ms", "request→pin p99 ms", "relock late p50 ms", "relock late max ms"]
    print("| run | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for run, *values in rows:
        print(f"| {run} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    median = [statistics.median(r[i] for r in rows) for i in range(1, len(columns) + 1)]
    print("| median | " + " | ".join(f"{v:.2f}" for v in median) + " |")
    verdict = "PASS" if median[1] <= TARGET_P99_MS else "FAIL"
    relock_verdict = "PASS" if median[6] <= TARGET_RELOCK_MS else "FAIL"
    print()
    print(f"target: p99 latency <= {TARGET_P99_MS:.0f} ms -> {verdict} (median p99 {median[1]:.2f} ms)")
    print(f"target: relock within {TARGET_RELOCK_MS:.0f} ms of the lock delay -> {relock_verdict} "
          f"(median of the per-run worst {median[6]:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
