"""Dagster resources: the export settings, resolved from the environment when a run starts."""

from __future__ import annotations

import dagster as dg

from pipelines.export.settings import ExportSettings


class TracedropResource(dg.ConfigurableResource):
    """Where the landing zone and the partner registry are; empty fields fall back to ``TRACEDROP_*``.

    Environment: ``TRACEDROP_LANDING_URL``, ``TRACEDROP_PARTNERS``, ``TRACEDROP_SESSION_LOOKBACK_DAYS``,
    the partners' salt variables (``subject_salt_env`` in the registry) and the standard AWS variables
    plus ``TRACEDROP_S3_ENDPOINT_URL`` for S3.
    """

    landing_url: str = ""
    partners_path: str = ""
    only_partner: str = ""
    shards: int = 0  # 0: TRACEDROP_EXPORT_SHARDS, else 1

    def settings(self) -> ExportSettings:
        """The export settings for this run."""
        return ExportSettings.from_env(
            landing_url=self.landing_url or None,
            partners_path=self.partners_path or None,
            only_partner=self.only_partner or None,
            shards=self.shards or None,
        )
