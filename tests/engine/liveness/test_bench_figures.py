"""The liveness benchmark's error-rate bound: what a bench of n sequences can show."""

from __future__ import annotations

import pytest

from benchmarks.liveness import upper_bound


@pytest.mark.parametrize("n", [24, 150, 1000])
def test_no_error_in_n_bounds_the_rate_at_the_closed_form(n: int) -> None:
    assert upper_bound(0, n) == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-6)


def test_the_bound_grows_with_errors_and_shrinks_with_size() -> None:
    assert upper_bound(0, 100) < upper_bound(1, 100) < upper_bound(2, 100)
    assert upper_bound(1, 300) < upper_bound(1, 100)
    assert upper_bound(1, 100) == pytest.approx(0.0466, abs=5e-4)  # Clopper-Pearson, one-sided 95%
    assert upper_bound(5, 5) == 1.0 and upper_bound(0, 0) == 1.0
