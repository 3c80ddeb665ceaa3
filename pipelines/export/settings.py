"""The export's settings for one run: the declared ``TRACEDROP_*`` settings resolved, plus fixed knobs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from tracedrop.pipelines.delivery.notices import RetryPolicy
from tracedrop.pipelines.export.landing_state import DEFAULT_FEEDBACK_WINDOW_DAYS
from tracedrop.pipelines.export.stage import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS
from tracedrop.schemas import settings as declared
from tracedrop.schemas.drop import DROP_SCHEMA_VERSION, TARGET_FILE_BYTES
from tracedrop.schemas.exclusions import EXCLUSIONS_IN_ORDER

FIRST_DAY = "2026-10-01"  # the first day partition of the export
FROM_ENVIRONMENT = (
    declared.LANDING_URL,
    declared.PARTNERS,
    declared.SESSION_LOOKBACK_DAYS,
    declared.LOCK_WAIT_SECONDS,
    declared.WEBHOOK_ATTEMPTS,
    declared.WEBHOOK_BACKOFF_SECONDS,
    declared.STATS_MIN_SUBJECTS,
    declared.EXPORT_MEMORY_MB,
    declared.EXPORT_WORKERS,
    declared.EXPORT_SHARDS,
)


@dataclass(frozen=True)
class ExportSettings:
    """Where to read, whom to export to, and the knobs of the rules and the writer."""

    landing_url: str = str(declared.LANDING_URL.default)
    partners_path: str = str(declared.PARTNERS.default)
    lookback_days: int = int(declared.SESSION_LOOKBACK_DAYS.default)  # type: ignore[arg-type]
    feedback_window_days: int = DEFAULT_FEEDBACK_WINDOW_DAYS
    batch_rows: int = DEFAULT_BATCH_ROWS
    batch_bytes: int = DEFAULT_BATCH_BYTES
    target_file_bytes: int = TARGET_FILE_BYTES
    only_partner: str | None = None
    lock_wait_seconds: float = float(declared.LOCK_WAIT_SECONDS.default)  # type: ignore[arg-type]
    webhook_attempts: int = int(declared.WEBHOOK_ATTEMPTS.default)  # type: ignore[arg-type]
    webhook_backoff_seconds: float = float(declared.WEBHOOK_BACKOFF_SECONDS.default)  # type: ignore[arg-type]
    stats_min_subjects: int = int(declared.STATS_MIN_SUBJECTS.default)  # type: ignore[arg-type]
    memory_limit_mb: int = int(declared.EXPORT_MEMORY_MB.default)  # type: ignore[arg-type]
    workers: int = int(declared.EXPORT_WORKERS.default)  # type: ignore[arg-type]
    shards: int = int(declared.EXPORT_SHARDS.default)  # type: ignore[arg-type]

    @property
    def memory_bytes(self) -> int:
        """The memory the export may hold at once (its buckets and write buffers are sized from it)."""
        return self.memory_limit_mb * 1024 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> ExportSettings:
        """The declared settings from the environment (or their defaults); explicit overrides that are not None win."""
        values: dict[str, object] = {s.field: declared.from_environment(s, environ) for s in FROM_ENVIRONMENT}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def problems(self) -> list[str]:
        """Declared knobs set (by a resource field or an override) below their minimum, one line each."""
        return [
            f"{s.explicit_name} must be at least {s.minimum:g}, got {getattr(self, s.field)}"
            for s in FROM_ENVIRONMENT
            if s.minimum is not None and getattr(self, s.field) < s.minimum
        ]

    @property
    def retry_policy(self) -> RetryPolicy:
        """How partner notices are retried."""
        return RetryPolicy(attempts=self.webhook_attempts, base_seconds=self.webhook_backoff_seconds)

    @property
    def rules_hash(self) -> str:
        """A digest of everything that decides which rows are exported."""
        spec = {
            "rules": [e.value for e in EXCLUSIONS_IN_ORDER],
            "session_lookback_days": self.lookback_days,
            "drop_schema_version": DROP_SCHEMA_VERSION,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
