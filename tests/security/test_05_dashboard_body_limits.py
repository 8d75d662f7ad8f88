"""Row 5: a 200 MB unauthenticated body (sign-in, setup, upload) cannot grow the dashboard's memory.

Attacked: a real dashboard process (served as `up` serves it, fake recognition and door) on 127.0.0.1.
Each body is pushed over a raw socket, both with a Content-Length and chunked, and the pushing stops as
soon as the answer arrives: the refusal must come before the body is through, and the process's peak
memory (VmHWM) may not grow by more than 20 MB. Afterwards the right password still signs in at once:
no refused body counted as a failed sign-in.
"""

from __future__ import annotations

import select
import socket
from pathlib import Path

import httpx
import pytest

from tests.support import free_port
from tests.web.conftest import CREDENTIALS
from tests.web.serve_dashboard import dashboard_process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOTAL = 200 * 2**20
CHUNK = 2**20
MAX_GROWTH = 20 * 2**20


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of ``pid`` in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def push(port: int, path: str, *, chunked: bool, content_type: str = "application/json") -> tuple[int, int]:
    """POST a TOTAL-byte body to ``path`` until the server answers; (status, body bytes sent)."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {TOTAL}"
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
            f"X-Smartlock-Request: 1\r\n{framing}\r\n\r\n").encode()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        payload = b"{" + b" " * (CHUNK - 1)
        for _ in range(TOTAL // CHUNK):  # bounded: at most the whole body
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # the answer is there: stop pushing
            frame = f"{len(payload):x}\r\n".encode() + payload + b"\r\n" if chunked else payload
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(payload)
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status_line = answer.split(b"\r\n", 1)[0].decode()
    assert status_line.startswith("HTTP/1.1 "), f"no answer after {sent} bytes: {answer[:200]!r}"
    return int(status_line.split()[1]), sent


def test_huge_unauthenticated_bodies_are_refused_early_with_bounded_memory(tmp_path: Path) -> None:
    port = free_port()
    with dashboard_process(tmp_path / "data", port, log=tmp_path / "dashboard.log") as process:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"X-Smartlock-Request": "1"}) as warm:
            # one real sign-in first: scrypt's 16 MB belong in the baseline, not in the growth
            assert warm.post("/api/auth/login", json=CREDENTIALS).status_code == 200
        before = memory(process.pid)

        attacks = [
            ("/api/auth/login", False, "application/json", 413),
            ("/api/auth/login", True, "application/json", 413),
            ("/api/auth/setup", True, "application/json", 413),
            ("/api/auth/setup", False, "application/json", 413),
            # an upload may be large, but not before a session: refused before its body is read
            ("/api/people/enroll", False, "multipart/form-data; boundary=x", 401),
            ("/api/people/enroll", True, "multipart/form-data; boundary=x", 401),
        ]
        for path, chunked, content_type, expected in attacks:
            status, sent = push(port, path, chunked=chunked, content_type=content_type)
            print(path, chunked, status, sent)
            assert status == expected, (path, chunked, status)
            assert sent < TOTAL // 2, f"{path} (chunked={chunked}) read {sent} bytes before refusing"

        after = memory(process.pid)
        growth = {key: after[key] - before[key] for key in after}
        print(f"memory before {before}, after {after}, growth {growth}")
        assert growth["VmHWM"] < MAX_GROWTH and growth["VmRSS"] < MAX_GROWTH, growth

        with httpx.Client(base_url=base, headers={"X-Smartlock-Request": "1"}) as client:
            # nothing changed: no failure was counted, nothing was enrolled, the password is the same
            assert client.post("/api/auth/login", json=CREDENTIALS).status_code == 200
            assert client.get("/api/people").json() == {"people": []}
