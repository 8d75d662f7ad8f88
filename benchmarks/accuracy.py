"""Open-set accuracy on ../shared/faces: enroll 3 photos per person, probe with the rest and with strangers.

    .venv/bin/python benchmarks/accuracy.py [--backend arcface dlib] [--sizes 2 10 all] [--draws 10]
    .venv/bin/python benchmarks/accuracy.py --fit-defaults     # refit gallery.DEFAULT_CALIBRATION

Enrolled photos: the first 3 of each person in people/ (sorted names), largest face (as `smartlock
train` does). Probes: the person's other photos and every photo in strangers/, each by its central face
(LFW photos are centred on the named person). Galleries are built and calibrated by the same code as
`smartlock train` (Gallery.with_images + recalibrated). Embeddings are cached in benchmarks/results/.

The seed's method, on the same embeddings: a multinomial logistic regression over the enrolled people
(C=10, the seed's training/train.py default, and C=1000, the top of its grid search), confidence =
highest class probability.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
from _common import EmbeddingCache, dataset, installed_backends, require_faces

from smartlock.recognition.backends.base import Backend
from smartlock.recognition.gallery import (
    DEFAULT_CALIBRATION,
    Calibration,
    CalibrationDefaults,
    Gallery,
    ImageRecord,
    SimilarityFn,
    fit_line,
    leave_one_out,
)

LEVELS = (0.5, 0.8, 0.9)
FAR_POINTS = (0.01, 0.001)
ENROLL = 3


class Data:
    """Per backend: enrolled embeddings per person, genuine probes, stranger probes."""

    def __init__(self, backend: Backend, root: Path, people: dict[str, list[Path]],
                 strangers: list[Path]) -> None:
        cache = EmbeddingCache(backend, root)
        all_paths = [p for photos in people.values() for p in photos] + strangers
        cache.ensure(all_paths)
        self.backend = backend
        self.names = sorted(people)
        self.enrolled: list[np.ndarray] = []
        probes, labels = [], []
        self.no_face_enrol = 0
        for index, name in enumerate(self.names):
            photos = people[name]
            largest, _ = cache.select(photos[:ENROLL], "largest")
            keep = ~np.isnan(largest).any(axis=1)
            self.no_face_enrol += int((~keep).sum())
            self.enrolled.append(largest[keep])
            central, _ = cache.select(photos[ENROLL:], "central")
            probes.append(central)
            labels.extend([index] * len(central))
        self.probes = np.concatenate(probes)
        self.labels = np.asarray(labels)
        self.strangers, _ = cache.select(strangers, "central")

    def gallery(self, members: list[int]) -> Gallery:
        empty = Gallery.empty(self.backend.name, self.backend.model_hashes(), self.backend.embedding_size)
        records, vectors = [], []
        for index in members:
            for row, vector in enumerate(self.enrolled[index]):
                records.append(ImageRecord(f"{index:06x}{row:04x}", self.names[index], f"{row}"))
                vectors.append(vector)
        return empty.with_images(records, np.stack(vectors)).recalibrated(self.backend.similarity)


def _probe_scores(gallery: Gallery, similarity: SimilarityFn, vectors: np.ndarray) -> np.ndarray:
    """(P, N) person scores; a probe without a face scores -inf everywhere."""
    has_face = ~np.isnan(vectors).any(axis=1)
    scores = np.full((len(vectors), len(gallery.people())), -np.inf)
    if has_face.any():
        _, scores[has_face] = gallery.person_scores(vectors[has_face], similarity)
    return scores


def log_odds(calibration: Calibration, scores: np.ndarray) -> np.ndarray:
    """Per probe: log(c / (1 - c)) of its top confidence c, computed without saturating at c = 1."""
    people = scores.shape[1]
    terms = math.log(calibration.prior_odds / people) + calibration.log_likelihood_ratio(
        np.where(np.isfinite(scores), scores, -10.0))
    top_index = terms.argmax(axis=1)
    top = terms[np.arange(len(terms)), top_index]
    rest = terms.copy()
    rest[np.arange(len(terms)), top_index] = -np.inf
    rest = np.hstack([np.zeros((len(terms), 1)), rest])  # the "stranger" term, exp(0) = 1
    peak = rest.max(axis=1)
    return top - (peak + np.log(np.exp(rest - peak[:, None]).sum(axis=1)))


def metrics(correct: np.ndarray, genuine_conf: np.ndarray, genuine_rank: np.ndarray,
            stranger_conf: np.ndarray, stranger_rank: np.ndarray) -> dict:
    """``*_conf`` decide the fixed levels; ``*_rank`` (a monotone, unsaturated version) the FAR points."""
    result = {"rank1": float(correct.mean())}
    for level in LEVELS:
        result[f"gar@{level}"] = float((correct & (genuine_conf >= level)).mean())
        result[f"far@{level}"] = float((stranger_conf >= level).mean())
    ordered = np.sort(stranger_rank)[::-1]
    for far in FAR_POINTS:
        allowed = math.floor(far * len(ordered))
        threshold = ordered[allowed] if allowed < len(ordered) else -np.inf
        result[f"gar@far{far}"] = float((correct & (genuine_rank > threshold)).mean())
    return result


def evaluate_ours(data: Data, members: list[int],
                  strangers: np.ndarray | None = None) -> tuple[dict, Gallery]:
    gallery = data.gallery(members)
    similarity = data.backend.similarity
    member_set = np.isin(data.labels, members)
    position = {index: k for k, index in enumerate(members)}
    labels = np.array([position[i] for i in data.labels[member_set]])
    genuine = _probe_scores(gallery, similarity, data.probes[member_set])
    strangers = _probe_scores(gallery, similarity, data.strangers if strangers is None else strangers)
    cal = gallery.calibration
    g_conf = cal.confidences(np.where(np.isfinite(genuine), genuine, -10.0))
    s_conf = cal.confidences(np.where(np.isfinite(strangers), strangers, -10.0))
    has_face = np.isfinite(genuine).all(axis=1)
    correct = has_face & (g_conf.argmax(axis=1) == labels)
    result = metrics(correct, g_conf.max(axis=1), log_odds(cal, genuine), s_conf.max(axis=1),
                     log_odds(cal, strangers))
    return result, gallery


# -- the seed's method -------------------------------------------------------------------------------


def fit_softmax(x: np.ndarray, y: np.ndarray, classes: int, c: float = 10.0,
                iterations: int = 500) -> np.ndarray:
    """sklearn's multinomial LogisticRegression objective (0.5 |W|^2 + C * log loss, intercept free),
    minimised with L-BFGS."""
    n, d = x.shape
    onehot = np.eye(classes)[y]
    xb = np.hstack([x, np.ones((n, 1))])

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = flat.reshape(d + 1, classes)
        logits = xb @ w
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        penalty = 0.5 * (w[:-1] ** 2).sum()
        loss = -c * (onehot * log_p).sum() + penalty
        grad = c * xb.T @ (np.exp(log_p) - onehot)
        grad[:-1] += w[:-1]
        return loss, grad.ravel()

    flat = np.zeros((d + 1) * classes)
    loss, grad = objective(flat)
    history: list[tuple[np.ndarray, np.ndarray]] = []
    for _ in range(iterations):
        direction = -grad
        alphas = []
        for s, yv in reversed(history):
            alpha = (s @ direction) / (yv @ s)
            direction = direction - alpha * yv
            alphas.append(alpha)
        if history:
            s, yv = history[-1]
            direction *= (s @ yv) / (yv @ yv)
        for (s, yv), alpha in zip(history, reversed(alphas), strict=True):
            beta = (yv @ direction) / (yv @ s)
            direction = direction + s * (alpha - beta)
        step = 1.0
        while True:
            new_flat = flat + step * direction
            new_loss, new_grad = objective(new_flat)
            if new_loss <= loss + 1e-4 * step * (grad @ direction) or step < 1e-10:
                break
            step *= 0.5
        s, yv = new_flat - flat, new_grad - grad
        if s @ yv > 1e-12:
            history = [*history[-9:], (s, yv)]
        converged = abs(loss - new_loss) <= 1e-9 * max(1.0, abs(loss))
        flat, loss, grad = new_flat, new_loss, new_grad
        if converged or np.abs(grad).max() < 1e-6:
            break
    return flat.reshape(d + 1, classes)


def evaluate_seed(data: Data, members: list[int], c: float = 10.0) -> dict:
    x = np.concatenate([data.enrolled[i] for i in members])
    y = np.concatenate([np.full(len(data.enrolled[i]), k) for k, i in enumerate(members)])
    weights = fit_softmax(x, y, len(members), c=c)

    def probabilities(vectors: np.ndarray) -> np.ndarray:
        has_face = ~np.isnan(vectors).any(axis=1)
        logits = np.hstack([np.nan_to_num(vectors), np.ones((len(vectors), 1))]) @ weights
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        p[~has_face] = 0.0
        return p

    member_set = np.isin(data.labels, members)
    position = {index: k for k, index in enumerate(members)}
    labels = np.array([position[i] for i in data.labels[member_set]])
    g = probabilities(data.probes[member_set])
    s = probabilities(data.strangers)
    correct = (g.argmax(axis=1) == labels) & (g.max(axis=1) > 0)
    return metrics(correct, g.max(axis=1), g.max(axis=1), s.max(axis=1), s.max(axis=1))


# -- offline fit of the calibration defaults ---------------------------------------------------------


def fit_defaults(data: Data, members: list[int] | None = None,
                 strangers: np.ndarray | None = None) -> CalibrationDefaults:
    """Pool every genuine and impostor score of the all-people gallery (leave-one-out, probes and
    strangers), fit the windowed line without a prior, and return it as the backend's defaults."""
    members = list(range(len(data.names))) if members is None else members
    gallery = data.gallery(members)
    similarity = data.backend.similarity
    owner, loo, has_genuine = leave_one_out(gallery, similarity)
    m = len(owner)
    genuine = [loo[np.arange(m), owner][has_genuine]]
    mask = np.ones_like(loo, dtype=bool)
    mask[np.arange(m), owner] = False
    impostor = [loo[mask]]
    position = {index: k for k, index in enumerate(members)}
    chosen = np.isin(data.labels, members)
    probes = _probe_scores(gallery, similarity, data.probes[chosen])
    labels = np.array([position[i] for i in data.labels[chosen]])
    ok = np.isfinite(probes).all(axis=1)
    probes, labels = probes[ok], labels[ok]
    genuine.append(probes[np.arange(len(labels)), labels])
    mask = np.ones_like(probes, dtype=bool)
    mask[np.arange(len(labels)), labels] = False
    impostor.append(probes[mask])
    strangers = _probe_scores(gallery, similarity, data.strangers if strangers is None else strangers)
    impostor.append(strangers[np.isfinite(strangers).all(axis=1)].ravel())
    genuine_all, impostor_all = np.concatenate(genuine), np.concatenate(impostor)
    window = (round(float(np.quantile(impostor_all, 0.999)), 3), round(float(np.median(genuine_all)), 3))
    flat = CalibrationDefaults(slope=30.0, center=float(np.mean(window)), slope_sd=1e6, center_sd=1e6,
                               window=window)
    slope, intercept = fit_line(genuine_all, impostor_all, flat)
    current = DEFAULT_CALIBRATION.get(data.backend.name)
    print(f"{data.backend.name}: {len(genuine_all)} genuine and {len(impostor_all)} impostor scores; "
          f"window {window}")
    print(f"    fitted: slope={slope:.1f}, center={-intercept / slope:.3f}   (in use: {current})")
    return CalibrationDefaults(slope=round(slope, 1), center=round(-intercept / slope, 3),
                               slope_sd=round(0.15 * slope, 1), center_sd=0.02, window=window)


