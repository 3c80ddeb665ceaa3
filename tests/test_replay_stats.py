"""Replay statistics against known answers on constructed data (issue #10, point 3)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from tracedrop.replay.compare.stats import clustered_mean, critical_value, holm, mde_factor, paired_difference

SIMULATIONS = 400


def simulate_differences(
    rng: np.random.Generator, true_diff: float, sessions: int, session_sd: float, noise_sd: float = 1.0
) -> tuple[pl.Series, pl.Series]:
    """Per-row paired differences: ``true_diff`` + a shared per-session shift + row noise; 1 to 6 rows a session."""
    sizes = rng.integers(1, 7, size=sessions)
    cluster = np.repeat(np.arange(sessions), sizes)
    shift = rng.normal(0, session_sd, size=sessions)[cluster]
    values = true_diff + shift + rng.normal(0, noise_sd, size=cluster.size)
    return pl.Series(values), pl.Series(cluster)


def coverage(true_diff: float, session_sd: float, use_naive: bool = False) -> float:
    """Share of seeded simulations whose 95% CI (the reported one, or the naive SE's) contains ``true_diff``."""
    covered = 0
    for seed in range(SIMULATIONS):
        values, clusters = simulate_differences(np.random.default_rng(seed), true_diff, 100, session_sd)
        estimate = clustered_mean(values, clusters)
        if use_naive:
            covered += abs(estimate.mean - true_diff) <= 1.959964 * estimate.se_naive
        else:
            covered += estimate.ci_low <= true_diff <= estimate.ci_high
    return covered / SIMULATIONS


def test_a_known_true_difference_is_covered_at_about_the_nominal_rate_with_correlated_sessions():
    assert 0.92 <= coverage(true_diff=0.3, session_sd=1.0) <= 0.98


def test_naive_errors_under_cover_the_same_correlated_sessions():
    assert coverage(true_diff=0.3, session_sd=1.0, use_naive=True) < 0.88


def test_with_few_sessions_the_t_interval_keeps_its_nominal_coverage_where_the_normal_one_does_not():
    # Five independent single-row sessions: the CR1 SE is s/sqrt(n), so the t interval with 4 df is exact
    # (95%), while +-1.96 SE covers only P(|T_4| < 1.96) = 0.878.
    rng = np.random.default_rng(5)
    t_covered = z_covered = 0
    runs = 2000
    for _ in range(runs):
        estimate = clustered_mean(pl.Series(rng.normal(0.4, 1.0, size=5)), pl.Series(["a", "b", "c", "d", "e"]))
        t_covered += estimate.ci_low <= 0.4 <= estimate.ci_high
        z_covered += abs(estimate.mean - 0.4) <= 1.959964 * estimate.se
    assert 0.935 <= t_covered / runs <= 0.965
    assert 0.85 <= z_covered / runs <= 0.905


def test_a_null_difference_is_covered_at_the_nominal_rate_and_a_single_null_ci_covers_zero():
    assert 0.92 <= coverage(true_diff=0.0, session_sd=0.5) <= 0.98
    values, clusters = simulate_differences(np.random.default_rng(12345), 0.0, 200, 0.5)
    estimate = clustered_mean(values, clusters)
    assert estimate.ci_low < 0 < estimate.ci_high
    assert estimate.p_value > 0.05


def test_a_true_difference_at_the_mde_is_detected_about_80_percent_of_the_time():
    # The MDE of this design (SE measured on one large draw), then the power of the test at that effect.
    values, clusters = simulate_differences(np.random.default_rng(999), 0.0, 100, 1.0)
    mde = clustered_mean(values, clusters).mde
    rejected = 0
    for seed in range(SIMULATIONS):
        values, clusters = simulate_differences(np.random.default_rng(10_000 + seed), mde, 100, 1.0)
        rejected += clustered_mean(values, clusters).p_value < 0.05
    assert 0.70 <= rejected / SIMULATIONS <= 0.90


def test_clustered_se_exceeds_naive_se_when_sessions_are_correlated():
    values, clusters = simulate_differences(np.random.default_rng(1), 0.2, 300, session_sd=1.5)
    estimate = clustered_mean(values, clusters)
    assert estimate.se > 1.5 * estimate.se_naive


def test_clustered_se_is_close_to_naive_se_when_sessions_are_independent():
    values, clusters = simulate_differences(np.random.default_rng(2), 0.2, 600, session_sd=0.0)
    estimate = clustered_mean(values, clusters)
    assert estimate.se == pytest.approx(estimate.se_naive, rel=0.10)


def test_one_row_per_session_makes_clustered_and_naive_se_identical():
    values = pl.Series([1.0, 4.0, 2.0, 7.0, 3.0])
    estimate = clustered_mean(values, pl.Series(["a", "b", "c", "d", "e"]))
    assert estimate.se == pytest.approx(estimate.se_naive, rel=1e-12)
    assert estimate.se_naive == pytest.approx(values.std() / math.sqrt(5), rel=1e-12)


def test_clustered_se_matches_a_hand_computation():
    # Mean 2.5; residuals by session: s1 (1,2) -> -1.5-0.5 = -2, s2 (3,4) -> 0.5+1.5 = 2.
    # SE^2 = G/(G-1) * (4 + 4) / n^2 = 2 * 8 / 16 = 1.
    estimate = clustered_mean(pl.Series([1.0, 2.0, 3.0, 4.0]), pl.Series(["s1", "s1", "s2", "s2"]))
    assert (estimate.mean, estimate.se, estimate.clusters, estimate.n) == (2.5, 1.0, 2, 4)
    # Two sessions: t with 1 degree of freedom (Cauchy), t_0.975 = tan(0.475 pi) = 12.7062, t_0.80 = tan(0.3 pi).
    assert estimate.ci_low == pytest.approx(2.5 - 12.706205, abs=1e-6)
    assert estimate.mde == pytest.approx(12.706205 + math.tan(0.3 * math.pi), abs=1e-6)
    assert estimate.p_value == pytest.approx(1 - 2 * math.atan(2.5) / math.pi, abs=1e-12)


def test_critical_values_and_the_mde_factor_tend_to_the_normal_ones_as_sessions_grow():
    assert critical_value(6) == pytest.approx(2.5706, abs=1e-4)
    assert critical_value(101) == pytest.approx(1.9840, abs=1e-4)
    assert critical_value(100_001) == pytest.approx(1.9600, abs=1e-4)
    assert mde_factor(100_001) == pytest.approx(2.8016, abs=1e-4)
    assert mde_factor(11) > mde_factor(101) > mde_factor(100_001)


def test_one_cluster_leaves_the_standard_error_unknown_and_no_value_gives_no_estimate():
    estimate = clustered_mean(pl.Series([1.0, 2.0]), pl.Series(["s", "s"]))
    assert estimate.se is None and estimate.p_value is None and estimate.mean == 1.5
    assert clustered_mean(pl.Series([None, None], dtype=pl.Float64), pl.Series(["a", "b"])) is None


def test_holm_adjusts_step_down_and_keeps_order():
    assert holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def test_paired_difference_counts_wins_by_the_metrics_direction_and_correlates_arms():
    per_row = pl.DataFrame(
        {
            "row_id": ["r1", "r2", "r3", "r4"] * 2,
            "cluster": ["s1", "s1", "s2", "s3"] * 2,
            "arm": ["original"] * 4 + ["m"] * 4,
            "latency_ms": [100.0, 200.0, 300.0, 400.0, 90.0, 200.0, 330.0, None],
        }
    )
    paired = paired_difference(per_row, "latency_ms", "m", "original", better="lower")
    assert (paired.wins, paired.ties, paired.losses) == (1, 1, 1)  # r4 has no candidate value: not paired
    assert paired.estimate.n == 3 and paired.estimate.mean == pytest.approx((-10 + 0 + 30) / 3)
    assert paired.mean_baseline == 200.0
    assert paired.correlation == pytest.approx(np.corrcoef([90, 200, 330], [100, 200, 300])[0, 1])
    higher = paired_difference(per_row, "latency_ms", "m", "original", better=None)
    assert (higher.wins, higher.losses) == (1, 1)
    assert paired_difference(per_row, "latency_ms", "absent", "original", better=None) is None
