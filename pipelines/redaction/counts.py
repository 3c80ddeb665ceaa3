"""Per-row redaction counts, derived from the placeholders a redaction added."""

import polars as pl
import pyarrow as pa

from tracedrop.pipelines.redaction.placeholders import PLACEHOLDER_PATTERN, REDACTED_TAG

COUNT_DTYPE = pl.List(pl.Struct({"type": pl.String, "count": pl.Int64}))


def placeholder_counts(texts: pl.Series, tag_types: dict[str, str], types: frozenset[str]) -> pl.DataFrame:
    """(row, type, count) of the placeholders in each row; `tag_types` maps keyed tags to their type."""
    prefixes = [f"<{tag}:" for tag in (REDACTED_TAG, *tag_types)]
    rows = texts.str.contains_any(prefixes).fill_null(False).arg_true()
    found = pl.DataFrame({"row": rows, "ph": texts.gather(rows).str.extract_all(PLACEHOLDER_PATTERN)})
    tag = pl.col("ph").str.extract(PLACEHOLDER_PATTERN, 1)
    body = pl.col("ph").str.extract(PLACEHOLDER_PATTERN, 2)
    rule_type = pl.when(tag == REDACTED_TAG).then(body).otherwise(tag.replace_strict(tag_types, default=None))
    return (
        found.explode("ph")
        .drop_nulls("ph")
        .select("row", rule_type.alias("type"))
        .filter(pl.col("type").is_in(list(types)))
        .group_by("row", "type")
        .agg(pl.len().cast(pl.Int64).alias("count"))
    )


def added_counts(before: pl.DataFrame, after: pl.DataFrame) -> pl.DataFrame:
    """Placeholders present after redaction minus those already in the input (idempotent re-runs count 0)."""
    return (
        after.join(before, on=["row", "type"], how="left", suffix="_before")
        .select("row", "type", (pl.col("count") - pl.col("count_before").fill_null(0)).alias("count"))
        .filter(pl.col("count") > 0)
    )


def per_row(counts: pl.DataFrame, n_rows: int) -> pl.Series:
    """List(Struct{type, count}) per row, sorted by type; rows without redactions get an empty list."""
    grouped = (
        counts.sort("row", "type").group_by("row", maintain_order=True).agg(pl.struct("type", "count").alias("counts"))
    )
    return (
        pl.DataFrame({"row": pl.arange(0, n_rows, dtype=pl.UInt32, eager=True)})
        .join(grouped.with_columns(pl.col("row").cast(pl.UInt32)), on="row", how="left")
        .sort("row")["counts"]
        .cast(COUNT_DTYPE)
        .fill_null(pl.lit([], dtype=COUNT_DTYPE))
    )


def to_arrow_map(counts: pl.Series) -> pa.MapArray:
    """Convert per-row counts to the `map<string, int64>` column of the partner drop."""
    lengths = counts.list.len().fill_null(0).to_numpy()
    offsets = pa.array([0, *lengths.cumsum().tolist()], type=pa.int32())
    entries = counts.explode().drop_nulls().struct.unnest()
    keys = pa.array(entries["type"].to_list(), type=pa.string())
    values = pa.array(entries["count"].to_list(), type=pa.int64())
    return pa.MapArray.from_arrays(offsets, keys, values)