def holdout(data: Data) -> list[tuple[str, str, dict]]:
    """Refit the defaults on people and strangers A (even positions), measure on B (odd positions),
    and the other way round: figures for people the defaults never saw."""
    import smartlock.recognition.gallery as gallery_module

    name = data.backend.name
    saved = gallery_module.DEFAULT_CALIBRATION[name]
    rows = []
    halves = [list(range(0, len(data.names), 2)), list(range(1, len(data.names), 2))]
    stranger_halves = [data.strangers[0::2], data.strangers[1::2]]
    try:
        for fit_half, test_half in ((0, 1), (1, 0)):
            defaults = fit_defaults(data, halves[fit_half], stranger_halves[fit_half])
            gallery_module.DEFAULT_CALIBRATION[name] = defaults
            result, _ = evaluate_ours(data, halves[test_half], stranger_halves[test_half])
            label = f"held-out {'AB'[test_half]}, {len(halves[test_half])} people"
            rows.append((name, label, result))
    finally:
        gallery_module.DEFAULT_CALIBRATION[name] = saved
    return rows


# -- tables ------------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{100 * value:6.2f}%"


def print_table(rows: list[tuple[str, str, dict]]) -> None:
    columns = ["rank1"] + [f"gar@{v}" for v in LEVELS] + [f"far@{v}" for v in LEVELS] + [
        f"gar@far{f}" for f in FAR_POINTS]
    titles = ["rank-1"] + [f"GA@{v}" for v in LEVELS] + [f"FAR@{v}" for v in LEVELS] + [
        "GA@FAR1%", "GA@FAR0.1%"]
    header = f"| {'backend':8} | {'method, enrolled':27} | " + " | ".join(f"{t:>10}" for t in titles) + " |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for backend, label, result in rows:
        cells = " | ".join(f"{_fmt(result[c]):>10}" for c in columns)
        print(f"| {backend:8} | {label:27} | {cells} |")


