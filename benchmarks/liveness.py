"""Liveness benchmark: APCER per attack type and BPCER on the bench's held-out people, decision times, ms
per judge call, the time to unlock of walk-ups through the engine's code with liveness on and off
(liveness_bench/unlock.py), real pedestrians, and the single-frame cues on the three real spoof stills.

    .venv/bin/python benchmarks/liveness.py [--split report|tune] [--people 160] [--timeout 2.5] [--cues ...]
                                            [--unlock-people 40]

Each sequence is replayed frame by frame into a track history of 48 observations (as the engine keeps);
from the face's first frame of 40+ px (taken as recognition naming it), the judge runs on every frame on
the observations from there (as the engine judges a recognised track), and the track's outcome is its
first decisive verdict: "live" (accepted), "attack" (refused), or "undecided" until the timeout (refused).
APCER (ISO/IEC 30107-3) = attacks accepted as live / attacks presented, per type; BPCER = genuine sequences
not judged live within the timeout / genuine sequences. Sequences where the detector never found a face are
counted apart (no track, nothing to judge). Rendering and detection are cached outside the repository
(first run: ~17 s per person and core).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import Counter, deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import benchmarks.liveness_bench as bench  # noqa: E402
from benchmarks.liveness_bench import scenes, unlock  # noqa: E402
from smartlock.config import faces_dir  # noqa: E402
from smartlock.engine.liveness import CUES, LivenessJudge, LivenessSettings  # noqa: E402
from smartlock.engine.liveness.texture import face_region, glare, moire  # noqa: E402
from smartlock.engine.tracks import DEFAULT_HISTORY, Detection, Observation, face_crop  # noqa: E402

MIN_TRACK = 5  # observations: fewer is a detector miss, not a liveness decision
RECOGNISABLE = 40.0  # px: from this box side recognition is taken to name the face (the gate's usable size)


def upper_bound(errors: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of an error rate seen ``errors`` times in ``n`` (0 of 24 is
    still up to 11.7%: a bench shows a rate only as well as its size allows)."""
    if n == 0:
        return 1.0
    if errors >= n:
        return 1.0

    def at_most(p: float) -> float:  # P(X <= errors) for X ~ Binomial(n, p)
        return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(errors + 1))

    low, high = errors / n, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if at_most(mid) > 1 - confidence else (low, mid)
    return high


def replay(judge: LivenessJudge, observations: list[Observation], timeout: float,
           timings: list[float] | None = None) -> tuple[str, float | None, list[str]]:
    """(outcome, seconds from the track's first frame to the decision, deciding cues). As in the engine,
    a track is judged once recognition has named it, on its frames from then on; recognition is taken to
    name the face from its first frame of RECOGNISABLE px (what the end-to-end benchmark sees at ~50 px)."""
    history: deque[Observation] = deque(maxlen=DEFAULT_HISTORY)
    start = observations[0].t
    recognised_at: float | None = None
    for obs in observations:
        if obs.t - start > timeout:
            break
        history.append(obs)
        if recognised_at is None and min(obs.detection.width, obs.detection.height) >= RECOGNISABLE:
            recognised_at = obs.t
        if recognised_at is None:
            continue
        began = time.perf_counter()
        verdict = judge.judge([o for o in history if o.t >= recognised_at])
        if timings is not None:
            timings.append(time.perf_counter() - began)
        if verdict.state != "undecided":
            return verdict.state, obs.t - start, verdict.decided_by
    return "undecided", None, []


