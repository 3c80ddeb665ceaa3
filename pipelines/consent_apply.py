"""``tracedrop consent apply`` and the consent asset: one function, figures out."""

from __future__ import annotations

from typing import Any

from tracedrop.pipelines.delivery.hooks import after_publish, consent_republished
from tracedrop.pipelines.export.consent import apply_consent, load_opt_outs
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.schemas.partners import load_partner_registry
from tracedrop.storage.objectstore import open_store


def apply_from_settings(settings: ExportSettings, run_id: str | None = None) -> dict[str, Any]:
    """Apply withdrawn consent to every published partition of the landing zone's records."""
    store = open_store(settings.landing_url)
    report = apply_consent(store, load_opt_outs(store), run_id, lock_wait_seconds=settings.lock_wait_seconds)
    # delivery (issue #12): tell partners to replace re-published partitions; refresh _stats/
    registry = load_partner_registry(settings.partners_path)
    delivery = after_publish(
        store, registry, consent_republished(report), settings.retry_policy, settings.stats_min_subjects
    )
    return {
        "partitions_changed": len([c for c in report.changes if not c.error]),
        "rows_removed": report.rows_removed,
        "changed": [f"{c.record.url}: {c.rows_removed} rows removed" for c in report.changes if not c.error],
        "failed": len(report.failures),
        "failures": [c.error for c in report.failures],
        "remaining": len(report.remaining),
        **delivery,
    }