def average(results: list[dict]) -> dict:
    return {key: float(np.mean([r[key] for r in results])) for key in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", nargs="+", default=None, help="backends (default: every installed one)")
    parser.add_argument("--sizes", nargs="+", default=["2", "10", "all"], help="gallery sizes to compare")
    parser.add_argument("--draws", type=int, default=10, help="random galleries per size below all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-seed-method", action="store_true", help="skip the seed's softmax method")
    parser.add_argument("--seed-c", type=float, nargs="+", default=[10.0, 1000.0],
                        help="inverse regularisation C of the seed's softmax: its default is 10; its grid "
                             "search tops out at 1000 (default: both)")
    parser.add_argument("--holdout", action="store_true",
                        help="fit the defaults on half the people and strangers, measure on the other half")
    parser.add_argument("--fit-defaults", action="store_true",
                        help="print refitted calibration defaults for gallery.DEFAULT_CALIBRATION")
    args = parser.parse_args()
    root = require_faces()
    people, strangers = dataset(root)
    rows: list[tuple[str, str, dict]] = []
    for name in installed_backends(args.backend):
        from smartlock.recognition.backends.base import get_backend

        started = time.perf_counter()
        data = Data(get_backend(name), root, people, strangers)
        probes_no_face = int(np.isnan(data.probes).any(axis=1).sum())
        strangers_no_face = int(np.isnan(data.strangers).any(axis=1).sum())
        print(f"{name}: {len(data.names)} people, {sum(len(e) for e in data.enrolled)} enrolled photos "
              f"({data.no_face_enrol} without a face), {len(data.probes)} genuine probes "
              f"({probes_no_face} without a face), {len(data.strangers)} strangers "
              f"({strangers_no_face} without a face)")
        if args.holdout:
            rows.extend(holdout(data))
            continue
        if args.fit_defaults:
            defaults = fit_defaults(data)
            print(f'    "{name}": {defaults},')
            continue
        rng = np.random.default_rng(args.seed)
        everyone = list(range(len(data.names)))
        for size in args.sizes:
            if size == "all":
                draws = [everyone]
            else:
                draws = [sorted(rng.choice(everyone, int(size), replace=False).tolist())
                         for _ in range(args.draws)]
            ours, fits = [], []
            seed_results: dict[float, list[dict]] = {c: [] for c in args.seed_c}
            for members in draws:
                result, gallery = evaluate_ours(data, members)
                ours.append(result)
                cal = gallery.calibration
                fits.append((cal.slope, -cal.intercept / cal.slope))
                if not args.no_seed_method:
                    for c in args.seed_c:
                        seed_results[c].append(evaluate_seed(data, members, c))
            label = f"{len(draws[0])} people" + (f" x{len(draws)}" if len(draws) > 1 else "")
            rows.append((name, f"open-set, {label}", average(ours)))
            for c, results in seed_results.items():
                if results:
                    rows.append((name, f"seed C={c:g}, {label}", average(results)))
            slope, center = np.mean(fits, axis=0)
            print(f"  {label}: fitted slope {slope:.1f}, center {center:.3f}")
        print(f"  ({time.perf_counter() - started:.0f} s)")
    if rows:
        print()
        print(f"Genuine acceptance (GA: right person at confidence >= level) and stranger false-accept rate "
              f"(FAR: top confidence >= level); {len(strangers)} strangers; GA@FAR: at the confidence "
              "threshold that lets that share of strangers in.")
        if args.holdout:
            print(f"Held-out rows: defaults refitted on the other half of the people and strangers, measured "
                  f"on this half ({len(strangers) // 2} strangers).")
        print_table(rows)


if __name__ == "__main__":
    main()
