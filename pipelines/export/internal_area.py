"""Paths of the pipeline's internal area inside the landing zone (``_tracedrop/``).

Nothing here is ever published: it holds quarantined lines, per-day working tables, the staged
(redacted, not yet published) Parquet that the blocking checks read, and each day's accounts.
"""

from __future__ import annotations

INTERNAL_ROOT = "_tracedrop"


def quarantine_key(record_type: str, dt: str) -> str:
    return f"{INTERNAL_ROOT}/quarantine/{record_type}/dt={dt}/quarantine.parquet"


def ingested_key(record_type: str, dt: str) -> str:
    return f"{INTERNAL_ROOT}/ingested/{record_type}/dt={dt}/rows.parquet"


def session_index_key(dt: str) -> str:
    return f"{INTERNAL_ROOT}/session_index/dt={dt}/index.parquet"


def decisions_key(dt: str) -> str:
    return f"{INTERNAL_ROOT}/decisions/dt={dt}/decisions.parquet"


def staging_prefix(dt: str) -> str:
    return f"{INTERNAL_ROOT}/staging/dt={dt}"


def staging_partition_prefix(dt: str, partner_id: str, experiment_id: str) -> str:
    return f"{staging_prefix(dt)}/partner={partner_id}/experiment={experiment_id}"


def staging_sidecar_key(dt: str) -> str:
    """Staged row → usage id, kept internal so the checks can trace every staged row to its source."""
    return f"{staging_prefix(dt)}/_lineage.parquet"


def accounts_key(dt: str) -> str:
    return f"{INTERNAL_ROOT}/accounts/dt={dt}/accounts.json"


def published_key(dt: str) -> str:
    return f"{INTERNAL_ROOT}/published/dt={dt}/published.json"
