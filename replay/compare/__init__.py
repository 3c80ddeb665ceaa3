"""Comparison of replay arms: per-call metrics, agreement with the baseline, clustered paired statistics,
slices and the optional pairwise judge. Pure functions over polars frames (the judge's HTTP aside)."""
