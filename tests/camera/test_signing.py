"""Signed frames: what the camera sends verifies, and every kind of forgery is dropped with its reason."""

from __future__ import annotations

import hashlib
import hmac
import logging

import httpx
import pytest

from smartlock.camera.signing import (
    BAD_SIGNATURE,
    REPLAYED,
    STALE,
    UNSIGNED,
    FrameGate,
    FrameSigner,
    FrameVerifier,
    derive_key,
    viewing_token,
)
from smartlock.camera.stream import FrameHub
from tests.camera.media import stream_parts
from tests.support import ManualClock

TOKEN = "camera-token-for-tests"
JPEG = b"\xff\xd8 a frame \xff\xd9"
NOW = 1_800_000_000.0


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def signed(sequence: int, *, at: float = NOW, jpeg: bytes = JPEG, signer: FrameSigner | None = None):
    signer = signer or FrameSigner(TOKEN, stream_id="stream-a")
    return lower(signer.headers(jpeg, at, sequence)), jpeg


def verifier(clock: ManualClock | None = None) -> FrameVerifier:
    return FrameVerifier(TOKEN, clock=clock or ManualClock(NOW))


def test_a_signed_frame_verifies_and_the_key_is_not_the_token() -> None:
    headers, jpeg = signed(1)
    assert set(headers) == {"x-timestamp", "x-sequence", "x-stream-id", "x-frame-signature"}
    assert headers["x-timestamp"] == f"{NOW:.6f}" and headers["x-sequence"] == "1"
    assert verifier().check(headers, jpeg) is None
    assert derive_key(TOKEN) != TOKEN.encode()
    # a signature made with the bare token as key (a naive implementation) does not verify
    message = b"\n".join([b"smartlock-frame-v1", b"stream-a", b"1", headers["x-timestamp"].encode(),
                          hashlib.sha256(jpeg).hexdigest().encode()])
    naive = hmac.new(TOKEN.encode(), message, hashlib.sha256).hexdigest()
    assert verifier().check({**headers, "x-frame-signature": naive}, jpeg) == BAD_SIGNATURE


@pytest.mark.parametrize("missing", ["x-timestamp", "x-sequence", "x-stream-id", "x-frame-signature"])
def test_a_frame_missing_any_signed_header_is_unsigned(missing: str) -> None:
    headers, jpeg = signed(1)
    del headers[missing]
    assert verifier().check(headers, jpeg) == UNSIGNED
    assert verifier().check({"x-timestamp": f"{NOW}"}, jpeg) == UNSIGNED


def test_forgeries_are_wrongly_signed() -> None:
    headers, jpeg = signed(1)
    check = verifier().check
    assert check(headers, jpeg + b"x") == BAD_SIGNATURE  # the picture was changed
    assert check(*signed(1, signer=FrameSigner("attacker-token", stream_id="stream-a"))) == BAD_SIGNATURE
    mac = headers["x-frame-signature"]
    for name, value in [("x-sequence", "2"), ("x-stream-id", "stream-b"), ("x-timestamp", f"{NOW + 0.5:.6f}"),
                        ("x-timestamp", f"{NOW:.3f}"), ("x-sequence", "-1"), ("x-sequence", "1" * 40),
                        ("x-frame-signature", "0" * 64), ("x-frame-signature", mac[:-1]),
                        ("x-frame-signature", mac.upper()), ("x-stream-id", "bad id"),
                        ("x-timestamp", "nan")]:
        assert check({**headers, name: value}, jpeg) == BAD_SIGNATURE, (name, value)
    signer = FrameSigner(TOKEN, stream_id="stream-c")
    for nonsense in (float("nan"), float("inf")):  # correctly signed, but no time a frame was taken at
        assert check(lower(signer.headers(jpeg, nonsense, 1)), jpeg) == STALE


