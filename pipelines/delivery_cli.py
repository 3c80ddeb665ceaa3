"""``tracedrop delivery resend``, ``tracedrop delivery log`` and ``tracedrop delivery retention``."""

from __future__ import annotations

import typer

from tracedrop.pipelines.cli_errors import one_line_errors
from tracedrop.pipelines.consent_cli import _landing_exists
from tracedrop.pipelines.delivery.delivery_log import read_log
from tracedrop.pipelines.delivery.notices import DELIVERED, Sender
from tracedrop.pipelines.delivery.notify import resend_dead_letters
from tracedrop.pipelines.delivery.retention import apply_retention, describe, expired_partitions, today_utc
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.schemas.partners import load_partner_registry
from tracedrop.storage.objectstore import open_store

LOG_FIELDS = ("at", "partner_id", "experiment_id", "dt", "reason", "attempt", "status_code", "outcome", "via", "error")


def delivery_resend_command(landing: str, partners: str, sender: Sender | None = None) -> int:
    """Re-send every dead letter: 0 when none is left, 1 when some failed again, 2 on bad input."""
    with one_line_errors("delivery resend") as stopped:
        registry = load_partner_registry(partners)
        _landing_exists(landing)
        outcomes = resend_dead_letters(open_store(landing), registry, sender or Sender())
    if stopped.code is not None:
        return stopped.code
    for outcome in outcomes:
        line = f"{outcome.partner_id} {outcome.idempotency_key[:16]}… {outcome.status}"
        typer.echo(f"{line}: {outcome.error}" if outcome.error else line)
    failed = sum(o.status != DELIVERED for o in outcomes)
    typer.echo(f"{len(outcomes) - failed} dead letter(s) delivered, {failed} still dead-lettered")
    return 1 if failed else 0


def delivery_log_command(landing: str, partner: str | None) -> int:
    """Print every delivery attempt (of one partner), oldest first, one per line, tab-separated; 2 on bad input."""
    with one_line_errors("delivery log") as stopped:
        _landing_exists(landing)
        log = read_log(open_store(landing), partner)
    if stopped.code is not None:
        return stopped.code
    typer.echo("\t".join(LOG_FIELDS))
    for row in log.iter_rows(named=True):
        typer.echo("\t".join("" if row[f] is None else str(row[f]) for f in LOG_FIELDS))
    if not log.height:
        typer.echo("(no delivery attempts recorded)")
    return 0


def delivery_retention_command(landing: str, partners: str, apply: bool) -> int:
    """List (or with ``apply`` delete) every partition past retention; 1 when some failed, 2 on bad input."""
    with one_line_errors("delivery retention") as stopped:
        registry = load_partner_registry(partners)
        _landing_exists(landing)
        store = open_store(landing)
        expired = expired_partitions(store, registry, today_utc())
        settings = ExportSettings.from_env(landing_url=landing, partners_path=partners)
        report = (
            apply_retention(
                store, expired, lock_wait_seconds=settings.lock_wait_seconds, min_subjects=settings.stats_min_subjects
            )
            if apply
            else None
        )
    if stopped.code is not None:
        return stopped.code
    if report is None:
        for item in expired:
            typer.echo(f"would delete {describe(item)}")
        typer.echo(f"{len(expired)} partition(s) past retention (dry run: nothing deleted; --apply deletes them)")
        return 0
    for item in report.deleted:
        typer.echo(f"deleted {describe(item)}")
    for error in report.errors:
        typer.echo(error, err=True)
    typer.echo(f"{len(report.deleted)} partition(s) deleted, {len(report.errors)} error(s)")
    return 1 if report.errors else 0
