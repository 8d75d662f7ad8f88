"""How alike (cosine of in-process ArcFace embeddings) a walk-up's own frames are, against two people's.

    .venv/bin/python benchmarks/same_face.py [--split tune|report] [--people 40]

For the tracks' same-face rules (smartlock/engine/tracks.py SAME_FACE, MISS_SAME_FACE): each person of the
split is enrolled from three photos other than the one the liveness bench renders (liveness_bench/unlock.py);
every other frame of their walk-up goes through the engine's SCRFD gate and the in-process recogniser,
mirrored as the engine does. Printed: for each frame recognised below the threshold, its cosine to the mean
of the same walk-up's confident frames before it (what SAME_FACE compares); for each pair of people, the most
alike pair of frames, one of each (a stranger's face against the enrolled person's, at best); frames of one
walk-up 0.25 s apart, after its first confident one (a face across a short miss of the gate: what
MISS_SAME_FACE compares); and every pair of two photos of one person of the split (a card flipped, or swapped,
to another picture of the same person while the gate saw nothing: what MISS_SAME_FACE must tell apart).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import benchmarks.liveness_bench as bench  # noqa: E402
from benchmarks.liveness_bench import unlock  # noqa: E402
from smartlock.config import faces_dir  # noqa: E402
from smartlock.engine.settings import DEFAULT_THRESHOLD  # noqa: E402
from smartlock.engine.tracks import MISS_HEAL, MISS_SAME_FACE, SAME_FACE  # noqa: E402

ACROSS_A_MISS = 3  # sampled frames (every other at 24 fps): 0.25 s, a miss of MISS_HEAL and a bit


def walk_embeddings(recognition, walk: unlock.WalkUp, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, confidence as ``name``) of every other frame of the walk-up with one usable face."""
    from smartlock.engine.engine import mirrored
    from smartlock.engine.gate import build_gate
    from smartlock.engine.vision import prepare

    gate = build_gate(None)
    vectors, confidences = [], []
    for frame in walk.frames[unlock.HALLWAY_FRAMES::2]:
        image = prepare(frame, mirror=False)
        faces = gate.detect(image, 0.0).faces
        if len(faces) != 1:
            continue
        shown = np.ascontiguousarray(image[:, ::-1])
        (face,) = recognition.found(shown, [mirrored(faces[0], image.shape[1])])
        vector = np.asarray(face.embedding, np.float32)
        vectors.append(vector / np.linalg.norm(vector))
        top = face.top_prediction
        confidences.append(top.confidence if top is not None and top.label == name else 0.0)
    return np.asarray(vectors).reshape(-1, 512), np.asarray(confidences)


def photo_embeddings(recognition, folder: Path) -> np.ndarray:
    """The in-process embedding of the largest face in each photo of ``folder``."""
    from smartlock.camera.imaging import load_cv2

    cv2 = load_cv2()
    vectors = []
    for path in sorted(folder.iterdir()):
        image = cv2.imread(str(path)) if path.suffix.lower() in (".jpg", ".jpeg", ".png") else None
        faces = recognition(image) if image is not None else []
        if faces:
            face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
            vector = np.asarray(face.embedding, np.float32)
            vectors.append(vector / np.linalg.norm(vector))
    return np.asarray(vectors).reshape(-1, 512)


def spread(values: list[float], percentiles: list[int], threshold: float) -> str:
    return (f"n={len(values)}, {'/'.join(str(p) for p in percentiles)}th percentile "
            f"{' / '.join(f'{v:.2f}' for v in np.percentile(values, percentiles))}, at or above {threshold}: "
            f"{np.mean(np.asarray(values) >= threshold):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=("tune", "report"), default="tune")
    parser.add_argument("--people", type=int, default=40)
    args = parser.parse_args()
    faces = faces_dir()
    if faces is None:
        sys.exit("face photos not found: set SMARTLOCK_FACES_DIR or put them at ../shared/faces")
    from smartlock.engine.assembly import in_process

    people = bench.people(faces, args.split, args.people)
    paths = dict(people)
    with tempfile.TemporaryDirectory(prefix="smartlock-same-face-") as folder:
        recognizer, enrolled = unlock.enrolled_gallery(faces, people, Path(folder) / "model")
        recognition = in_process(recognizer)
        walks: dict[str, np.ndarray] = {}
        own: list[float] = []
        across: list[float] = []
        photos: list[float] = []
        for number, name in enumerate(enrolled):
            walk = unlock.walk_up(name, paths[name], 60)
            if walk is None:
                continue
            vectors, confidences = walk_embeddings(recognition, walk, name)
            walks[name] = vectors
            for index in range(len(confidences)):
                before = [i for i in range(index) if confidences[i] > DEFAULT_THRESHOLD]
                if confidences[index] <= DEFAULT_THRESHOLD and before:
                    mean = vectors[before].mean(axis=0)
                    own.append(float(vectors[index] @ mean / np.linalg.norm(mean)))
            confident = np.flatnonzero(confidences > DEFAULT_THRESHOLD)
            if len(confident):
                across += [float(vectors[i] @ vectors[i + ACROSS_A_MISS])
                           for i in range(confident[0], len(vectors) - ACROSS_A_MISS)]
            shots = photo_embeddings(recognition, faces / "people" / name)
            photos += [float(shots[a] @ shots[b]) for a, b in combinations(range(len(shots)), 2)]
            print(f"{number + 1} of {len(enrolled)} walk-ups", file=sys.stderr, flush=True)
    pairs = [float((walks[a] @ walks[b].T).max()) for a, b in combinations(walks, 2)
             if len(walks[a]) and len(walks[b])]
    print(f"same-face rule (SAME_FACE {SAME_FACE}), split {args.split}, {len(walks)} walk-ups, threshold "
          f"{DEFAULT_THRESHOLD}")
    if own:
        print(f"  frames below the threshold vs their walk-up's confident mean: "
              f"{spread(own, [5, 25, 50, 75, 95], SAME_FACE)}")
    if across:
        print(f"  frames of one walk-up 0.25 s apart, after its first confident one (across a miss of up to "
              f"{MISS_HEAL} s): {spread(across, [0, 1, 5, 50], MISS_SAME_FACE)}")
    if photos:
        print(f"  two photos of one person: {spread(photos, [50, 90, 95, 99, 100], MISS_SAME_FACE)}")
    if pairs:
        high = np.percentile(pairs, [50, 95, 99, 100])
        print(f"  two people, their most alike frames: n={len(pairs)} pairs, 50/95/99/100th percentile "
              f"{' / '.join(f'{v:.2f}' for v in high)}, at or above {SAME_FACE}: "
              f"{sum(v >= SAME_FACE for v in pairs)}")


if __name__ == "__main__":
    main()
