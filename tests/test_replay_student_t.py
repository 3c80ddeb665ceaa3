"""Student's t CDF and quantile against closed forms and table values (the replay CIs use them)."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from tracedrop.replay.compare.student_t import regularized_beta, t_cdf, t_quantile

PROBABILITIES = (0.001, 0.025, 0.1, 0.3, 0.5, 0.8, 0.9, 0.975, 0.995, 0.9999)


def cauchy_quantile(p: float) -> float:  # df = 1
    return math.tan(math.pi * (p - 0.5))


def df2_quantile(p: float) -> float:
    return (2 * p - 1) / math.sqrt(2 * p * (1 - p))


def df4_quantile(p: float) -> float:
    alpha = 4 * p * (1 - p)
    q = math.cos(math.acos(math.sqrt(alpha)) / 3) / math.sqrt(alpha)
    return math.copysign(2 * math.sqrt(q - 1), p - 0.5)


@pytest.mark.parametrize("p", PROBABILITIES)
@pytest.mark.parametrize(("df", "exact"), [(1, cauchy_quantile), (2, df2_quantile), (4, df4_quantile)])
def test_quantiles_match_the_closed_forms(p: float, df: int, exact) -> None:
    assert t_quantile(p, df) == pytest.approx(exact(p), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("t", [-30.0, -2.5, -0.4, 0.0, 0.7, 3.0, 50.0])
def test_the_cdf_matches_the_closed_forms(t: float) -> None:
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-14)
    assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-14)


@pytest.mark.parametrize(
    ("df", "table"),  # two-sided 95% critical values from any t table
    [(3, 3.1824), (5, 2.5706), (10, 2.2281), (20, 2.0860), (30, 2.0423), (60, 2.0003), (120, 1.9799)],
)
def test_95_percent_critical_values_match_the_table(df: int, table: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(table, abs=1e-4)


@pytest.mark.parametrize("df", [2, 7, 33, 250, 5000])
def test_the_quantile_inverts_the_cdf_and_large_df_approach_the_normal(df: int) -> None:
    for p in PROBABILITIES:
        assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-12)
    assert t_quantile(0.975, 10**7) == pytest.approx(NormalDist().inv_cdf(0.975), abs=1e-5)


def test_the_regularized_incomplete_beta_at_known_points_and_bad_arguments() -> None:
    assert regularized_beta(1, 1, 0.3) == pytest.approx(0.3, abs=1e-14)  # uniform
    assert regularized_beta(2, 1, 0.3) == pytest.approx(0.09, abs=1e-14)  # x^2
    assert regularized_beta(3, 5, 0.0) == 0.0 and regularized_beta(3, 5, 1.0) == 1.0
    with pytest.raises(ValueError, match="0 < p < 1"):
        t_quantile(1.0, 5)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_cdf(1.0, 0)
