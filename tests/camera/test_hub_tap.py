"""The hub's in-process tap (`smartlock vision`): every frame handed over as BGR, JPEG encoded only while
someone watches, a snapshot always fresh, a failing tap never stopping the stream."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from smartlock.camera.stream import FrameEncoder, FrameHub
from tests.support import wait_for
from tests.web.fakes import StillSource, jpeg


class CountingEncoder(FrameEncoder):
    def __init__(self) -> None:
        super().__init__(rotation=90)
        self.calls = 0

    def encode(self, raw):  # type: ignore[no-untyped-def]
        self.calls += 1
        return super().encode(raw)


def test_tap_gets_every_frame_and_nothing_is_encoded_unwatched() -> None:
    tapped: list[np.ndarray] = []
    encoder = CountingEncoder()
    hub = FrameHub(StillSource(jpeg(), fps=100.0), encoder=encoder, encode_unwatched=False,
                   tap=lambda image, captured: tapped.append(image))
    with hub:
        wait_for(lambda: len(tapped) >= 30, 10, what="30 tapped frames")
        # the first frame is encoded (health has a size), then nothing while nobody watches
        assert encoder.calls <= 2
        assert tapped[0].shape == (320, 240, 3)  # the still is 320x240, turned 90 degrees like the stream
        frame = asyncio.run(hub.current_frame(timeout=5))  # a snapshot: encoded fresh, now
        assert frame is not None and frame.seq >= 2 and encoder.calls >= 2
        with hub.client():  # a stream client: every frame is encoded again
            before = encoder.calls
            wait_for(lambda: encoder.calls >= before + 10, 10, what="frames encoded for the client")
        assert hub.health()["state"] == "ok"


def test_a_failing_tap_does_not_stop_the_stream() -> None:
    calls = threading.Event()

    def broken(image: np.ndarray, captured: float) -> None:
        calls.set()
        raise RuntimeError("engine gone")

    hub = FrameHub(StillSource(jpeg(), fps=100.0), tap=broken)
    with hub:
        first = hub.wait_for_frame(0, timeout=5)
        assert first is not None and calls.is_set()
        assert hub.wait_for_frame(first.seq + 20, timeout=5) is not None


def test_health_says_failing_while_frames_do_not_reach_the_engine() -> None:
    broken = threading.Event()

    def tap(image: np.ndarray, captured: float) -> None:
        if broken.is_set():
            raise RuntimeError("engine gone")

    hub = FrameHub(StillSource(jpeg(), fps=100.0), tap=tap, encode_unwatched=False)
    with hub:
        wait_for(lambda: hub.health()["state"] == "ok", 10, what="the camera ok")
        broken.set()
        wait_for(lambda: hub.health()["state"] == "failing", 10, what="health to say failing")
        assert "not reaching the engine" in hub.health()["error"]
        broken.clear()
        wait_for(lambda: hub.health()["state"] == "ok", 10, what="health ok again")