def test_stale_frames_either_way_are_dropped() -> None:
    clock = ManualClock(NOW)
    check = verifier(clock).check
    assert check(*signed(1, at=NOW - 2.5)) == STALE  # a recording
    assert check(*signed(2, at=NOW + 2.5)) == STALE  # from the future: a clock that is off
    assert check(*signed(3, at=NOW - 1.9)) is None
    clock.advance(60)
    assert check(*signed(4, at=NOW)) == STALE


def test_replays_on_a_stream_are_dropped_and_a_restarted_camera_is_not() -> None:
    check = verifier().check
    assert check(*signed(5)) is None
    assert check(*signed(5)) == REPLAYED  # the same frame again
    assert check(*signed(3)) == REPLAYED  # an older one
    assert check(*signed(6)) is None
    restarted = FrameSigner(TOKEN)  # a new camera process: new stream id, sequence from 1
    assert restarted.stream_id != "stream-a"
    assert check(*signed(1, signer=restarted)) is None
    assert check(*signed(7)) is None  # the old stream's numbering goes on independently


def test_the_verifier_remembers_a_bounded_number_of_streams() -> None:
    remembering = verifier()
    for index in range(100):
        assert remembering.check(*signed(1, signer=FrameSigner(TOKEN, stream_id=f"s{index}"))) is None
    assert remembering.check(*signed(1, signer=FrameSigner(TOKEN, stream_id="s99"))) == REPLAYED
    assert len(remembering._last) == 16  # memory stays bounded however many streams come and go


def test_drops_are_counted_by_reason_and_logged_once_per_burst(caplog: pytest.LogCaptureFixture) -> None:
    gate = FrameGate(TOKEN, where="http://camera/stream.mjpg", clock=ManualClock(NOW))
    caplog.set_level(logging.DEBUG, logger="smartlock.camera.signing")
    for sequence in range(1, 6):
        assert not gate.admit({}, JPEG)
        assert not gate.admit(*signed(sequence, signer=FrameSigner("other", stream_id="x")))
    assert gate.admit(*signed(1))
    assert not gate.admit(*signed(1))
    assert not gate.admit(*signed(2, at=NOW - 10))
    assert gate.rejected.counts == {UNSIGNED: 5, BAD_SIGNATURE: 5, STALE: 1, REPLAYED: 1}
    assert gate.rejected.total == 12
    assert gate.rejected.summary() == "unsigned 5, bad-signature 5, stale 1, replayed 1"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # once per reason in a burst, not once per frame
    assert len(warnings) == 4, warnings
    assert "unsigned" in warnings[0] and "http://camera/stream.mjpg" in warnings[0]
    assert "wrongly signed" in warnings[1] and "replayed" in warnings[2] and "stale" in warnings[3]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["Signed frames from http://camera/stream.mjpg again, after 10 dropped"]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert debug[-1] == "Dropped frames: unsigned 5, bad-signature 5, stale 1, replayed 1"


def test_the_camera_signs_stream_and_snapshot_with_its_token(video_hub: FrameHub) -> None:
    from smartlock.camera.api import create_app
    from tests.support import uvicorn_server

    with uvicorn_server(create_app(video_hub, token=TOKEN), health_path="/health") as url, \
            httpx.Client(headers={"Authorization": f"Bearer {viewing_token(TOKEN)}"}) as client:
        parts = stream_parts(client, f"{url}/stream.mjpg", 8)
        snapshot = client.get(f"{url}/snapshot.jpg")
    check = FrameVerifier(TOKEN).check
    assert [check(headers, body) for headers, body in parts] == [None] * 8
    sequences = [int(headers["x-sequence"]) for headers, _ in parts]
    assert sequences == sorted(set(sequences))
    assert len({headers["x-stream-id"] for headers, _ in parts}) == 1
    assert FrameVerifier(TOKEN).check(lower(dict(snapshot.headers)), snapshot.content) is None
    assert FrameVerifier("another-token").check(*parts[0]) == BAD_SIGNATURE


