"""Paired statistics for replay comparisons (Miller 2024, "Adding Error Bars to Evals").

Standard errors are clustered by session, CR1-style: ``SE^2 = G/(G-1) * sum_g (sum_{i in g} e_i)^2 / n^2``
with residuals ``e_i`` around the mean, ``G`` clusters and ``n`` rows. Intervals and tests use Student's t with
``G - 1`` degrees of freedom (the usual small-sample reference for cluster-robust errors; it tends to the
normal's 1.96 as sessions grow, and is wider when they are few). The minimum detectable effect is
``(t_0.975 + t_0.80) x SE`` (about ``2.8 x SE`` with many sessions): the true difference a two-sided 5% test
finds with 80% power at this sample size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from tracedrop.replay.compare.student_t import t_cdf, t_quantile

CI_LEVEL = 0.95
POWER = 0.80
CI_METHOD = (
    "95% CI from Student's t with G-1 degrees of freedom (G = sessions), "
    "standard errors clustered by session (CR1, G/(G-1))"
)


def critical_value(clusters: int) -> float:
    """The two-sided 95% critical value of t with ``clusters - 1`` degrees of freedom."""
    return t_quantile(0.5 + CI_LEVEL / 2, clusters - 1)


def mde_factor(clusters: int) -> float:
    """Minimum detectable effect per standard error: 80% power for a two-sided 5% t test (about 2.8)."""
    return critical_value(clusters) + t_quantile(POWER, clusters - 1)


@dataclass(frozen=True)
class Estimate:
    """A mean with its clustered and naive standard errors, 95% CI, test against ``null`` and MDE."""

    n: int
    clusters: int
    mean: float
    se: float | None
    se_naive: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    mde: float | None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return asdict(self)


def clustered_mean(values: pl.Series, clusters: pl.Series, null: float = 0.0) -> Estimate | None:
    """The mean of ``values`` with session-clustered inference; None when there is no value.

    Nulls are dropped (with their cluster). With fewer than two clusters the standard error is unknown.
    """
    frame = pl.DataFrame({"v": values.cast(pl.Float64), "g": clusters}).drop_nulls("v")
    n = frame.height
    if n == 0:
        return None
    mean = float(frame["v"].mean())
    residual = frame.with_columns((pl.col("v") - mean).alias("e"))
    sums = residual.group_by("g").agg(pl.col("e").sum().alias("s"))
    groups = sums.height
    if groups < 2:
        return Estimate(n, groups, mean, None, None, None, None, None, None)
    se = (groups / (groups - 1) * float((sums["s"] ** 2).sum()) / n**2) ** 0.5
    se_naive = (float((residual["e"] ** 2).sum()) / (n * (n - 1))) ** 0.5
    # With no spread at all the mean either is the null or certainly is not.
    p_value = 2 * t_cdf(-abs(mean - null) / se, groups - 1) if se > 0 else float(mean == null)
    half_width = critical_value(groups) * se
    return Estimate(
        n=n,
        clusters=groups,
        mean=mean,
        se=se,
        se_naive=se_naive,
        ci_low=mean - half_width,
        ci_high=mean + half_width,
        p_value=p_value,
        mde=mde_factor(groups) * se,
    )


@dataclass(frozen=True)
class Paired:
    """A candidate arm against the baseline arm on one metric, over rows where both have a value."""

    estimate: Estimate
    mean_baseline: float
    mean_candidate: float
    correlation: float | None
    wins: int
    ties: int
    losses: int

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields, the estimate's flattened in (its mean is the difference)."""
        fields = self.estimate.as_dict()
        fields["diff"] = fields.pop("mean")
        return {
            **fields,
            "mean_baseline": self.mean_baseline,
            "mean_candidate": self.mean_candidate,
            "correlation": self.correlation,
            "wins": self.wins,
            "ties": self.ties,
            "losses": self.losses,
        }


def paired_difference(
    per_row: pl.DataFrame, metric: str, candidate: str, baseline: str, better: str | None
) -> Paired | None:
    """Candidate minus baseline per row (samples already averaged), clustered by the row's ``cluster``.

    Wins and losses follow ``better`` ("higher" or "lower"); with no direction a win is a higher value.
    None when no row has the metric on both arms.
    """
    pick = per_row.select("row_id", "cluster", "arm", metric)
    both = (
        pick.filter(pl.col("arm") == candidate)
        .join(pick.filter(pl.col("arm") == baseline).select("row_id", pl.col(metric).alias("b")), on="row_id")
        .rename({metric: "c"})
        .drop_nulls(["c", "b"])
        .with_columns((pl.col("c") - pl.col("b")).alias("d"))
    )
    estimate = clustered_mean(both["d"], both["cluster"])
    if estimate is None:
        return None
    sign = -1 if better == "lower" else 1
    improved = both["d"] * sign
    correlation = both.select(pl.corr("c", "b")).item() if both.height > 2 else None
    if correlation is not None and correlation != correlation:  # NaN: a constant arm
        correlation = None
    return Paired(
        estimate=estimate,
        mean_baseline=float(both["b"].mean()),
        mean_candidate=float(both["c"].mean()),
        correlation=correlation,
        wins=int((improved > 0).sum()),
        ties=int((improved == 0).sum()),
        losses=int((improved < 0).sum()),
    )


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values (step-down, made monotone, capped at 1); None stays None."""
    ranked = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(ranked)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(ranked):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
