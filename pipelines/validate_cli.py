"""``tracedrop validate``: check a landing zone and print rows and quarantined lines per table and day."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tracedrop.pipelines.landing import LandingReport, validate_landing
from tracedrop.storage.objectstore import open_store

SHOWN_QUARANTINE_RECORDS = 10


def render_landing_report(report: LandingReport, console: Console) -> None:
    """A table of rows / quarantined per (record type, day), then the first quarantined lines."""
    table = Table(title="Landing zone")
    for column in ("record type", "dt", "rows", "quarantined"):
        table.add_column(column, justify="right" if column in ("rows", "quarantined") else "left")
    for key in sorted(set(report.rows) | set(report.quarantined)):
        name, dt = key
        table.add_row(name, dt or "(snapshot)", f"{report.rows[key]:,}", f"{report.quarantined[key]:,}")
    console.print(table)
    for record in report.quarantine_records[:SHOWN_QUARANTINE_RECORDS]:
        console.print(f"[yellow]quarantined[/] {record}", markup=True, highlight=False)
    hidden = report.total_quarantined - min(SHOWN_QUARANTINE_RECORDS, len(report.quarantine_records))
    if hidden > 0:
        console.print(f"... and {hidden:,} more quarantined lines")
    for notice in report.notices:
        console.print(f"[yellow]notice[/] {notice}", markup=True, highlight=False)


def validate_command(landing: str) -> int:
    """Validate ``landing``; exit 0 when every line reads (quarantined lines are reported, not fatal)."""
    console = Console(stderr=False)
    store = open_store(landing)
    report = validate_landing(store)
    if not report.rows and not report.quarantined:
        console.print(f"[red]no landing-zone files found under {store.url}[/]")
        return 1
    render_landing_report(report, console)
    console.print(f"{report.total_rows:,} rows, {report.total_quarantined:,} quarantined lines in {store.url}")
    return 0
