"""Frame around the face: the straight border of a phone, tablet, monitor or paper card, moving with it.

In each sampled crop, long straight edges (Canny + probabilistic Hough) that run alongside the face without
crossing it are expressed in the face's own coordinates (relative to the detector's box, in box sizes).
The background has straight edges too (door frames, shelves), but they stay put while the face moves; a
card's or a screen's border moves with the face. So an edge counts only when it is found at the same place
*relative to the face* in most sampled frames while the face moved across it in the frame by a good part of
its size. Two such edges (two sides, or a side and a corner) → attack.

Held still (the face's centre travelled less than ``min_motion`` box sizes over the window), a face between
two edges on opposite sides — parallel within ``enclosure_angle``, each within ``enclosure`` box sizes of
the face's centre, found in most sampled frames and running alongside the face at least ``enclosure_span``
both ways (the parts of it found in those frames together: a busy picture along a screen's bezel breaks
its edge in a different place in each frame) — is a screen or a card on a stand (the case that matters: a
screen replaying a video of the head turning, whose landmarks show real depth). It is also what a real
person standing still looks like with two straight edges of the background that close on either side of
the head: a doorway or a window farther back, shelves above and below, long straight hair; they are refused
as an attack (and count toward the spoof lockout). ``--liveness-still-frame off`` drops this rule, and lets
such a screen in.
Not caught: a replayed head that drifts a fifth of its size or more inside the screen (then the face moves
across the bezel: neither rule applies), a screen whose sides are beyond ``enclosure`` or outside the crop,
a bezel the colour of the wall behind it.

Limit: the crop reaches one box beyond the face on each side (the tracker's CROP_CONTEXT), so a border
farther out than that is not seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smartlock.engine.liveness.base import CueResult, abstain, face_size, recent, spread_evenly
from smartlock.engine.tracks import Observation

NAME = "frame"


@dataclass(frozen=True)
class FrameSettings:
    window: float = 1.5
    samples: int = 6
    min_samples: int = 4
    min_face: float = 40.0
    min_length: float = 0.6  # edge length in face-box sizes
    min_motion: float = 0.12  # the face's movement across an edge, in box sizes
    persistence: float = 0.7  # fraction of sampled frames an edge must be found in
    angle_tolerance: float = 8.0  # degrees
    offset_tolerance: float = 0.08  # box sizes
    min_edges: int = 2
    enclosure: float = 1.5  # box sizes: two parallel edges this close on opposite sides → attack (0: off)
    enclosure_span: float = 0.25  # box sizes each edge runs alongside the face, both ways from its centre
    enclosure_angle: float = 12.0  # degrees: "parallel" (a tilted device's sides converge in the image)


Line = tuple[float, float, float, float]  # angle (radians, [0, pi)), offset from the box centre, extent a, b


def face_lines(obs: Observation, s: FrameSettings) -> list[Line]:
    """Long straight edges of the crop that pass beside the face, in the face box's coordinates."""
    from smartlock.camera.imaging import load_cv2

    cv2 = load_cv2()
    crop = obs.crop
    if crop is None or crop.size == 0:
        return []
    gray = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    x0, y0, scale = obs.crop_origin
    left, top, right, bottom = obs.box
    size = max(right - left, bottom - top) * scale  # box size in crop pixels
    if not (np.isfinite(size) and size > 0):
        return []
    cx, cy = ((left + right) / 2 - x0) * scale, ((top + bottom) / 2 - y0) * scale
    median = float(np.median(gray))
    edges = cv2.Canny(gray, max(10.0, 0.5 * median), max(30.0, 1.2 * median))
    length = s.min_length * size
    found = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=max(10, int(0.4 * length)),
                            minLineLength=length, maxLineGap=max(3.0, 0.06 * size))
    lines: list[Line] = []
    for x1, y1, x2, y2 in ([] if found is None else found[:, 0]):
        direction = np.array([x2 - x1, y2 - y1], dtype=np.float64)
        direction /= np.linalg.norm(direction) + 1e-9
        angle = float(np.arctan2(direction[1], direction[0]) % np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        p1 = np.array([x1 - cx, y1 - cy]) / size
        p2 = np.array([x2 - cx, y2 - cy]) / size
        offset = float(p1 @ normal)
        a, b = sorted((float(p1 @ direction), float(p2 @ direction)))
        # beside the face (not through it), and running alongside it rather than off in a corner
        if abs(offset) >= 0.45 and a < 0.25 and b > -0.25:
            lines.append((angle, offset, a, b))
    return lines


def _aligned(line: Line, other: Line) -> tuple[float, float]:
    """(degrees between the two edges, ``other``'s offset along ``line``'s normal). Angles live in [0, pi):
    an edge at 179.5° and one at 0.5° are 1° apart, and their normals point opposite ways."""
    d_angle = abs(line[0] - other[0])
    if d_angle > np.pi / 2:
        return float(np.degrees(np.pi - d_angle)), -other[1]
    return float(np.degrees(d_angle)), other[1]


def _pieces(line: Line, others: list[Line], s: FrameSettings) -> list[tuple[float, float]]:
    """The extents (along ``line``'s direction) of every one of ``others`` on the same edge as ``line``."""
    pieces = []
    for other in others:
        degrees, offset = _aligned(line, other)
        if degrees <= s.angle_tolerance and abs(line[1] - offset) <= s.offset_tolerance:
            pieces.append((other[2], other[3]) if offset == other[1] else (-other[3], -other[2]))  # flipped
    return pieces


def judge(observations: Sequence[Observation], settings: FrameSettings | None = None) -> CueResult:
    s = settings or FrameSettings()
    window = [obs for obs in recent(observations, s.window) if obs.crop is not None]
    sampled = spread_evenly(window, s.samples)
    if len(sampled) < s.min_samples:
        return abstain(NAME, f"{len(sampled)} frames with crops, need {s.min_samples}")
    if face_size(sampled[-1]) < s.min_face:
        return abstain(NAME, f"face too small: {face_size(sampled[-1]):.0f} px, need {s.min_face:.0f}")
    per_frame = [face_lines(obs, s) for obs in sampled]
    centres = np.array([((o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2) for o in sampled])
    sizes = np.array([max(o.detection.width, o.detection.height) for o in sampled])
    rigid: list[Line] = []
    persistent: list[Line] = []
    moved_any = False
    for line in per_frame[-1]:
        pieces = [_pieces(line, lines, s) for lines in per_frame]  # the last frame's include line itself
        found_in_most = sum(map(bool, pieces)) >= s.persistence * len(per_frame)
        if found_in_most:  # it runs as far as all its pieces found in the sampled frames reach, together
            ends = [end for frame_pieces in pieces for piece in frame_pieces for end in piece]
            persistent.append((line[0], line[1], min(ends), max(ends)))
        normal = np.array([-np.sin(line[0]), np.cos(line[0])])
        across = centres @ normal
        # how far the face travelled across this edge (a background edge would have changed its offset)
        motion = float((across.max() - across.min()) / np.median(sizes))
        moved_any = moved_any or motion >= s.min_motion
        if found_in_most and motion >= s.min_motion and not any(
                _pieces(line, [kept], s) for kept in rigid):
            rigid.append(line)
    sides = _distinct_sides(rigid)
    detail = f"{len(rigid)} edges moving with the face ({sides} sides) over {len(sampled)} frames"
    if sides >= s.min_edges:
        return CueResult(NAME, -1.0, "attack", f"frame: {detail}")
    travel = float(np.ptp(centres, axis=0).max() / np.median(sizes))
    pair = _enclosing_pair(persistent, s) if travel < s.min_motion else ""  # held still: the moving
    # case is the rule above (an edge the face does not cross may be the background's)
    if pair:
        return CueResult(NAME, -1.0, "attack", f"frame: two parallel edges enclose the face ({pair}) over "
                                               f"{len(sampled)} frames")
    if not moved_any and travel < s.min_motion:
        return abstain(NAME, f"face did not move ({travel:.2f} box sizes): cannot tell a border from the "
                             "background")
    return CueResult(NAME, 0.0 if rigid else 0.1, "abstain", f"no frame: {detail}")


def _enclosing_pair(lines: list[Line], s: FrameSettings) -> str:
    """Two parallel edges on opposite sides of the face, each within ``s.enclosure`` box sizes of its centre
    and running alongside it at least ``s.enclosure_span`` both ways (a screen's or a card's two sides);
    '' when there are none."""
    close = [line for line in lines if abs(line[1]) <= s.enclosure
             and line[2] <= -s.enclosure_span and line[3] >= s.enclosure_span]
    for i, first in enumerate(close):
        for second in close[i + 1:]:
            degrees, offset = _aligned(first, second)
            if degrees <= s.enclosure_angle and np.sign(first[1]) != np.sign(offset):
                return f"{abs(first[1]):.2f} and {abs(offset):.2f} box sizes away, {degrees:.0f}° apart"
    return ""


def _other_side_or_direction(line: Line, other: Line) -> bool:
    degrees, offset = _aligned(line, other)
    return degrees >= 45 or np.sign(line[1]) != np.sign(offset)


def _distinct_sides(lines: list[Line]) -> int:
    """Edges on different sides of the face: differing in direction by 45°+ or on opposite sides."""
    kept: list[Line] = []
    for line in lines:
        if all(_other_side_or_direction(line, k) for k in kept):
            kept.append(line)
    return len(kept)
