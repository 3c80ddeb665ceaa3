"""Where the export and ``consent apply`` hand over to delivery, once partitions are published.

Called after the day's lock is released (retries with backoff never hold up another publisher), and
never raises: a notice that is not acknowledged goes to the dead letters, a stats page that cannot be
written is reported in the figures, and the publish stands either way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from tracedrop.pipelines.delivery.notices import Reason, RetryPolicy, Sender
from tracedrop.pipelines.delivery.notify import notify_published
from tracedrop.pipelines.delivery.stats_publish import publish_stats
from tracedrop.pipelines.export.consent import ConsentReport
from tracedrop.schemas.partners import PartnerRegistry
from tracedrop.storage.objectstore import ObjectStore


@dataclass(frozen=True)
class Published:
    """One partition that was just published, and why."""

    partner_id: str
    experiment_id: str
    url: str  # the partition's absolute URL (…/partner=P/experiment=E/dt=D)
    reason: Reason

    @property
    def experiment_url(self) -> str:
        return self.url.rsplit("/dt=", 1)[0]


def consent_republished(report: ConsentReport) -> list[Published]:
    """The partitions ``consent apply`` rewrote (an unfinished one gets stats but no notice)."""
    return [
        Published(c.record.partner_id, c.record.experiment_id, c.record.url, Reason.CONSENT_REPUBLISH)
        for c in report.changes
        if not c.error
    ]


def after_publish(
    store: ObjectStore,
    registry: PartnerRegistry,
    published: list[Published],
    policy: RetryPolicy,
    min_subjects: int,
    sender: Sender | None = None,
) -> dict[str, Any]:
    """Notify each partner of its published partitions and refresh each experiment's ``_stats/``; figures out."""
    statuses: Counter[str] = Counter()
    errors: list[str] = []
    partners = {p.id: p for p in registry.partners}
    sender = sender or Sender(policy=policy)
    for item in published:
        partner = partners.get(item.partner_id)
        if partner is None:  # a partner that left the registry: no webhook is known any more
            continue
        via = {Reason.CONSENT_REPUBLISH: "consent", Reason.WIPE: "wipe"}.get(item.reason, "publish")
        try:
            outcome = notify_published(store, partner, item.url, item.reason, sender, via)
        except Exception as exc:  # a notice never fails the publish
            errors.append(f"{item.url}: notice not sent: {exc}")
            continue
        if outcome is not None:
            statuses[outcome.status] += 1
            if outcome.error:
                errors.append(f"{item.url}: notice dead-lettered: {outcome.error}")
    pages = []
    for experiment_url, item in {i.experiment_url: i for i in published}.items():
        try:
            pages.append(publish_stats(store, experiment_url, item.partner_id, item.experiment_id, min_subjects))
        except Exception as exc:  # stats never fail the publish either
            errors.append(f"{experiment_url}: stats not written: {exc}")
    return {"notices": dict(sorted(statuses.items())), "stats_pages": pages, "delivery_errors": errors}
