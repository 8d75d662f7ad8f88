"""Attack 3: a rogue MJPEG server at the engine's camera URL, showing one photo of an enrolled person,
unlocked the door 7 times in 45 s.

Now a real engine process holding the camera token (--camera-token-file) proves the token without sending
it (the rogue server learns nothing to sign with) and drops every rogue frame: unsigned, signed with
another key, a stale recording of genuine signed frames, replayed sequence numbers. The real door (mock
pin, its own audit) never unlocks. Then the genuine camera, signing with the token, comes back at the same
URL and the same person does unlock, through the same engine (so this test can fail)."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import pytest

from smartlock.camera.signing import REASONS
from smartlock.service import write_secret
from tests.camera.rogue import VARIANTS, RogueCamera
from tests.engine import system
from tests.engine.system import Process, background, on_canvas, write_video
from tests.support import LOOPBACK, free_port, service_process, uvicorn_server, wait_for

pytestmark = [pytest.mark.faces, pytest.mark.slow, pytest.mark.timeout(300)]
T = TypeVar("T")

PER_VARIANT = 15  # rogue frames the engine must have dropped for each reason before we look at the door
DROPS = re.compile(r"Dropped frames: unsigned (\d+), bad-signature (\d+), stale (\d+), replayed (\d+)")
REASON_OF = {"unsigned": "unsigned", "wrong-key": "bad-signature", "stale": "stale", "replayed": "replayed"}


def jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def drops(engine: Process) -> dict[str, int]:
    """The engine's latest drop counts by reason (its DEBUG line after each dropped frame)."""
    matches = DROPS.findall(engine.text())
    return dict(zip(REASONS, map(int, matches[-1]), strict=True)) if matches else dict.fromkeys(REASONS, 0)


def every_reason(counts: dict[str, int]) -> dict[str, int] | None:
    return counts if min(counts.values()) >= PER_VARIANT else None


def wait_on(engine: Process, predicate: Callable[[], T], what: str, timeout: float = 90.0) -> T:
    try:
        return wait_for(predicate, timeout=timeout, interval=0.2, what=what)
    except AssertionError as err:
        raise AssertionError(f"{err}; engine output:\n{engine.text()[-4000:]}") from None


def test_a_rogue_stream_never_unlocks_and_the_genuine_camera_does(faces_dir: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    gallery = system.build_gallery(faces_dir, tmp_path / "model", people=1, photos=3, strangers=1)
    name, photo = next(iter(gallery.probes.items()))
    token_file = tmp_path / "camera-token"
    write_secret(token_file, secrets.token_urlsafe(32))
    token = token_file.read_text().strip()
    # what the attacker serves: the enrolled person's photo, exactly as the genuine camera would show it
    rogue = RogueCamera(jpeg(on_canvas(photo)), VARIANTS, camera_token=token, decoy=jpeg(background()),
                        per_connection=PER_VARIANT * 2, period=0.04)
    port = free_port()
    log_path = tmp_path / "engine"
    with system.door(tmp_path, logs) as door, contextlib.ExitStack() as engine_stack:
        start_id = door.last_id()
        args = system.engine_args(port, door, log_path, model_dir=gallery.model_dir,
                                  extra=["--camera-token-file", str(token_file), "--log-level", "DEBUG"])
        with uvicorn_server(rogue.app, port=port, health_path="/health"):
            engine = engine_stack.enter_context(system.smartlock_process(args, logs / "engine.out"))
            # the event that must come first: N rogue frames of each kind reached the engine and were dropped
            counts = wait_on(engine, lambda: every_reason(drops(engine)),
                             f"{PER_VARIANT} dropped frames for each reason")
            assert door.unlocks(start_id) == []
            with door.client() as client:
                assert client.status()["locked"] is True
            frames = engine.counts()
            assert frames["analysed"] == 0 and frames["unlocks"] == 0  # no rogue frame reached recognition
            for variant in VARIANTS:
                assert rogue.sent_as(variant) >= counts[REASON_OF[variant]] >= PER_VARIANT
            text = engine.text()
            assert "Door unlocked" not in text and "Analysing frame" not in text
            # once per burst, not per frame: far fewer warnings than dropped frames
            assert 4 <= text.count("Dropping frames from") < sum(counts.values()) // 4
            assert token not in text
            # the engine proved it holds the token; the rogue server never got the token itself
            presented = rogue.authorizations
            assert presented and all(a.startswith("Smartlock-Proof ") for a in presented)
            assert not any(token in a for a in presented)
        at_takeover = drops(engine)

        # The genuine camera comes back at the same URL, signing with the token: the same person unlocks.
        video = write_video(tmp_path / "person.mp4", [(background(), 1.0), (on_canvas(photo), 20.0)])
        camera_args = ["camera", "--source", str(video), "--host", LOOPBACK, "--port", str(port),
                       "--token-file", str(token_file)]
        with service_process(camera_args, f"http://{LOOPBACK}:{port}/health", log_path=logs / "camera.log"):
            unlocks = wait_on(engine, lambda: door.unlocks(start_id), "an unlock by the genuine camera")
        assert unlocks[0]["person"] == name and unlocks[0]["source"] == "engine"
        after = drops(engine)
        forged = ("unsigned", "bad-signature")
        assert [after[reason] for reason in forged] == [at_takeover[reason] for reason in forged]
        assert token not in engine.text() and token not in (log_path / "log.txt").read_text()
