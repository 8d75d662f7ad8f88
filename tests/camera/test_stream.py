"""The hub: one encode per frame shared by every reader, pass-through, scaling, failure and recovery."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from smartlock.camera.sources import RawFrame, Source
from smartlock.camera.stream import FrameEncoder, FrameHub
from smartlock.errors import CameraError, ConfigError
from tests.camera.media import PALETTE, decode, jpeg_bytes, nearest_color, solid_image
from tests.support import wait_for


class ScriptedSource(Source):
    """A source whose opens fail while ``failing`` is set; frames cycle through PALETTE at ``fps``."""

    kind = "scripted"

    def __init__(self, fps: float = 100.0, jpeg: bool = False) -> None:
        super().__init__("scripted", fps)
        self.failing = threading.Event()
        self.opens = 0
        self.failed_opens: list[float] = []  # monotonic times of the opens that failed
        self.frames = 0
        self.jpeg = jpeg
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        self.opens += 1
        if self.failing.is_set():
            self.failed_opens.append(time.monotonic())
            raise CameraError("scripted camera unplugged")
        self._open = True

    def read(self) -> RawFrame:
        if self.failing.is_set():
            raise CameraError("scripted camera unplugged")
        self._pause_until(time.monotonic() + 1 / self.nominal_fps)
        image = solid_image(PALETTE[self.frames % len(PALETTE)])
        self.frames += 1
        if self.jpeg:
            return RawFrame(time.time(), jpeg=jpeg_bytes(image))
        return RawFrame(time.time(), image=image)

    def close(self) -> None:
        self._open = False


class CountingEncoder(FrameEncoder):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls = 0
        self.lock = threading.Lock()

    def encode(self, raw: RawFrame) -> bytes:
        with self.lock:
            self.calls += 1
        return super().encode(raw)


def test_encoder_passes_jpeg_through_unless_asked_to_change_it() -> None:
    jpeg = jpeg_bytes(solid_image(PALETTE[2], size=(160, 120)))
    raw = RawFrame(1.0, jpeg=jpeg)
    assert FrameEncoder().encode(raw) is jpeg
    assert FrameEncoder(width=160, height=120).encode(raw) is jpeg
    rotated = decode(FrameEncoder(rotation=90).encode(raw))
    assert rotated.shape == (160, 120, 3) and nearest_color(rotated) == 2
    assert decode(FrameEncoder(width=80).encode(raw)).shape == (60, 80, 3)  # aspect ratio kept
    assert decode(FrameEncoder(width=100, height=100).encode(raw)).shape == (100, 100, 3)


def test_encoder_encodes_arrays_at_the_asked_quality() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    low = FrameEncoder(quality=10).encode(RawFrame(1.0, image=image))
    high = FrameEncoder(quality=95).encode(RawFrame(1.0, image=image))
    assert len(low) < len(high)
    assert decode(FrameEncoder(rotation=270).encode(RawFrame(1.0, image=image))).shape == (160, 120, 3)
    with pytest.raises(CameraError, match="does not decode"):
        FrameEncoder(rotation=180).encode(RawFrame(1.0, jpeg=b"\xff\xd8garbage"))


@pytest.mark.parametrize("kwargs", [{"quality": 0}, {"quality": 101}, {"rotation": 45}, {"width": 0}])
def test_encoder_refuses_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        FrameEncoder(**kwargs)


def test_every_reader_gets_the_same_encoded_bytes_and_each_frame_is_encoded_once() -> None:
    source = ScriptedSource(fps=50)
    encoder = CountingEncoder(quality=70)
    with FrameHub(source, encoder=encoder) as hub:

        async def reader(count: int) -> list:
            frames, seq = [], 0
            while len(frames) < count:
                frame = await hub.next_frame(seq, timeout=10)
                assert frame is not None, "no frame within 10 s"
                frames.append(frame)
                seq = frame.seq
            return frames

        async def main() -> list[list]:
            return await asyncio.gather(*(reader(15) for _ in range(8)))

        results = asyncio.run(main())
    assert (
        encoder.calls == source.frames or encoder.calls == source.frames - 1
    )  # the last may be dropped at stop
    assert hub.latest is not None and encoder.calls == hub.latest.seq
    by_seq: dict[int, object] = {}
    for frames in results:
        seqs = [f.seq for f in frames]
        assert seqs == sorted(set(seqs))  # newer every time, never a repeat
        for frame in frames:
            assert by_seq.setdefault(frame.seq, frame.part) is frame.part  # one shared object per frame


def test_jpeg_sources_are_not_re_encoded() -> None:
    source = ScriptedSource(fps=50, jpeg=True)
    with FrameHub(source) as hub:
        frame = hub.wait_for_frame(0, timeout=10)
        assert frame is not None
        assert nearest_color(decode(frame.jpeg)) in range(len(PALETTE))
        assert frame.part.endswith(frame.jpeg + b"\r\n")


def test_thread_readers_wait_and_stop_wakes_every_reader() -> None:
    source = ScriptedSource(fps=20)
    source.failing.set()  # nothing arrives
    hub = FrameHub(source, backoff=(0.05, 0.1))
    hub.start()
    assert hub.wait_for_frame(0, timeout=0.2) is None

    async def waiter():
        return await hub.next_frame(0, timeout=30)

    async def main():
        task = asyncio.create_task(waiter())
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await asyncio.to_thread(hub.stop)
        result = await task
        return result, time.monotonic() - started

    result, waited = asyncio.run(main())
    assert result is None and waited < 10  # woken by stop(), not by the 30 s timeout
    assert hub.health()["state"] == "stopped"
    assert not source.is_open


def test_failing_source_is_reported_and_reconnected_with_backoff() -> None:
    source = ScriptedSource(fps=50)
    with FrameHub(source, backoff=(0.02, 0.1)) as hub:
        wait_for(lambda: hub.health()["state"] == "ok", what="first frames")
        source.failing.set()
        health = wait_for(lambda: (h := hub.health())["state"] == "failing" and h, what="failing state")
        assert "unplugged" in health["error"]
        wait_for(lambda: len(source.failed_opens) >= 6, what="reconnect attempts")
        # Retried with pauses that double from 0.02 s to the 0.1 s cap, never in a busy loop. Only lower
        # bounds are checked: a busy machine makes the pauses longer, never shorter.
        gaps = np.diff(source.failed_opens[:6])
        assert gaps.min() >= 0.02 * 2 * 0.95, gaps  # the first failed open came after 0.02 s, then 0.04 ...
        assert gaps[-1] >= 0.1 * 0.95, gaps  # ... up to the cap
        seq_before = hub.latest.seq
        source.failing.clear()
        wait_for(lambda: hub.health()["state"] == "ok", what="recovery")
        assert hub.latest.seq > seq_before
        assert hub.health()["error"] is None


def test_a_source_that_stops_delivering_counts_as_failing() -> None:
    class Hanging(ScriptedSource):
        def read(self) -> RawFrame:
            if self.frames >= 3:
                self._interrupted.wait(30)  # a stuck camera read: no error, just nothing
            return super().read()

    with FrameHub(Hanging(fps=50), stale_after=0.3) as hub:
        wait_for(lambda: hub.latest is not None and hub.latest.seq >= 3, what="three frames")
        health = wait_for(lambda: (h := hub.health())["state"] == "failing" and h, what="stale state")
        assert "no frame for" in health["error"]
        assert health["seconds_since_last_frame"] >= 0.3


def test_health_counts_clients_and_measures_fps() -> None:
    with FrameHub(ScriptedSource(fps=40)) as hub:
        assert hub.health()["clients"] == 0
        with hub.client(), hub.client():
            assert hub.health()["clients"] == 2
        assert hub.health()["clients"] == 0
        wait_for(lambda: hub.health()["fps"] > 0, what="an fps measurement")
        health = hub.health()
        assert health["source"] == "scripted" and health["width"] == 160 and health["height"] == 120
