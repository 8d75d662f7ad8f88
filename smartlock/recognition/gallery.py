"""The enrolled gallery: embeddings per image, open-set matching and the calibrated confidence.

How a face's ``confidence`` is computed (see ``Calibration``):

* The face's score for an enrolled person is its similarity to the person's centroid (the normalised
  mean of their photos' embeddings). On ../shared/faces the centroid beats the best single photo: at a
  0.5% stranger false-accept rate dlib keeps 86% of genuine faces instead of 74%, and at 0.1% arcface
  keeps 99.7% instead of 99.5% (benchmarks/accuracy.py, 3 photos per person).
* A genuine score (the face is that person) and an impostor score (it is someone else) follow two
  distributions; their log likelihood ratio is modelled as a line, ``llr(s) = slope * (s - center)``
  (a logistic model of genuine vs impostor scores with balanced classes), fitted only in the score
  window where decisions are made (see ``fit_line``).
* Open-set Bayes: the face is a stranger, or one of the N enrolled people with equal prior, with prior
  odds ``prior_odds`` = P(some enrolled person) / P(stranger). Treating the scores against different
  people as independent, P(person k | all N scores) =
  (prior_odds / N) * LR(s_k) / (1 + (prior_odds / N) * sum_j LR(s_j)).
  A stranger has N chances to meet a high impostor score; the 1/N prior and the sum make that cost
  what it should, so the confidence keeps its meaning from 1 to thousands of enrolled people.
  ``prior_odds`` defaults to 0.25 (one face in five at the door is someone enrolled): a deliberately
  sceptical prior for a lock, where letting a stranger in costs far more than a second look at the
  camera. With even odds (1.0) dlib let 0.9% of strangers reach 0.8 with 305 people enrolled; with
  0.25, 0.25% (arcface: 0.10% and 0.05%, keeping 99.5% and 99.3% of genuine faces).
* ``intercept`` and ``slope`` are fitted on the gallery itself: genuine samples are leave-one-out
  scores of each enrolled photo against the rest of its person, impostor samples its scores against
  every other person. The fit is a MAP logistic regression whose prior is centred on per-backend
  defaults (``DEFAULT_CALIBRATION``), so a gallery of two people gets the defaults and a large one
  mostly its own data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

SimilarityFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CalibrationDefaults:
    """A backend's prior for the fit: the line's slope and centre (the score where genuine and impostor
    are equally likely), how sure we are of them, and the score window the fit looks at."""

    slope: float
    center: float
    slope_sd: float
    center_sd: float
    window: tuple[float, float]  # (impostor 99.9th percentile, genuine median) on the tuning photos


# Fitted offline on ../shared/faces by `python benchmarks/accuracy.py --fit-defaults`, which prints
# these lines: every person of people/ enrolled with 3 photos; genuine scores = leave-one-out + the
# other photos; impostor scores = leave-one-out + probes against other people + strangers/; the line
# fitted without a prior in the window; slope_sd = 15% of the slope, center_sd = 0.02. `--holdout`
# refits on half the people and strangers and measures on the other half (people never seen).
DEFAULT_CALIBRATION: dict[str, CalibrationDefaults] = {
    "arcface": CalibrationDefaults(slope=75.2, center=0.281, slope_sd=11.3, center_sd=0.02,
                                   window=(0.241, 0.698)),
    "dlib": CalibrationDefaults(slope=88.2, center=0.614, slope_sd=13.2, center_sd=0.02,
                                window=(0.642, 0.748)),
}
GENERIC_DEFAULTS = CalibrationDefaults(slope=20.0, center=0.5, slope_sd=10.0, center_sd=0.2,
                                       window=(-1.0, 1.0))
DEFAULT_PRIOR_ODDS = 0.25
MAX_STORED_SCORES = 20_000


@dataclass(frozen=True)
class Calibration:
    slope: float
    intercept: float
    prior_odds: float = DEFAULT_PRIOR_ODDS
    method: str = "default"
    genuine_scores: tuple[float, ...] = ()
    impostor_scores: tuple[float, ...] = ()
    stats: dict = field(default_factory=dict)

    def log_likelihood_ratio(self, scores: np.ndarray) -> np.ndarray:
        return self.intercept + self.slope * np.asarray(scores, dtype=np.float64)

    def confidences(self, scores: np.ndarray) -> np.ndarray:
        """(P, N) per-person scores -> (P, N) probabilities that each face is each person."""
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 2:
            raise ValueError("scores must be (faces, people)")
        people = scores.shape[1]
        if people == 0:
            return np.zeros_like(scores)
        log_terms = math.log(self.prior_odds / people) + self.log_likelihood_ratio(scores)
        # log of the denominator 1 + sum_j exp(log_terms_j), computed stably
        top = np.maximum(log_terms.max(axis=1, keepdims=True), 0.0)
        log_denominator = top + np.log(np.exp(-top) + np.exp(log_terms - top).sum(axis=1, keepdims=True))
        return np.exp(log_terms - log_denominator)

    def threshold_score(self, confidence: float, people: int) -> float:
        """The score a lone match (all other scores low) needs to reach ``confidence`` with N people."""
        people = max(people, 1)
        needed = math.log(confidence / (1 - confidence)) - math.log(self.prior_odds / people)
        return (needed - self.intercept) / self.slope

    def to_json(self) -> dict:
        return {
            "slope": self.slope,
            "intercept": self.intercept,
            "prior_odds": self.prior_odds,
            "method": self.method,
            "genuine_scores": [round(v, 5) for v in self.genuine_scores],
            "impostor_scores": [round(v, 5) for v in self.impostor_scores],
            "stats": self.stats,
        }

    @classmethod
    def from_json(cls, data: dict) -> Calibration:
        """The inverse of to_json; ValueError if the line does not rise or a number is not finite."""
        slope, intercept = float(data["slope"]), float(data["intercept"])
        prior_odds = float(data.get("prior_odds", DEFAULT_PRIOR_ODDS))
        if not (math.isfinite(slope) and slope > 0 and math.isfinite(intercept)):
            raise ValueError(f"calibration line slope={slope}, intercept={intercept} is unusable")
        if not (math.isfinite(prior_odds) and prior_odds > 0):
            raise ValueError(f"calibration prior odds {prior_odds} must be positive")
        return cls(
            slope=slope,
            intercept=intercept,
            prior_odds=prior_odds,
            method=str(data.get("method", "default")),
            genuine_scores=tuple(float(v) for v in data.get("genuine_scores", ())),
            impostor_scores=tuple(float(v) for v in data.get("impostor_scores", ())),
            stats=dict(data.get("stats", {})),
        )


def default_calibration(backend: str, prior_odds: float = DEFAULT_PRIOR_ODDS) -> Calibration:
    defaults = DEFAULT_CALIBRATION.get(backend, GENERIC_DEFAULTS)
    return Calibration(slope=defaults.slope, intercept=-defaults.slope * defaults.center,
                       prior_odds=prior_odds, method="default")


def fit_line(
    genuine: np.ndarray, impostor: np.ndarray, defaults: CalibrationDefaults, iterations: int = 100
) -> tuple[float, float]:
    """MAP fit of llr(s) = slope * (s - center) on genuine and impostor scores; returns (slope, intercept).

    A logistic regression of genuine vs impostor restricted to ``defaults.window``: restricting both
    classes to one score window leaves the logit unchanged, and the window keeps the fit on the region
    where the decision is made (a few mislabelled genuine photos near 0, or the bulk of impostors near
    0, would otherwise flatten the line). Each class weighs by its full count (balanced classes, so the
    logit is the likelihood ratio), and a Gaussian prior on (slope, center) keeps small or perfectly
    separable galleries near the backend's defaults instead of letting the slope explode.
    """
    genuine = np.asarray(genuine, dtype=np.float64)
    impostor = np.asarray(impostor, dtype=np.float64)
    if len(genuine) == 0 or len(impostor) == 0:
        return defaults.slope, -defaults.slope * defaults.center
    low, high = defaults.window
    gen_in = genuine[(genuine >= low) & (genuine <= high)]
    imp_in = impostor[(impostor >= low) & (impostor <= high)]
    scores = np.concatenate([gen_in, imp_in])
    features = np.stack([np.ones_like(scores), scores], axis=1)  # theta = (intercept, slope)
    labels = np.concatenate([np.ones(len(gen_in)), np.zeros(len(imp_in))])
    # balanced: every genuine sample weighs 1, every impostor len(genuine)/len(impostor)
    weights = np.concatenate([np.ones(len(gen_in)), np.full(len(imp_in), len(genuine) / len(impostor))])
    # The prior on (slope, center) carried over to (intercept = -slope * center, slope) by the delta
    # method: a Gaussian there keeps the posterior concave, so Newton's method converges from anywhere.
    b0, c0, var_b, var_c = defaults.slope, defaults.center, defaults.slope_sd**2, defaults.center_sd**2
    prior_mean = np.array([-b0 * c0, b0])
    prior_cov = np.array([[c0**2 * var_b + b0**2 * var_c, -c0 * var_b], [-c0 * var_b, var_b]])
    prior_precision = np.linalg.inv(prior_cov)

    def log_posterior(theta: np.ndarray) -> float:
        z = features @ theta
        loglik = weights @ (labels * z - np.logaddexp(0.0, z))
        delta = theta - prior_mean
        return float(loglik - 0.5 * delta @ prior_precision @ delta)

    theta = prior_mean.copy()
    current = log_posterior(theta)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(features @ theta, -50, 50)))
        gradient = features.T @ (weights * (labels - p)) - prior_precision @ (theta - prior_mean)
        hessian = -(features.T * (weights * p * (1 - p))) @ features - prior_precision
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-6:
            candidate = theta - scale * step
            value = log_posterior(candidate)
            if value >= current - 1e-12:
                break
            scale /= 2
        converged = np.abs(candidate - theta).max() < 1e-9
        theta, current = candidate, value
        if converged:
            break
    intercept, slope = float(theta[0]), float(theta[1])
    floor = 0.25 * defaults.slope  # the line must keep rising: a better match never lowers confidence
    if slope < floor:
        intercept, slope = intercept * floor / slope if slope > 0 else -floor * c0, floor
    return slope, intercept


@dataclass(frozen=True)
class ImageRecord:
    image_id: str
    person: str
    source: str


@dataclass(frozen=True)
class Gallery:
    """An immutable snapshot: records grouped by person (names sorted), one embedding row per record."""

    backend: str
    model_hashes: dict[str, str]
    records: tuple[ImageRecord, ...]
    embeddings: np.ndarray
    calibration: Calibration

    @classmethod
    def empty(cls, backend: str, model_hashes: dict[str, str], embedding_size: int,
              prior_odds: float = DEFAULT_PRIOR_ODDS) -> Gallery:
        if not prior_odds > 0:
            raise ValueError(f"prior odds must be positive, got {prior_odds}")
        return cls(backend, dict(model_hashes), (), np.zeros((0, embedding_size), np.float32),
                   default_calibration(backend, prior_odds))

    @property
    def embedding_size(self) -> int:
        return int(self.embeddings.shape[1])

    def people(self) -> list[str]:
        return sorted({record.person for record in self.records})

    def _segments(self) -> tuple[list[str], np.ndarray]:
        """Names in row order and the first row of each person's block."""
        names: list[str] = []
        starts: list[int] = []
        for row, record in enumerate(self.records):
            if not names or names[-1] != record.person:
                names.append(record.person)
                starts.append(row)
        return names, np.asarray(starts, dtype=np.intp)

    @cached_property
    def centroids(self) -> np.ndarray:
        """(N, D) per person: the L2-normalised mean of their photos' embeddings."""
        _, starts = self._segments()
        if not len(starts):
            return np.zeros((0, self.embedding_size), np.float32)
        return _normalise(np.add.reduceat(self.embeddings.astype(np.float64), starts, axis=0))

    def person_scores(self, probes: np.ndarray, similarity: SimilarityFn) -> tuple[list[str], np.ndarray]:
        """Names and the (P, N) scores of P probe embeddings against each person's centroid."""
        names, _ = self._segments()
        if not names or len(probes) == 0:
            return names, np.zeros((len(probes), len(names)), np.float64)
        return names, np.asarray(similarity(np.asarray(probes, np.float32), self.centroids), np.float64)

    def match(self, probes: np.ndarray, similarity: SimilarityFn) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Names, (P, N) scores and (P, N) calibrated confidences."""
        names, scores = self.person_scores(probes, similarity)
        return names, scores, self.calibration.confidences(scores)

    def with_images(self, records: Sequence[ImageRecord], embeddings: np.ndarray) -> Gallery:
        """A new gallery with these images added (not recalibrated)."""
        all_records = list(self.records) + list(records)
        all_embeddings = np.concatenate([self.embeddings, np.asarray(embeddings, np.float32)])
        return self._regrouped(all_records, all_embeddings)

    def without(self, keep: Callable[[ImageRecord], bool]) -> Gallery:
        rows = [row for row, record in enumerate(self.records) if keep(record)]
        return self._regrouped([self.records[row] for row in rows], self.embeddings[rows])

    def _regrouped(self, records: list[ImageRecord], embeddings: np.ndarray) -> Gallery:
        # stable sort by person keeps each person's photos in enrolment order
        order = sorted(range(len(records)), key=lambda row: records[row].person)
        return replace(self, records=tuple(records[row] for row in order),
                       embeddings=np.ascontiguousarray(embeddings[order], dtype=np.float32))

    def recalibrated(self, similarity: SimilarityFn, prior_odds: float | None = None) -> Gallery:
        return replace(self, calibration=calibrate(self, similarity, prior_odds))


def leave_one_out(gallery: Gallery, similarity: SimilarityFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per enrolled photo: its person's index, its (M, N) person scores with its own photo left out of
    its person's centroid (own column NaN when the person has no other photo), and whether it has one."""
    _, starts = gallery._segments()
    m = len(gallery.records)
    if m == 0:
        return np.zeros(0, np.intp), np.zeros((0, 0)), np.zeros(0, bool)
    embeddings = gallery.embeddings.astype(np.float64)
    scores = np.asarray(similarity(gallery.embeddings, gallery.centroids), np.float64)
    owner = np.searchsorted(starts, np.arange(m), side="right") - 1
    counts = np.diff(np.append(starts, m))
    has_genuine = counts[owner] > 1
    sums = np.add.reduceat(embeddings, starts, axis=0)
    own = np.full(m, np.nan)
    rows = np.flatnonzero(has_genuine)
    for chunk in np.array_split(rows, max(1, len(rows) // 512)):
        if len(chunk):
            others = _normalise(sums[owner[chunk]] - embeddings[chunk]).astype(np.float32)
            own[chunk] = np.diag(np.asarray(similarity(gallery.embeddings[chunk], others), np.float64))
    scores[np.arange(m), owner] = own
    return owner, scores, has_genuine


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def calibrate(gallery: Gallery, similarity: SimilarityFn, prior_odds: float | None = None) -> Calibration:
    """Fit the calibration on the gallery's own leave-one-out genuine and impostor scores."""
    prior_odds = gallery.calibration.prior_odds if prior_odds is None else prior_odds
    defaults = DEFAULT_CALIBRATION.get(gallery.backend, GENERIC_DEFAULTS)
    owner, scores, has_genuine = leave_one_out(gallery, similarity)
    m, people = scores.shape if scores.size else (len(owner), 0)
    genuine = scores[np.arange(m), owner][has_genuine] if m else np.zeros(0)
    impostor_mask = np.ones_like(scores, dtype=bool)
    if m:
        impostor_mask[np.arange(m), owner] = False
    impostor = scores[impostor_mask]
    slope, intercept = fit_line(genuine, impostor, defaults)
    method = "fitted" if len(genuine) and len(impostor) else "default"
    calibration = Calibration(slope=slope, intercept=intercept, prior_odds=prior_odds, method=method)
    stats = _loo_stats(calibration, owner, scores, has_genuine, people)
    stats.update(n_genuine=len(genuine), n_impostor=len(impostor), people=people, images=m)
    rng = np.random.default_rng(0)
    if len(impostor) > MAX_STORED_SCORES:
        impostor = rng.choice(impostor, MAX_STORED_SCORES, replace=False)
    # rounded as stored, so a reloaded gallery reports exactly what the saved one did
    return replace(calibration, genuine_scores=tuple(round(float(v), 5) for v in np.sort(genuine)),
                   impostor_scores=tuple(round(float(v), 5) for v in np.sort(impostor)), stats=stats)


def _loo_stats(calibration: Calibration, owner: np.ndarray, scores: np.ndarray, has_genuine: np.ndarray,
               people: int) -> dict:
    """Leave-one-out rank-1 accuracy and genuine acceptance, and the stranger false-accept rate
    estimated by treating each enrolled photo as a stranger to the other N-1 people."""
    stats: dict = {"loo_accuracy": None, "genuine_accept_at": {}, "false_accept_at": {}}
    m = len(owner)
    if m == 0 or people == 0:
        return stats
    thresholds = (0.5, 0.8, 0.9)
    rows = np.flatnonzero(has_genuine)
    if len(rows):
        own = scores[rows]
        confidences = calibration.confidences(np.nan_to_num(own, nan=-1.0))
        best = np.argmax(own, axis=1)
        correct = best == owner[rows]
        stats["loo_accuracy"] = float(correct.mean())
        own_conf = confidences[np.arange(len(rows)), owner[rows]]
        stats["genuine_accept_at"] = {str(t): float((correct & (own_conf >= t)).mean()) for t in thresholds}
    if people >= 2:
        stranger = scores.copy()
        stranger[np.arange(m), owner] = np.nan
        # each row now holds N-1 impostor scores; drop its own column for the N-1 gallery
        others = stranger[~np.isnan(stranger)].reshape(m, people - 1)
        top = calibration.confidences(others).max(axis=1)
        stats["false_accept_at"] = {str(t): float((top >= t).mean()) for t in thresholds}
        stats["stranger_trials"] = m
    return stats
