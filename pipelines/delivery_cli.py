"""``tracedrop delivery resend`` and ``tracedrop delivery log``."""

from __future__ import annotations

from rich.console import Console

from pipelines.delivery.delivery_log import read_log
from pipelines.delivery.notices import DELIVERED, Sender
from pipelines.delivery.notify import resend_dead_letters
from pipelines.objectstore import ObjectStoreError, open_store
from schemas.config_errors import ConfigError
from schemas.partners import load_partner_registry

LOG_FIELDS = ("at", "partner_id", "experiment_id", "dt", "reason", "attempt", "status_code", "outcome", "via", "error")


def _say(console: Console, line: str) -> None:
    console.print(line, soft_wrap=True, markup=False, highlight=False)


def delivery_resend_command(landing: str, partners: str, sender: Sender | None = None) -> int:
    """Re-send every dead letter: 0 when none is left, 1 when some failed again, 2 on bad input."""
    console, errors = Console(), Console(stderr=True)
    try:
        registry = load_partner_registry(partners)
        outcomes = resend_dead_letters(open_store(landing), registry, sender or Sender())
    except ConfigError as exc:
        _say(errors, f"tracedrop delivery resend: {exc}")
        return 2
    except ObjectStoreError as exc:
        _say(errors, f"tracedrop delivery resend: {exc}")
        return 1
    for outcome in outcomes:
        line = f"{outcome.partner_id} {outcome.idempotency_key[:16]}… {outcome.status}"
        _say(console, f"{line}: {outcome.error}" if outcome.error else line)
    failed = sum(o.status != DELIVERED for o in outcomes)
    _say(console, f"{len(outcomes) - failed} dead letter(s) delivered, {failed} still dead-lettered")
    return 1 if failed else 0


def delivery_log_command(landing: str, partner: str | None) -> int:
    """Print every delivery attempt (of one partner), oldest first, one per line, tab-separated."""
    console = Console()
    try:
        log = read_log(open_store(landing), partner)
    except ObjectStoreError as exc:
        _say(Console(stderr=True), f"tracedrop delivery log: {exc}")
        return 1
    _say(console, "\t".join(LOG_FIELDS))
    for row in log.iter_rows(named=True):
        _say(console, "\t".join("" if row[f] is None else str(row[f]) for f in LOG_FIELDS))
    if not log.height:
        _say(console, "(no delivery attempts recorded)")
    return 0