def evaluate(judge: LivenessJudge, data: dict[str, list[tuple[str, list[Observation]]]], timeout: float,
             timings: list[float]) -> None:
    print(f"{'kind':18s} {'n':>4s} {'no face':>7s} {'live':>5s} {'attack':>6s} {'undec.':>6s} "
          f"{'APCER':>7s} {'BPCER':>7s} {'95% up to':>9s}  decided by")
    times: list[float] = []
    totals = {"attack": [0, 0], "genuine": [0, 0]}
    cut_short = {"attack": 0, "genuine": 0}
    for kind, items in data.items():
        outcomes: Counter[str] = Counter()
        deciders: Counter[str] = Counter()
        missing = 0
        for _name, observations in items:
            if len(observations) < MIN_TRACK:
                missing += 1
                continue
            outcome, when, by = replay(judge, observations, timeout, timings)
            outcomes[outcome] += 1
            deciders.update(by)
            if kind in scenes.GENUINE and outcome == "live" and when is not None:
                times.append(when)
            if outcome == "undecided" and observations[-1].t - observations[0].t < timeout - 1 / scenes.FPS:
                cut_short["genuine" if kind in scenes.GENUINE else "attack"] += 1
        judged = sum(outcomes.values())
        genuine = kind in scenes.GENUINE
        errors = judged - outcomes["live"] if genuine else outcomes["live"]
        rate = f"{100 * errors / judged:6.1f}%" if judged else "    n/a"
        totals["genuine" if genuine else "attack"][0] += errors
        totals["genuine" if genuine else "attack"][1] += judged
        bound = f"{100 * upper_bound(errors, judged):8.1f}%" if judged else "      n/a"
        print(f"{kind:18s} {len(items):4d} {missing:7d} {outcomes['live']:5d} {outcomes['attack']:6d} "
              f"{outcomes['undecided']:6d} {'' if genuine else rate:>7s} {rate if genuine else '':>7s} "
              f"{bound}  {', '.join(f'{k} {v}' for k, v in deciders.most_common())}")
    for group, (errors, judged) in totals.items():
        if judged:
            label = "BPCER" if group == "genuine" else "APCER"
            print(f"all {group}: {label} {errors}/{judged} = {100 * errors / judged:.1f}% (95% upper bound "
                  f"{100 * upper_bound(errors, judged):.1f}%)")
    print(f"tracks still undecided when the face was lost (or the clip ended) before the {timeout:g} s "
          f"timeout: genuine {cut_short['genuine']} (counted as refused), attack {cut_short['attack']} (as "
          "refused: one that would have been judged live later is missing from APCER)")
    if times:
        median = statistics.median(times)
        print(f"time to 'live' (genuine, from the track's first frame): median {median:.2f} s,"
              f" p90 {float(np.percentile(times, 90)):.2f} s, max {max(times):.2f} s (n={len(times)}; "
              f"{statistics.median(times) * scenes.FPS:.0f} frames at {scenes.FPS:.0f} fps)")


def pedestrians(judge: LivenessJudge, faces: Path, timeout: float) -> None:
    """Real people walking toward a camera (genuine only): each track of 12+ frames."""
    import cv2

    path = faces / "video" / "pedestrians.mp4"
    if not path.exists():
        print("pedestrians.mp4 not found: skipped")
        return
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while len(frames) < 400:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, scenes.SIZE, interpolation=cv2.INTER_AREA))
    tracks = [t for t in bench.observe(frames, fps=fps) if len(t) >= 12]
    outcomes: Counter[str] = Counter()
    times = []
    for observations in tracks:
        outcome, when, _ = replay(judge, observations, timeout)
        outcomes[outcome] += 1
        if when is not None and outcome == "live":
            times.append(when)
        sizes = [min(o.detection.width, o.detection.height) for o in observations]
        print(f"  track of {len(observations)} frames, face {min(sizes):.0f}-{max(sizes):.0f} px: {outcome}"
              + (f" after {when:.2f} s" if when is not None else ""))
    print(f"pedestrians.mp4 ({len(frames)} frames at {fps:.0f} fps, 640x360): {len(tracks)} tracks of 12+ "
          f"frames; live {outcomes['live']}, attack {outcomes['attack']}, undecided {outcomes['undecided']}")


