"""``tracedrop delivery resend`` and ``tracedrop delivery log``."""

from __future__ import annotations

import typer

from pipelines.consent_cli import _landing_exists
from pipelines.delivery.delivery_log import read_log
from pipelines.delivery.notices import DELIVERED, Sender
from pipelines.delivery.notify import resend_dead_letters
from pipelines.objectstore import ObjectStoreError, open_store
from schemas.config_errors import ConfigError
from schemas.partners import load_partner_registry

LOG_FIELDS = ("at", "partner_id", "experiment_id", "dt", "reason", "attempt", "status_code", "outcome", "via", "error")


def delivery_resend_command(landing: str, partners: str, sender: Sender | None = None) -> int:
    """Re-send every dead letter: 0 when none is left, 1 when some failed again, 2 on bad input."""
    try:
        registry = load_partner_registry(partners)
        _landing_exists(landing)
        outcomes = resend_dead_letters(open_store(landing), registry, sender or Sender())
    except ConfigError as exc:
        typer.echo(f"tracedrop delivery resend: {exc}", err=True)
        return 2
    except ObjectStoreError as exc:
        typer.echo(f"tracedrop delivery resend: {exc}", err=True)
        return 1
    for outcome in outcomes:
        line = f"{outcome.partner_id} {outcome.idempotency_key[:16]}… {outcome.status}"
        typer.echo(f"{line}: {outcome.error}" if outcome.error else line)
    failed = sum(o.status != DELIVERED for o in outcomes)
    typer.echo(f"{len(outcomes) - failed} dead letter(s) delivered, {failed} still dead-lettered")
    return 1 if failed else 0


def delivery_log_command(landing: str, partner: str | None) -> int:
    """Print every delivery attempt (of one partner), oldest first, one per line, tab-separated; 2 on bad input."""
    try:
        _landing_exists(landing)
        log = read_log(open_store(landing), partner)
    except ConfigError as exc:
        typer.echo(f"tracedrop delivery log: {exc}", err=True)
        return 2
    except ObjectStoreError as exc:
        typer.echo(f"tracedrop delivery log: {exc}", err=True)
        return 1
    typer.echo("\t".join(LOG_FIELDS))
    for row in log.iter_rows(named=True):
        typer.echo("\t".join("" if row[f] is None else str(row[f]) for f in LOG_FIELDS))
    if not log.height:
        typer.echo("(no delivery attempts recorded)")
    return 0
