"""Feedback: the latest "Feedback Submitted" event per turn wins; ``cleared`` means no rating."""

from __future__ import annotations

import polars as pl

from tracedrop.schemas.reader import LINEAGE_FILE, LINEAGE_LINE


def latest_rating_per_turn(feedback: pl.DataFrame) -> pl.DataFrame:
    """``turn`` (the parentMessageID = client_request_id) → ``feedback_rating`` (up, down or null).

    Ties on the timestamp go to the event read last (file name, then line number).
    """
    if feedback.is_empty():
        return pl.DataFrame(schema={"turn": pl.String, "feedback_rating": pl.String})
    return (
        feedback.sort(["timestamp", LINEAGE_FILE, LINEAGE_LINE])
        .group_by("parent_message_id")
        .agg(pl.col("rating").last())
        .select(
            pl.col("parent_message_id").alias("turn"),
            pl.when(pl.col("rating") == "cleared").then(None).otherwise(pl.col("rating")).alias("feedback_rating"),
        )
    )