def spoof_stills(faces: Path) -> None:
    """The texture cue's measurements on the three real photographs (single frames: no motion cues)."""
    import cv2

    folder = faces / "spoof"
    for name in ("print_poster.jpg", "tablet_replay.jpg", "live_person.jpg"):
        image = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        if image is None:
            print(f"  {name}: not found")
            continue
        scale = min(scenes.SIZE[0] / image.shape[1], scenes.SIZE[1] / image.shape[0])
        frame = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
        boxes, scores, points = bench.detector()(np.ascontiguousarray(frame[:, :, ::-1]))
        if len(boxes) == 0:
            print(f"  {name}: no face found")
            continue
        box = tuple(float(v) for v in boxes[0])
        crop, origin = face_crop(frame, box)  # type: ignore[misc, arg-type]
        obs = Observation(t=0.0, seq=0, detection=Detection(box, float(scores[0]), points[0]),  # type: ignore[arg-type]
                          frame_size=(frame.shape[1], frame.shape[0]), crop=crop, crop_origin=origin)
        region = face_region(obs)
        assert region is not None
        print(f"  {name}: face {box[2] - box[0]:.0f} px, moiré peak {moire(region):.1f}, "
              f"glare {100 * glare(region, 250):.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("report", "tune"), default="report")
    parser.add_argument("--people", type=int, default=160,
                        help="people of the split (report: 172, tune: 133)")
    parser.add_argument("--frames", type=int, default=60,
                        help=f"frames of each clip at {scenes.FPS:g} fps, before the {bench.LEAD:g} s more "
                             "rendered for faces found late")
    parser.add_argument("--timeout", type=float, default=2.5, help="seconds a track may stay undecided")
    parser.add_argument("--no-video", action="store_true", help="skip pedestrians.mp4 and the spoof stills")
    parser.add_argument("--unlock-people", type=int, default=40,
                        help="walk-ups (people of the split, enrolled from their other photos) timed through "
                             "the engine's code with liveness on and off (0: skip)")
    parser.add_argument("--cues", default=",".join(LivenessSettings().cues),
                        help=f"comma-separated cues to run (known: {', '.join(CUES)})")
    parser.add_argument("--confirm-cues", default=",".join(LivenessSettings().confirm_cues),
                        help="comma-separated cues that must confirm a live verdict (empty: none; depth106's "
                             "thresholds are set for a confirmed verdict, so it is weaker alone)")
    args = parser.parse_args()
    faces = faces_dir()
    if faces is None:
        sys.exit("face photos not found: set SMARTLOCK_FACES_DIR or put them at ../shared/faces")
    data = bench.bench(faces, args.split, args.people, args.frames,
                       progress=lambda line: print(line, file=sys.stderr, flush=True))
    judge = LivenessJudge(LivenessSettings(cues=tuple(c for c in args.cues.split(",") if c),
                                           confirm_cues=tuple(c for c in args.confirm_cues.split(",") if c)))
    people = len(data[scenes.KINDS[0]])
    print(f"liveness bench, split {args.split}: {people} people x {len(scenes.KINDS)} kinds, "
          f"clips of {args.frames} + {bench.LEAD:g} s of frames (a face may be found late) at 640x360, "
          f"detector {bench.detector_name()}, each track judged until {args.timeout:.1f} s after its first "
          f"frame, cues {', '.join(judge.cue_names)}, live confirmed by "
          f"{', '.join(judge.confirm_names) or 'none'}")
    timings: list[float] = []
    evaluate(judge, data, args.timeout, timings)
    if timings:
        ms = np.asarray(timings) * 1000
        print(f"judge call: median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, "
              f"max {ms.max():.1f} ms over {len(ms)} calls (history up to {DEFAULT_HISTORY} observations)")
    if args.unlock_people > 0:
        walkers = bench.people(faces, args.split, min(args.people, args.unlock_people))
        results = unlock.measure(faces, walkers, args.frames, lambda: LivenessJudge(judge.settings),
                                 progress=lambda line: print(line, file=sys.stderr, flush=True))
        print(f"time to unlock (walk-ups of {len(walkers)} people, each enrolled from 3 other photos; the "
              "engine's gate, tracker, in-process ArcFace, unlock policy and judge on a simulated clock "
              "that runs as long as each frame took here; no network hops):")
        for line in unlock.table(results):
            print(f"  {line}")
    if not args.no_video:
        pedestrians(judge, faces, args.timeout)
        tex = judge.settings.texture
        print("spoof stills (single frames; texture cue thresholds: moiré peak "
              f"{tex.moire_peak}, glare {100 * tex.glare_fraction:.0f}%):")
        spoof_stills(faces)


if __name__ == "__main__":
    main()
