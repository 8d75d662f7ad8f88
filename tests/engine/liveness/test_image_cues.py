"""The image cues on drawn frames: a still picture, a bezel moving with the face, a screen's grid, glare,
a blink."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from smartlock.engine.liveness import blink, frame, motion, texture
from tests.engine.liveness.synth import FRAME, face_frames, paint_face
from tests.engine.liveness.synth import texture as make_texture

FACE = make_texture(7, (100, 120), blur=2.0)
WALL = np.full((FRAME[1], FRAME[0], 3), 150, np.uint8)


def still_track(n: int = 30) -> list:
    return face_frames(n, lambda f, i: paint_face(f, FACE, 270, 120), make_texture(1), seed=1)


def test_a_still_picture_is_an_attack() -> None:
    result = motion.judge(still_track())
    assert result.decision == "attack", result.reason


def test_a_face_that_moves_a_pixel_a_frame_is_not_still() -> None:
    track = face_frames(30, lambda f, i: paint_face(f, FACE, 250 + i, 120 + i / 2), make_texture(1), seed=1)
    assert motion.judge(track).decision == "abstain"


def test_motion_needs_a_second_of_frames() -> None:
    assert motion.judge(still_track(10)).decision == "abstain"


def test_a_tiny_still_face_abstains() -> None:
    small = make_texture(7, (30, 36))
    track = face_frames(30, lambda f, i: paint_face(f, small, 300, 150), make_texture(1), seed=1)
    result = motion.judge(track)
    assert result.decision == "abstain" and "too small" in result.reason


def bezel(f: np.ndarray, i: int) -> tuple[float, float, float, float]:
    x, y = 200 + 3 * i, 110 + (i % 7)
    cv2.rectangle(f, (x - 30, y - 35), (x + 130, y + 155), (20, 20, 20), -1)  # the device
    cv2.rectangle(f, (x - 22, y - 27), (x + 122, y + 147), (200, 190, 180), -1)  # its lit screen
    return paint_face(f, FACE, x, y)


def test_a_bezel_moving_with_the_face_is_an_attack() -> None:
    result = frame.judge(face_frames(36, bezel, WALL, seed=2))
    assert result.decision == "attack", result.reason


def test_a_door_frame_behind_a_moving_face_is_not_a_bezel() -> None:
    def door(f: np.ndarray, i: int) -> tuple[float, float, float, float]:
        cv2.rectangle(f, (150, 0), (170, 360), (60, 40, 30), -1)
        cv2.rectangle(f, (420, 0), (440, 360), (60, 40, 30), -1)
        cv2.line(f, (0, 70), (640, 70), (60, 40, 30), 6)
        return paint_face(f, FACE, 200 + 3 * i, 110)

    assert frame.judge(face_frames(36, door, WALL, seed=3)).decision != "attack"


def test_a_bezel_around_a_face_that_does_not_move_is_an_attack() -> None:
    """A screen on a stand replaying a video: the head inside may turn (real depth), the device stays."""
    def replay(f: np.ndarray, i: int) -> tuple[float, float, float, float]:
        cv2.rectangle(f, (170, 75), (330, 265), (20, 20, 20), -1)
        cv2.rectangle(f, (178, 83), (322, 257), (200, 190, 180), -1)
        return paint_face(f, FACE, 200 + 2 * (i % 3), 110)  # the video's head sways inside the screen

    result = frame.judge(face_frames(36, replay, WALL, seed=2))
    assert result.decision == "attack" and "enclose" in result.reason, result.reason
    off = frame.judge(face_frames(36, replay, WALL, seed=2), frame.FrameSettings(enclosure=0.0))
    assert off.decision == "abstain", off.reason


def shelves(above: tuple[float, float], below: tuple[float, float] | None = None):
    """Two dark straight edges across the frame, each from (x=0, y) to (x=640, y'), beside a still face whose
    box is 100 x 120 px with its centre at (250, 170)."""
    def draw(f: np.ndarray, i: int) -> tuple[float, float, float, float]:
        for y0, y1 in (above, below) if below else (above,):
            cv2.line(f, (0, round(y0)), (640, round(y1)), (40, 30, 20), 6, cv2.LINE_AA)
        return paint_face(f, FACE, 200, 110)
    return draw


def test_a_still_face_beside_one_edge_or_between_far_edges_is_not_framed() -> None:
    def one_side(f: np.ndarray, i: int) -> tuple[float, float, float, float]:
        cv2.rectangle(f, (150, 0), (170, 360), (60, 40, 30), -1)  # a door post close on the left only
        return paint_face(f, FACE, 200, 110)

    result = frame.judge(face_frames(36, one_side, WALL, seed=3))
    assert result.decision == "abstain", result.reason
    # the crop reaches 1.5 box sizes below the centre here and 1.42 above it (the frame's top), the edges 1.4
    edges = shelves((170 - 1.4 * 120,) * 2, (170 + 1.4 * 120,) * 2)
    assert frame.judge(face_frames(36, edges, WALL, seed=3)).decision == "attack"
    shorter_reach = frame.FrameSettings(enclosure=1.2)
    result = frame.judge(face_frames(36, edges, WALL, seed=3), shorter_reach)
    assert result.decision == "abstain", result.reason
    closer = shelves((170 - 1.1 * 120,) * 2, (170 + 1.1 * 120,) * 2)
    assert frame.judge(face_frames(36, closer, WALL, seed=3), shorter_reach).decision == "attack"


@pytest.mark.parametrize("seed", range(3, 9))
def test_a_still_frame_whose_sides_are_broken_beside_the_face_is_still_framed(seed: int) -> None:
    """Two sides cut where the face's centre passes (a cable, a busy picture along the bezel): no piece runs
    alongside the face both ways; the pieces of each side, joined, do (whichever the edge detector lists
    first: each seed's camera noise orders them differently)."""
    def broken_sides(f: np.ndarray, i: int) -> tuple[float, float, float, float]:
        for x in (250 - 0.9 * 120, 250 + 0.9 * 120):
            for y0, y1 in ((0, 160), (180, 360)):  # the gaps: 20 px at the face's centre height
                cv2.line(f, (round(x), y0), (round(x), y1), (40, 30, 20), 2, cv2.LINE_AA)
        return paint_face(f, FACE, 200, 110)

    result = frame.judge(face_frames(36, broken_sides, WALL, seed=seed))
    assert result.decision == "attack" and "enclose" in result.reason, result.reason


def test_a_short_piece_along_a_long_edge_does_not_shorten_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The edge detector may list a short piece of an edge (the other side of a thick border) before the
    whole of it: the side still runs as far as its longest piece."""
    side = np.pi / 2
    pieces = [(side, -0.90, 0.0, 0.7), (side, -0.92, -0.6, 0.6),  # the short piece first, then the whole edge
              (side, 0.90, 0.0, 0.7), (side, 0.92, -0.6, 0.6)]
    monkeypatch.setattr(frame, "face_lines", lambda obs, s: pieces)
    result = frame.judge(still_track())
    assert result.decision == "attack" and "enclose" in result.reason, result.reason


def test_edges_around_a_moving_face_that_it_does_not_cross_are_not_a_frame() -> None:
    """A person walking sideways between shelves above and below: the edges stay put relative to the face, but
    the face is not held still, and it never crosses them (the background's, as far as the cue can tell)."""
    def walking(f: np.ndarray, i: int) -> tuple[float, float, float, float]:
        for y in (170 - 1.1 * 120, 170 + 1.1 * 120):
            cv2.line(f, (0, round(y)), (640, round(y)), (40, 30, 20), 6, cv2.LINE_AA)
        return paint_face(f, FACE, 150 + 4 * i, 110)

    result = frame.judge(face_frames(36, walking, WALL, seed=3))
    assert result.decision == "abstain", result.reason


def test_a_card_moving_with_its_top_and_bottom_edges_tilted_opposite_ways_is_framed() -> None:
    """Edges at 2° and 178° are on two sides of the face (their normals point opposite ways)."""
    tilt = 640 * np.tan(np.radians(2))

    def card(f: np.ndarray, i: int) -> tuple[float, float, float, float]:
        y = 40 + 2 * i
        for y0, y1 in ((y + 5, y + 5 + tilt), (y + 230, y + 230 - tilt)):
            cv2.line(f, (0, round(y0)), (640, round(y1)), (40, 30, 20), 6, cv2.LINE_AA)
        return paint_face(f, FACE, 200, y + 60)

    result = frame.judge(face_frames(36, card, WALL, seed=3))
    assert result.decision == "attack" and "2 sides" in result.reason, result.reason


def test_nearly_horizontal_edges_keep_their_side_across_the_angle_wrap() -> None:
    """Edges at 3° and 177° are 6° apart with normals pointing opposite ways: two edges both above the face
    are one side, and a top and a bottom edge tilted opposite ways are two."""
    tilt = 640 * np.tan(np.radians(3))
    both_above = shelves((20, 20 + tilt), (95, 95 - tilt))
    assert frame.judge(face_frames(36, both_above, WALL, seed=3)).decision == "abstain"
    top_and_bottom = shelves((40, 40 + tilt), (300, 300 - tilt))
    result = frame.judge(face_frames(36, top_and_bottom, WALL, seed=3))
    assert result.decision == "attack" and "enclose" in result.reason, result.reason


def test_a_screen_grid_is_an_attack_and_a_face_is_not() -> None:
    """The texture cue (off by default) needs the face at camera resolution: a crop the tracker did not
    shrink (a face small enough for CROP_MAX_SIDE with half a face of context here)."""
    grid = FACE.copy()
    grid[::3, :] //= 3
    grid[:, ::3] //= 3
    gridded = face_frames(12, lambda f, i: paint_face(f, grid, 270, 120), make_texture(1), seed=4,
                          context=0.5)
    plain = face_frames(12, lambda f, i: paint_face(f, FACE, 270 + i, 120), make_texture(1), seed=4,
                        context=0.5)
    assert texture.judge(gridded).decision == "attack"
    assert texture.judge(plain).decision == "abstain"


def test_glare_on_the_face_is_an_attack() -> None:
    def glossy(f: np.ndarray, i: int) -> tuple[float, float, float, float]:
        box = paint_face(f, FACE, 270 + i, 120)
        cv2.circle(f, (320 + i, 170), 18, (255, 255, 255), -1)
        return box

    result = texture.judge(face_frames(12, glossy, make_texture(1), noise=0.0))
    assert result.decision == "attack" and "glare" in result.reason


def test_a_blink_is_live_evidence_and_open_eyes_are_not() -> None:
    def eyes(closed: bool):
        def draw(f: np.ndarray, i: int) -> tuple[float, float, float, float]:
            box = paint_face(f, FACE, 270, 120)
            for ex in (300, 340):  # the synthetic landmarks put the eyes at 30% and 70% of the box width
                shut = closed and 20 <= i < 23
                cv2.circle(f, (ex, 166), 7, (200, 190, 180) if shut else (20, 20, 20), -1)
            return box
        return draw

    blinking = face_frames(40, eyes(True), make_texture(1), seed=5)
    staring = face_frames(40, eyes(False), make_texture(1), seed=5)
    assert blink.judge(blinking).decision == "live"
    assert blink.judge(staring).decision == "abstain"


def test_a_box_without_a_size_finds_no_edges() -> None:
    """A degenerate or non-finite box (the gate never gives one; the judge must not throw in the engine)."""
    import dataclasses

    track = face_frames(36, bezel, WALL, seed=2)
    for box in ((np.nan,) * 4, (100.0, 100.0, 100.0, 100.0)):
        broken = [dataclasses.replace(obs, detection=dataclasses.replace(obs.detection, box=box))
                  for obs in track]
        assert frame.face_lines(broken[-1], frame.FrameSettings()) == []
        assert frame.judge(broken).decision == "abstain"
