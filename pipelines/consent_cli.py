"""``tracedrop consent apply`` and ``tracedrop consent ledger``."""

from __future__ import annotations

import polars as pl
from rich.console import Console

from tracedrop.pipelines.consent_apply import apply_from_settings
from tracedrop.pipelines.export.consent import ConsentFileError, read_ledger
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.schemas.config_errors import ConfigError
from tracedrop.schemas.partners import load_partner_registry
from tracedrop.storage.objectstore import ObjectStoreError, open_store


def _landing_exists(landing: str) -> None:
    store = open_store(landing)
    if next(iter(store.list()), None) is None:
        raise ConfigError(f"{store.url}: landing zone is empty or missing (check --landing)")


def consent_apply_command(landing: str, partners: str) -> int:
    """0 when no published partition holds a withdrawn subject, 1 when some could not be fixed, 2 on bad input."""
    console, errors = Console(), Console(stderr=True)
    try:
        load_partner_registry(partners)
        _landing_exists(landing)
        figures = apply_from_settings(ExportSettings.from_env(landing_url=landing, partners_path=partners))
    except (ConfigError, ConsentFileError, ValueError) as exc:
        errors.print(f"tracedrop consent apply: {exc}", soft_wrap=True, markup=False, highlight=False)
        return 2
    except ObjectStoreError as exc:
        errors.print(f"tracedrop consent apply: {exc}", soft_wrap=True, markup=False, highlight=False)
        return 1
    for line in figures["changed"]:
        console.print(f"re-published {line}", soft_wrap=True, markup=False, highlight=False)
    for line in figures["failures"]:
        errors.print(f"failed: {line}", soft_wrap=True, markup=False, highlight=False)
    console.print(
        f"{figures['partitions_changed']} partition(s) re-published, {figures['rows_removed']} row(s) removed, "
        f"{figures['remaining']} partition(s) still holding withdrawn subjects",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    return 0 if not figures["remaining"] and not figures["failed"] else 1


def consent_ledger_command(landing: str, value: str | None) -> int:
    """Print the ledger, one removal per line (optionally for one subject value)."""
    ledger = read_ledger(open_store(landing))
    if value is not None and ledger.height:
        ledger = ledger.filter(pl.col("value") == value)
    console = Console(soft_wrap=True, markup=False, highlight=False)
    console.print("removed_at\tsubject\tvalue\tpartner\texperiment\tdt\trows_removed\tvia\tpartition")
    for row in ledger.iter_rows(named=True):
        fields = (
            "removed_at",
            "subject",
            "value",
            "partner_id",
            "experiment_id",
            "dt",
            "rows_removed",
            "via",
            "partition",
        )
        console.print("\t".join(str(row[f]) for f in fields))
    if not ledger.height:
        console.print("(no removals recorded)")
    return 0
