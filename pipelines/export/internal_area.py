"""Paths of the pipeline's internal area inside the landing zone (``_tracedrop/``).

Nothing here is ever published. Each export run works in its own area (``runs/dt=D/run=R/``:
ingested rows, quarantined lines, decisions, staged Parquet, accounts, check verdicts), so two runs
of one day never read or overwrite each other's work. What outlives a run is kept beside it:
the publication records and lineage of every published partition (``publications/``), the day's
record of what it owes (``days/``), the consent ledger (``consent/``), per-day locks (``locks/``),
the session-history cache (``session_index/``) and partner notices (``delivery/``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

INTERNAL_ROOT = "_tracedrop"


@dataclass(frozen=True)
class RunArea:
    """The working area of one export run of one day."""

    dt: str
    run_id: str

    @property
    def prefix(self) -> str:
        return f"{day_runs_prefix(self.dt)}/run={self.run_id}"

    @property
    def marker_key(self) -> str:
        """Written when the run starts: who and when (lets a later run tell superseded areas apart)."""
        return f"{self.prefix}/_run.json"

    def ingested_prefix(self, record_type: str) -> str:
        """The ingested rows of a record type, as bucketed Parquet parts (:mod:`tracedrop.pipelines.export.parts`)."""
        return f"{self.prefix}/ingested/{record_type}"

    def quarantine_prefix(self, record_type: str) -> str:
        return f"{self.prefix}/quarantine/{record_type}"

    @property
    def ingest_record_key(self) -> str:
        """What ingest read and wrote: the bucket count, rows and quarantined lines per record type."""
        return f"{self.prefix}/ingested/_ingest.json"

    @property
    def session_history_prefix(self) -> str:
        """The day's session history as this run read it (rule 7; also copied to the day's index cache)."""
        return f"{self.prefix}/session_history"

    @property
    def rule7_history_key(self) -> str:
        """The session history rule 7 reads: only the day's candidate sessions, over the lookback and the day."""
        return f"{self.prefix}/rule7_history.parquet"

    @property
    def decisions_prefix(self) -> str:
        """Every usage row with its fate, one bucketed Parquet part per bucket."""
        return f"{self.prefix}/decisions"

    @property
    def accounts_key(self) -> str:
        return f"{self.prefix}/accounts.json"

    @property
    def staging_prefix(self) -> str:
        return f"{self.prefix}/staging"

    def staging_partition_prefix(self, partner_id: str, experiment_id: str) -> str:
        return f"{self.staging_prefix}/partner={partner_id}/experiment={experiment_id}"

    @property
    def staged_record_key(self) -> str:
        return f"{self.staging_prefix}/_staged.json"

    @property
    def lineage_key(self) -> str:
        """Staged row → usage id and subjects, so checks and consent can trace every row to its source."""
        return f"{self.staging_prefix}/_lineage.parquet"

    @property
    def verdicts_key(self) -> str:
        """The blocking checks' verdict per staged partition, with the hashes of the files they passed."""
        return f"{self.prefix}/verdicts.json"


def day_runs_prefix(dt: str) -> str:
    return f"{INTERNAL_ROOT}/runs/dt={dt}"


def session_index_prefix(dt: str) -> str:
    """A day's session history (bucketed parts) and ``_index.json`` (fingerprint, quarantined sessions)."""
    return f"{INTERNAL_ROOT}/session_index/dt={dt}"


def day_record_key(dt: str) -> str:
    """What a day published, with which inputs, and what it still owes (partners whose publish failed)."""
    return f"{INTERNAL_ROOT}/days/dt={dt}/day.json"


def publications_prefix() -> str:
    return f"{INTERNAL_ROOT}/publications"


def destination_digest(partition_url: str) -> str:
    """A short stable name for a partition's absolute URL (a destination can change between runs)."""
    return hashlib.sha256(partition_url.encode()).hexdigest()[:16]


def publication_prefix(dt: str, partner_id: str, experiment_id: str, partition_url: str) -> str:
    return (
        f"{publications_prefix()}/dt={dt}/partner={partner_id}/experiment={experiment_id}"
        f"/dest={destination_digest(partition_url)}"
    )


def lock_key(dt: str) -> str:
    return f"{INTERNAL_ROOT}/locks/dt={dt}.lock"


def ledger_prefix() -> str:
    return f"{INTERNAL_ROOT}/consent/ledger"


def delivery_prefix() -> str:
    """Partner notices: attempt log, dead letters, and the last notice of each partition."""
    return f"{INTERNAL_ROOT}/delivery"


def delivery_log_prefix() -> str:
    return f"{delivery_prefix()}/log"


def dead_letters_prefix() -> str:
    return f"{delivery_prefix()}/dead_letters"


def dead_letter_key(partner_id: str, experiment_id: str, dt: str) -> str:
    """At most one dead letter per partition: a newer notice of the partition supersedes it."""
    return f"{dead_letters_prefix()}/partner={partner_id}/experiment={experiment_id}/dt={dt}.json"


def last_notice_key(partner_id: str, experiment_id: str, dt: str) -> str:
    """The last notice made for a partition: a publish of the same content makes no new one."""
    return f"{delivery_prefix()}/notices/partner={partner_id}/experiment={experiment_id}/dt={dt}.json"


def stats_rows_key(partner_id: str, experiment_id: str, dt: str) -> str:
    """The stats columns of a published partition, cached with its manifest content (rebuilt when it changes)."""
    return f"{delivery_prefix()}/stats_rows/partner={partner_id}/experiment={experiment_id}/dt={dt}.parquet"
