"""Unit tests of open-set matching and calibration on synthetic vectors and scores (no models)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smartlock.recognition.gallery import (
    DEFAULT_CALIBRATION,
    Calibration,
    CalibrationDefaults,
    Gallery,
    ImageRecord,
    calibrate,
    default_calibration,
    fit_line,
)
from tests.recognition.fakes import SIZE, direction


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32) @ np.asarray(b, np.float32).T


def make_gallery(people: int, photos: int = 3, backend: str = "fake") -> Gallery:
    records, vectors = [], []
    for person in range(1, people + 1):
        for photo in range(1, photos + 1):
            records.append(ImageRecord(f"{person:04x}{photo:04x}", f"person{person:03d}", f"{photo}.jpg"))
            vectors.append(direction(person, photo))
    empty = Gallery.empty(backend, {"fake": "0" * 64}, SIZE)
    return empty.with_images(records, np.stack(vectors)).recalibrated(cosine)


class TestConfidences:
    cal = Calibration(slope=50.0, intercept=-50.0 * 0.3)

    def test_probabilities_of_people_and_stranger_sum_to_at_most_one(self):
        scores = np.array([[0.9, 0.2, 0.1], [0.35, 0.34, 0.1], [0.0, 0.0, 0.0]])
        confidences = self.cal.confidences(scores)
        assert confidences.shape == scores.shape
        assert np.all(confidences >= 0) and np.all(confidences.sum(axis=1) <= 1 + 1e-12)
        assert confidences[0, 0] > 0.99
        assert confidences[2].max() < 1e-5

    def test_two_close_matches_share_the_probability(self):
        confidences = self.cal.confidences(np.array([[0.6, 0.6]]))
        assert confidences[0, 0] == pytest.approx(confidences[0, 1])
        assert confidences[0, 0] < 0.5

    def test_a_lone_match_counts_for_less_in_a_larger_gallery(self):
        small = self.cal.confidences(np.array([[0.4, 0.0]]))[0, 0]
        large = self.cal.confidences(np.array([[0.4] + [0.0] * 299]))[0, 0]
        assert large < small

    def test_monotone_in_the_score(self):
        scores = np.linspace(-0.5, 1.0, 200)[:, None]
        confidences = self.cal.confidences(np.hstack([scores, np.zeros_like(scores)]))[:, 0]
        assert np.all(np.diff(confidences) >= 0)

    def test_no_overflow_at_extreme_scores(self):
        confidences = Calibration(slope=1000.0, intercept=-10.0).confidences(np.array([[1.0, -1.0]]))
        assert np.isfinite(confidences).all() and confidences[0, 0] == pytest.approx(1.0)

    def test_threshold_score_gives_that_confidence(self):
        for people in (1, 2, 10, 300):
            score = self.cal.threshold_score(0.8, people)
            row = np.array([[score] + [-1.0] * (people - 1)])
            assert self.cal.confidences(row)[0, 0] == pytest.approx(0.8, abs=1e-6)

    def test_empty_gallery(self):
        assert self.cal.confidences(np.zeros((2, 0))).shape == (2, 0)

    def test_json_round_trip(self):
        cal = Calibration(slope=12.5, intercept=-3.0, prior_odds=0.5, method="fitted",
                          genuine_scores=(0.5, 0.6), impostor_scores=(0.1,), stats={"loo_accuracy": 1.0})
        assert Calibration.from_json(cal.to_json()) == cal


class TestFit:
    defaults = CalibrationDefaults(slope=40.0, center=0.3, slope_sd=8.0, center_sd=0.03, window=(-1.0, 1.0))

    def test_few_separable_samples_stay_near_the_defaults(self):
        genuine = np.array([0.7, 0.75, 0.8])
        impostor = np.array([0.0, 0.05, 0.1, -0.05, 0.02, 0.08])
        slope, intercept = fit_line(genuine, impostor, self.defaults)
        assert abs(slope - 40.0) < 3 * 8.0
        assert abs(-intercept / slope - 0.3) < 3 * 0.03

    def test_no_samples_gives_the_defaults(self):
        slope, intercept = fit_line(np.array([]), np.array([0.1]), self.defaults)
        assert (slope, intercept) == (40.0, -40.0 * 0.3)

    def test_many_samples_recover_the_likelihood_ratio(self):
        # Two Gaussians with equal spread: the true log likelihood ratio is a line with
        # slope (mu_g - mu_i) / sigma^2 and centre (mu_g + mu_i) / 2.
        rng = np.random.default_rng(1)
        sigma, mu_g, mu_i = 0.1, 0.5, 0.1
        genuine = rng.normal(mu_g, sigma, 20_000)
        impostor = rng.normal(mu_i, sigma, 200_000)
        weak = CalibrationDefaults(slope=10.0, center=0.5, slope_sd=100.0, center_sd=1.0, window=(-1.0, 2.0))
        slope, intercept = fit_line(genuine, impostor, weak)
        assert slope == pytest.approx((mu_g - mu_i) / sigma**2, rel=0.05)
        assert -intercept / slope == pytest.approx((mu_g + mu_i) / 2, abs=0.01)

    def test_a_score_window_leaves_the_line_unchanged(self):
        rng = np.random.default_rng(2)
        genuine = rng.normal(0.5, 0.1, 20_000)
        impostor = rng.normal(0.1, 0.1, 200_000)
        windowed = CalibrationDefaults(slope=10.0, center=0.5, slope_sd=100.0, center_sd=1.0,
                                       window=(0.2, 0.45))
        slope, intercept = fit_line(genuine, impostor, windowed)
        assert slope == pytest.approx(40.0, rel=0.1)
        assert -intercept / slope == pytest.approx(0.3, abs=0.01)

    def test_every_backend_has_defaults_that_rise(self):
        for name, defaults in DEFAULT_CALIBRATION.items():
            cal = default_calibration(name)
            assert cal.slope > 0, name
            assert defaults.window[0] < defaults.window[1], name
            assert defaults.slope_sd < defaults.slope, name


class TestGallery:
    def test_scores_are_similarities_to_each_persons_centroid(self):
        gallery = make_gallery(3)
        probe = direction(2, 7)
        names, scores = gallery.person_scores(probe[None], cosine)
        assert names == ["person001", "person002", "person003"]
        centroids = [np.mean([direction(p, k) for k in (1, 2, 3)], axis=0) for p in (1, 2, 3)]
        expected = [float(probe @ c / np.linalg.norm(c)) for c in centroids]
        assert scores[0] == pytest.approx(expected, abs=1e-5)

    def test_leave_one_out_leaves_the_photo_out_of_its_centroid(self):
        from smartlock.recognition.gallery import leave_one_out

        gallery = make_gallery(2)
        owner, scores, has_genuine = leave_one_out(gallery, cosine)
        assert owner.tolist() == [0, 0, 0, 1, 1, 1] and has_genuine.all()
        rest = direction(1, 2) + direction(1, 3)
        assert scores[0, 0] == pytest.approx(float(direction(1, 1) @ rest / np.linalg.norm(rest)), abs=1e-5)
        _, direct = gallery.person_scores(direction(1, 1)[None], cosine)
        assert scores[0, 1] == pytest.approx(float(direct[0, 1]))

    def test_enrolled_faces_are_recognized_and_strangers_are_not(self):
        gallery = make_gallery(5)
        names, _, confidences = gallery.match(np.stack([direction(p, 9) for p in range(1, 6)]), cosine)
        assert [names[i] for i in confidences.argmax(axis=1)] == [f"person{p:03d}" for p in range(1, 6)]
        assert confidences.max(axis=1).min() > 0.9
        _, _, stranger = gallery.match(np.stack([direction(p, 0) for p in range(100, 140)]), cosine)
        assert stranger.max() < 0.5

    def test_records_stay_grouped_by_person(self):
        gallery = make_gallery(2)
        more = gallery.with_images([ImageRecord("aaaa0001", "person001", "x.jpg")], direction(1, 5)[None])
        assert [r.person for r in more.records] == ["person001"] * 4 + ["person002"] * 3
        assert more.records[3].image_id == "aaaa0001"
        assert np.allclose(more.embeddings[3], direction(1, 5))
        fewer = more.without(lambda r: r.person != "person001")
        assert fewer.people() == ["person002"]
        assert np.allclose(fewer.embeddings, gallery.embeddings[3:])

    def test_calibration_statistics(self):
        gallery = make_gallery(6)
        stats = gallery.calibration.stats
        assert gallery.calibration.method == "fitted"
        assert stats["loo_accuracy"] == 1.0
        assert stats["n_genuine"] == 18 and stats["n_impostor"] == 18 * 5
        assert stats["false_accept_at"]["0.8"] == 0.0
        assert len(gallery.calibration.genuine_scores) == 18

    def test_one_person_keeps_the_default_line(self):
        gallery = make_gallery(1)
        assert gallery.calibration.method == "default"
        assert gallery.calibration.stats["false_accept_at"] == {}

    def test_single_photo_people_have_no_genuine_sample(self):
        gallery = make_gallery(4, photos=1)
        cal = calibrate(gallery, cosine)
        assert cal.stats["n_genuine"] == 0 and cal.stats["loo_accuracy"] is None
        assert cal.stats["n_impostor"] == 12

    def test_a_stranger_stays_low_as_the_gallery_grows(self):
        strangers = np.stack([direction(p, 0) for p in range(200, 260)])
        for people in (2, 3, 20, 80):
            gallery = make_gallery(people)
            _, _, confidences = gallery.match(strangers, cosine)
            assert confidences.max() < 0.5, people
            genuine = np.stack([direction(p, 11) for p in range(1, people + 1)])
            _, _, confidences = gallery.match(genuine, cosine)
            assert confidences.max(axis=1).min() > 0.8, people
            assert math.isfinite(gallery.calibration.slope)


class TestDegenerateGalleries:
    """Calibration must stay finite and sane whatever the gallery looks like."""

    @staticmethod
    def check(gallery: Gallery) -> None:
        cal = gallery.calibration
        assert math.isfinite(cal.slope) and cal.slope > 0 and math.isfinite(cal.intercept)
        json_cal = Calibration.from_json(cal.to_json())  # what is saved can be loaded back
        assert json_cal.slope == cal.slope

    def test_empty(self):
        gallery = make_gallery(2).without(lambda record: False).recalibrated(cosine)
        self.check(gallery)
        assert gallery.people() == [] and gallery.calibration.method == "default"
        names, scores, confidences = gallery.match(direction(1, 1)[None], cosine)
        assert names == [] and scores.shape == confidences.shape == (1, 0)

    def test_identical_photos_of_each_person(self):
        records, vectors = [], []
        for person in range(1, 5):
            for copy in range(3):
                records.append(ImageRecord(f"{person:04x}{copy:04x}", f"p{person}", f"{copy}.jpg"))
                vectors.append(direction(person, 1))  # three different files, one embedding
        gallery = Gallery.empty("fake", {}, SIZE).with_images(records, np.stack(vectors)).recalibrated(cosine)
        self.check(gallery)
        assert gallery.calibration.stats["n_genuine"] == 12
        assert max(gallery.calibration.genuine_scores) == pytest.approx(1.0, abs=1e-5)
        _, _, genuine = gallery.match(direction(3, 1)[None], cosine)
        assert genuine[0].argmax() == 2 and genuine.max() > 0.9
        _, _, stranger = gallery.match(np.stack([direction(p, 0) for p in range(300, 340)]), cosine)
        assert np.isfinite(stranger).all() and stranger.max() < 0.5

    def test_everyone_identical(self):
        """Two people who are one vector (a broken camera, a copied photo): all their scores are equal,
        so nobody is told apart with confidence."""
        records = [ImageRecord(f"{k:08x}", name, "x.jpg") for k, name in enumerate(["a", "a", "b", "b"])]
        vectors = np.stack([direction(1, 1)] * 4)
        gallery = Gallery.empty("fake", {}, SIZE).with_images(records, vectors).recalibrated(cosine)
        self.check(gallery)
        _, _, confidences = gallery.match(direction(1, 1)[None], cosine)
        assert confidences[0, 0] == pytest.approx(confidences[0, 1]) and confidences.max() <= 0.5
