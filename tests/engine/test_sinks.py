"""Unlock-frames log (seed layout, atomic), collector-style file names, and the fire-and-forget webhook."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request

from smartlock.engine.files import current_timestamp, unique_path
from smartlock.engine.policy import Decision
from smartlock.engine.sinks import UnlockLog, WebhookSink
from smartlock.fileio import atomic_write
from tests.engine.fakes import face
from tests.support import uvicorn_server, wait_for

DECISION = Decision("alice", 0.97, (0.91, 0.97), 1.0, 1.4)


def test_current_timestamp_has_the_seed_format() -> None:
    moment = datetime(2024, 3, 5, 14, 7, 9, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert current_timestamp(moment) == moment.astimezone().replace(microsecond=0).isoformat(" ")
    text = current_timestamp()
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None and parsed.microsecond == 0 and " " in text


def test_unlock_log_writes_the_seed_layout(tmp_path: Path) -> None:
    log = UnlockLog(tmp_path, threshold=0.8)
    faces = [face("alice", 0.97, (1, 2, 3, 4)), face("bob", 0.3), face("carol", 0.85)]
    image = np.zeros((36, 64, 3), np.uint8)
    first = log.save(image, faces, DECISION)
    second = log.save(image, faces, DECISION)  # same second: a distinct folder, nothing overwritten
    assert first.parent == tmp_path / "unlock-frames" and first != second
    assert sorted(p.name for p in first.iterdir()) == ["alice-0.97", "carol-0.85", "faces.json", "frame.jpeg"]
    document = json.loads((first / "faces.json").read_text())
    assert document["decision"] == {"label": "alice", "confidence": 0.97, "frames": 2,
                                    "confidences": [0.91, 0.97]}
    assert document["faces"][1]["top_prediction"] == {"label": "bob", "confidence": 0.3}
    assert not [p for p in (tmp_path / "unlock-frames").iterdir() if p.name.startswith(".")]


def test_atomic_write_and_unique_path(tmp_path: Path) -> None:
    target = tmp_path / "a" / "x-0.70-t.jpeg"
    atomic_write(target, b"one")
    assert target.read_bytes() == b"one"
    assert unique_path(target).name == "x-0.70-t-2.jpeg"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x-0.70-t.jpeg"]


def test_webhook_posts_json_events_to_a_real_server() -> None:
    received: list[dict] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict:
        received.append(await request.json())
        return {}

    with uvicorn_server(app) as base:
        sink = WebhookSink(f"{base}/hook")
        sink.emit({"event": "unlocked", "person": "alice"})
        sink.emit({"event": "refused-unknown"})
        sink.close()
    assert received == [{"event": "unlocked", "person": "alice"}, {"event": "refused-unknown"}]
    assert sink.sent == 2


def test_an_event_json_cannot_carry_is_lost_alone(caplog: pytest.LogCaptureFixture) -> None:
    received: list[dict] = []

    def accept(request: httpx.Request) -> httpx.Response:
        received.append(json.loads(request.content))
        return httpx.Response(200)

    sink = WebhookSink("http://hook.invalid/", transport=httpx.MockTransport(accept))
    sink.emit({"event": "unlocked", "when": object()})  # not JSON
    sink.emit({"event": "recognised"})
    sink.close()
    assert received == [{"event": "recognised"}] and (sink.sent, sink.failed) == (1, 1)
    assert any("could not be sent" in message for message in caplog.messages)


def test_a_full_webhook_queue_is_logged_once_then_every_hundred(caplog: pytest.LogCaptureFixture) -> None:
    posting, release = threading.Event(), threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        posting.set()
        release.wait(10)
        return httpx.Response(200)

    sink = WebhookSink("http://hook.invalid/", max_queue=1, transport=httpx.MockTransport(slow))
    sink.emit({"event": "recognised"})
    wait_for(posting.is_set, what="the worker to post the first event")
    for _ in range(201):  # one fills the queue, 200 are dropped
        sink.emit({"event": "recognised"})
    release.set()
    sink.close()
    assert sink.dropped == 200
    full = [message for message in caplog.messages if "queue full" in message]
    assert full == [f"Webhook queue full: {n} event(s) dropped so far" for n in (1, 100, 200)]


def test_a_hanging_webhook_never_blocks_emit() -> None:
    posting, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def hang(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content)["n"])
        posting.set()
        release.wait(10)  # hangs until the test has emitted everything
        raise httpx.ReadTimeout("too slow", request=request)

    sink = WebhookSink("http://hook.invalid/", timeout=0.1, max_queue=3, transport=httpx.MockTransport(hang))
    sink.emit({"event": "recognised", "n": 0})
    wait_for(posting.is_set, what="the first POST to hang")
    for index in range(1, 50):
        sink.emit({"event": "recognised", "n": index})  # would block for good if emit waited for the worker
    # every emit returned while the first POST still hangs: 3 queued, the other 46 dropped
    assert calls == [0] and not release.is_set()
    assert sink.dropped == 46
    release.set()
    sink.close(timeout=5)
    assert sink.failed >= 1 and sink.sent == 0


def test_a_background_hook_never_makes_the_caller_wait_and_counts_what_it_drops() -> None:
    import threading

    from smartlock.engine.sinks import BackgroundHook

    release, started, done = threading.Event(), threading.Event(), []

    def slow(item: int) -> None:
        started.set()
        release.wait(10)
        done.append(item)

    hook = BackgroundHook(slow, "test", size=2)
    hook(1)
    assert started.wait(5)  # item 1 is being worked on: the queue holds 2 more
    for item in range(2, 7):
        hook(item)  # returns at once even though the worker is stuck
    assert hook.dropped == 3
    release.set()
    hook.close()
    assert done == [1, 2, 3]
