"""Export settings, read from arguments or the environment (nothing is read at import time)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

from pipelines.export.lock import DEFAULT_WAIT_SECONDS
from schemas.drop import DROP_SCHEMA_VERSION, TARGET_FILE_BYTES
from schemas.exclusions import DEFAULT_SESSION_LOOKBACK_DAYS, EXCLUSIONS_IN_ORDER

DEFAULT_PARTNERS_PATH = "pipelines/synth/partners.yaml"
DEFAULT_LANDING_URL = "var/landing"
FIRST_DAY = "2026-10-01"  # the first day partition of the export
DEFAULT_MEMORY_LIMIT_MB = 2048  # a 2-core, 8 GB worker with room to spare
MIN_MEMORY_LIMIT_MB = 4  # below this the fixed cost of a bucket outweighs its rows
DEFAULT_WORKERS = 2  # processes that validate a day's files (and run its shards) at once: one per core


@dataclass(frozen=True)
class ExportSettings:
    """Where to read, whom to export to, and the knobs of the rules and the writer."""

    landing_url: str = DEFAULT_LANDING_URL
    partners_path: str = DEFAULT_PARTNERS_PATH
    lookback_days: int = DEFAULT_SESSION_LOOKBACK_DAYS
    feedback_window_days: int = 7
    batch_rows: int = 1024
    batch_bytes: int = 32 * 1024 * 1024
    target_file_bytes: int = TARGET_FILE_BYTES
    only_partner: str | None = None
    lock_wait_seconds: float = DEFAULT_WAIT_SECONDS
    memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB
    workers: int = DEFAULT_WORKERS
    shards: int = 1

    @property
    def memory_bytes(self) -> int:
        """The memory the export may hold at once (its buckets and write buffers are sized from it)."""
        return self.memory_limit_mb * 1024 * 1024

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> ExportSettings:
        """Settings from ``TRACEDROP_*`` variables, with explicit overrides taking precedence."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            "landing_url": env.get("TRACEDROP_LANDING_URL", DEFAULT_LANDING_URL),
            "partners_path": env.get("TRACEDROP_PARTNERS", DEFAULT_PARTNERS_PATH),
            "lookback_days": int(env.get("TRACEDROP_SESSION_LOOKBACK_DAYS", DEFAULT_SESSION_LOOKBACK_DAYS)),
            "lock_wait_seconds": float(env.get("TRACEDROP_LOCK_WAIT_SECONDS", DEFAULT_WAIT_SECONDS)),
            "memory_limit_mb": int(env.get("TRACEDROP_EXPORT_MEMORY_MB", DEFAULT_MEMORY_LIMIT_MB)),
            "workers": int(env.get("TRACEDROP_EXPORT_WORKERS", DEFAULT_WORKERS)),
            "shards": int(env.get("TRACEDROP_EXPORT_SHARDS", 1)),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def problems(self) -> list[str]:
        """The knobs that are out of range, one line each, naming the variable (or option) and what it takes."""
        found = []
        if self.memory_limit_mb < MIN_MEMORY_LIMIT_MB:
            found.append(
                f"TRACEDROP_EXPORT_MEMORY_MB must be at least {MIN_MEMORY_LIMIT_MB} (MB the export may hold), "
                f"got {self.memory_limit_mb}"
            )
        if self.workers < 1:
            found.append(f"TRACEDROP_EXPORT_WORKERS must be 1 or more (processes at once), got {self.workers}")
        if self.shards < 1:
            found.append(f"--shards / TRACEDROP_EXPORT_SHARDS must be 1 or more, got {self.shards}")
        return found

    @property
    def rules_hash(self) -> str:
        """A digest of everything that decides which rows are exported."""
        spec = {
            "rules": [e.value for e in EXCLUSIONS_IN_ORDER],
            "session_lookback_days": self.lookback_days,
            "drop_schema_version": DROP_SCHEMA_VERSION,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