def test_a_camera_without_a_token_sends_unsigned_frames(camera_url: str) -> None:
    with httpx.Client() as client:
        [(headers, body)] = stream_parts(client, f"{camera_url}/stream.mjpg", 1)
    assert "x-frame-signature" not in headers
    assert FrameVerifier(TOKEN).check(headers, body) == UNSIGNED


@pytest.mark.parametrize("variant", ["unsigned", "wrong-key", "stale"])
def test_a_relay_holding_the_upstream_token_relays_no_rogue_frame(variant: str) -> None:
    from smartlock.camera.api import create_app
    from smartlock.camera.sources import UrlSource
    from tests.camera.media import PALETTE, jpeg_bytes, solid_image
    from tests.camera.rogue import RogueCamera
    from tests.support import uvicorn_server, wait_for

    rogue = RogueCamera(jpeg_bytes(solid_image(PALETTE[0])), variant, camera_token=TOKEN)
    with uvicorn_server(rogue.app, health_path="/health") as upstream:
        source = UrlSource(f"{upstream}/stream.mjpg", token=TOKEN)
        source.open()
        hub = FrameHub(source, backoff=(0.05, 0.2))
        with uvicorn_server(create_app(hub, token="relay-own"), health_path="/health") as relay:
            assert source.gate is not None
            wait_for(lambda: source.gate.rejected.total >= 10, what="10 dropped upstream frames")
            assert hub.latest is None
            refused = httpx.get(f"{relay}/snapshot.jpg", headers={"X-Token": viewing_token("relay-own")},
                                timeout=10)
        hub.stop()
    assert refused.status_code == 503 and not refused.content.startswith(b"\xff\xd8")
    assert source.gate.rejected.total == max(source.gate.rejected.counts.values())


def test_a_viewing_token_opens_the_stream_but_cannot_forge_frames_or_proofs(video_hub: FrameHub) -> None:
    from smartlock.camera.api import create_app
    from smartlock.camera.signing import FrameSigner, access_proof
    from tests.support import uvicorn_server

    view = viewing_token(TOKEN)
    assert view != TOKEN
    face = b"\xff\xd8 a forged face"
    forged = FrameSigner(view).headers(face, NOW, 1)  # signed with what a viewer holds
    assert FrameVerifier(TOKEN, clock=lambda: NOW).check(lower(forged), face) == BAD_SIGNATURE
    with uvicorn_server(create_app(video_hub, token=TOKEN), health_path="/health") as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/snapshot.jpg", headers={"X-Token": view}).status_code == 200
        assert client.get("/snapshot.jpg", headers={"Authorization": access_proof(view)}).status_code == 401


def test_an_access_proof_opens_the_camera_without_revealing_the_token(video_hub: FrameHub) -> None:
    from smartlock.camera.api import create_app
    from smartlock.camera.signing import access_proof, proof_matches
    from tests.support import uvicorn_server

    proof = access_proof(TOKEN)
    assert proof.startswith("Smartlock-Proof t=") and TOKEN not in proof
    credentials = proof.partition(" ")[2]
    assert proof_matches(TOKEN, credentials) and not proof_matches("other", credentials)
    assert not proof_matches(TOKEN, access_proof(TOKEN, now=NOW - 11).partition(" ")[2], now=NOW)
    assert proof_matches(TOKEN, access_proof(TOKEN, now=NOW - 9).partition(" ")[2], now=NOW)
    assert not proof_matches(TOKEN, credentials.replace("mac=", "mac=0"))
    with uvicorn_server(create_app(video_hub, token=TOKEN), health_path="/health") as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/snapshot.jpg", headers={"Authorization": access_proof(TOKEN)}).status_code == 200
        for forged in (access_proof("attacker"), access_proof(TOKEN, now=NOW), f"Bearer {credentials}",
                       "Smartlock-Proof " + TOKEN, f"Smartlock-Proof {credentials[:-1]}"):
            assert client.get("/snapshot.jpg", headers={"Authorization": forged}).status_code == 401, forged
        # the signing secret itself is no viewing token
        assert client.get("/snapshot.jpg", headers={"X-Token": TOKEN}).status_code == 401
