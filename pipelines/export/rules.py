"""The seven export rules of CONTRACT.md §3, vectorised over a day of usage rows.

Every usage row gets ``reason``: null when exported, else the first failing rule's code; exported
rows also carry ``partner_id``.  Nothing here reads storage except through the ``prompt_available``
callback, so the rules are tested directly on small frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import polars as pl

from tracedrop.schemas.exclusions import DEFAULT_SESSION_LOOKBACK_DAYS, Exclusion, Fate
from tracedrop.schemas.landing import PROMPT_DELETED, PROMPT_SENTINELS
from tracedrop.schemas.partners import PartnerRegistry
from tracedrop.schemas.reader import LINEAGE_FILE, LINEAGE_LINE

PromptAvailable = Callable[[list[str]], set[str]]

REQUEST_COLUMNS = (
    "variant_version_id",
    "allocation_subject",
    "client_request_id",
    "request_kind",
    "request_body_sha256",
    "was_truncated",
)
HISTORY_COLUMNS = ("session_id", "created_at", "usage_id", "variant_version_id")


def session_history(usage: pl.DataFrame, requests: pl.DataFrame) -> pl.DataFrame:
    """One row per usage row with a session: when, and the version that served it (null if not exactly one)."""
    matched = _matched_requests(requests).select("usage_id", "created_at", "variant_version_id", "request_count")
    return (
        usage.filter(pl.col("session_id").is_not_null())
        .select(pl.col("id").alias("usage_id"), "created_at", "session_id")
        .join(matched, on=["usage_id", "created_at"], how="left")
        .select(
            "session_id",
            "created_at",
            "usage_id",
            pl.when(pl.col("request_count") == 1).then(pl.col("variant_version_id")).alias("variant_version_id"),
        )
    )


def _matched_requests(requests: pl.DataFrame) -> pl.DataFrame:
    """experiment_requests grouped by (usage_id, created_at) with how many rows each key has."""
    return requests.group_by(["usage_id", "created_at"], maintain_order=True).agg(
        pl.len().alias("request_count"), *[pl.col(c).first() for c in REQUEST_COLUMNS]
    )


def eval_owners(registry: PartnerRegistry) -> dict[str, str]:
    """experiment id → partner id for every experiment owned by an eval-program partner."""
    return {e: p.id for p in registry.partners if p.eval_program for e in p.experiment_ids}


@dataclass(frozen=True)
class Doubts:
    """What the quarantine and repeated deliveries cast doubt on (see :mod:`tracedrop.pipelines.export.doubt`).

    ``copies`` has one row per usage line (``_file``, ``_line``) with ``conflicting_copy`` and
    ``extra_copy``; the other two name usage ids and session ids that quarantined lines still name.
    """

    copies: pl.DataFrame | None = None
    quarantined_request_usage_ids: list[str] = field(default_factory=list)
    quarantined_sessions: list[str] = field(default_factory=list)


def decide(
    usage: pl.DataFrame,
    requests: pl.DataFrame,
    versions: pl.DataFrame,
    eval_owners: Mapping[str, str],
    opted_out_users: Iterable[str],
    opted_out_machines: Iterable[str],
    history: pl.DataFrame,
    prompt_available: PromptAvailable,
    lookback_days: int = DEFAULT_SESSION_LOOKBACK_DAYS,
    doubts: Doubts | None = None,
    wiped_usage_ids: Iterable[str] = (),
) -> pl.DataFrame:
    """Apply the rules in order; return the usage rows joined with what the rules resolved.

    ``versions`` is the snapshot's version → variant → experiment table; ``eval_owners`` maps each
    experiment owned by an ``eval_program`` partner to that partner; ``history`` holds the session
    history (:func:`session_history`) of the lookback window including this day; ``doubts`` adds the
    fail-closed reasons (a usage line delivered twice, quarantined lines naming the row's evidence);
    ``wiped_usage_ids`` are rows `tracedrop wipe` took the bodies of: their ``__deleted__`` prompt passes rule 6.
    """
    doubts = doubts or Doubts()
    if doubts.copies is not None:
        usage = usage.join(doubts.copies, on=[LINEAGE_FILE, LINEAGE_LINE], how="left")
    else:
        usage = usage.with_columns(pl.lit(False).alias("conflicting_copy"), pl.lit(False).alias("extra_copy"))
    owners = pl.DataFrame(
        {"experiment_id": list(eval_owners), "partner_id": list(eval_owners.values())},
        schema={"experiment_id": pl.String, "partner_id": pl.String},
    )
    rows = (
        usage.join(
            _matched_requests(requests), left_on=["id", "created_at"], right_on=["usage_id", "created_at"], how="left"
        )
        .with_columns(pl.col("request_count").fill_null(0))
        .join(versions, on="variant_version_id", how="left")
        .join(owners, on="experiment_id", how="left")
    )
    one_request = pl.col("request_count") == 1
    partner_owned = pl.col("partner_id").is_not_null()
    model_matches = pl.col("requested_model").str.to_lowercase() == pl.col("public_model_id").str.to_lowercase()
    routing = (
        (pl.col("status") != "draft")
        & pl.col("started_at").is_not_null()
        & (pl.col("started_at") <= pl.col("created_at"))
        & (pl.col("ended_at").is_null() | (pl.col("created_at") < pl.col("ended_at")))
    )
    consented = ~(
        pl.col("kilo_user_id").is_in(list(opted_out_users))
        | pl.col("machine_id").fill_null("").is_in([m for m in opted_out_machines if m])
    )
    trusted_copy = ~pl.col("conflicting_copy").fill_null(True) & ~pl.col("extra_copy").fill_null(True)
    request_beyond_doubt = ~pl.col("id").is_in(doubts.quarantined_request_usage_ids)
    session_beyond_doubt = ~pl.col("session_id").fill_null("").is_in(doubts.quarantined_sessions)
    first_five = (
        trusted_copy
        & request_beyond_doubt
        & one_request.fill_null(False)
        & partner_owned
        & model_matches.fill_null(False)
        & routing.fill_null(False)
        & consented.fill_null(False)
    )
    rows = rows.with_columns(first_five.alias("_passes_first_five"))
    candidates = rows.filter(pl.col("_passes_first_five"))
    hashes = candidates.get_column("request_body_sha256").unique().to_list()
    real = [h for h in hashes if h not in PROMPT_SENTINELS]
    available = prompt_available(real) if real else set()
    contaminated = _contaminated_usage_ids(candidates, history, versions, lookback_days)
    wiped = (pl.col("request_body_sha256") == PROMPT_DELETED) & pl.col("id").str.to_lowercase().is_in(
        list(wiped_usage_ids)
    )
    prompt_ok = pl.col("request_body_sha256").is_in(list(available)) | wiped
    clean_session = ~pl.col("id").is_in(contaminated)
    reason = (
        pl.when(pl.col("conflicting_copy").fill_null(True))
        .then(pl.lit(Exclusion.CONFLICTING_DUPLICATE.value))
        .when(pl.col("extra_copy").fill_null(True))
        .then(pl.lit(Exclusion.DUPLICATE_DELIVERY.value))
        .when(~one_request.fill_null(False))
        .then(pl.lit(Exclusion.NOT_ONE_EXPERIMENT_REQUEST.value))
        .when(~request_beyond_doubt)
        .then(pl.lit(Exclusion.QUARANTINED_REQUEST_LINE.value))
        .when(~partner_owned)
        .then(pl.lit(Exclusion.NOT_PARTNER_EXPERIMENT.value))
        .when(~model_matches.fill_null(False))
        .then(pl.lit(Exclusion.MODEL_MISMATCH.value))
        .when(~routing.fill_null(False))
        .then(pl.lit(Exclusion.EXPERIMENT_NOT_ROUTING.value))
        .when(~consented.fill_null(False))
        .then(pl.lit(Exclusion.CONSENT_WITHDRAWN.value))
        .when(~prompt_ok.fill_null(False))
        .then(pl.lit(Exclusion.PROMPT_UNAVAILABLE.value))
        .when(~clean_session)
        .then(pl.lit(Exclusion.SESSION_CONTAMINATED.value))
        .when(~session_beyond_doubt)
        .then(pl.lit(Exclusion.QUARANTINED_SESSION_LINE.value))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    return (
        rows.with_columns(reason.alias("reason"))
        .with_columns(
            pl.when(pl.col("reason").is_null())
            .then(pl.lit(Fate.EXPORTED.value))
            .otherwise(pl.lit(Fate.EXCLUDED.value))
            .alias("fate"),
            pl.when(pl.col("reason").is_null()).then(pl.col("partner_id")).alias("partner_id"),
        )
        .drop("_passes_first_five", "conflicting_copy", "extra_copy")
    )


def _contaminated_usage_ids(
    candidates: pl.DataFrame, history: pl.DataFrame, versions: pl.DataFrame, lookback_days: int
) -> list[str]:
    """Candidates whose session had a request of another model (or none) in the lookback window before them."""
    with_session = candidates.filter(pl.col("session_id").is_not_null())
    if with_session.is_empty():
        return []
    resolved = history.join(
        versions.select("variant_version_id", pl.col("experiment_id").alias("history_experiment")),
        on="variant_version_id",
        how="left",
    ).filter(pl.col("session_id").is_in(with_session.get_column("session_id").unique().to_list()))
    lookback = timedelta(days=lookback_days)
    contaminated: list[str] = []
    for experiment_id in with_session.get_column("experiment_id").unique().to_list():
        mine = with_session.filter(pl.col("experiment_id") == experiment_id).select("id", "session_id", "created_at")
        foreign = (
            resolved.filter(pl.col("history_experiment").is_null() | (pl.col("history_experiment") != experiment_id))
            .select("session_id", pl.col("created_at").alias("foreign_at"))
            .sort("foreign_at")
        )
        latest_foreign = mine.sort("created_at").join_asof(
            foreign,
            left_on="created_at",
            right_on="foreign_at",
            by="session_id",
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,  # both sides are sorted on the key just above
        )
        hit = latest_foreign.filter(
            pl.col("foreign_at").is_not_null() & (pl.col("foreign_at") >= pl.col("created_at") - lookback)
        )
        contaminated.extend(hit.get_column("id").to_list())
    return contaminated
