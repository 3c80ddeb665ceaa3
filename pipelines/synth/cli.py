"""``tracedrop synth``: write the synthetic landing zone with a progress bar and a rich summary."""

from __future__ import annotations

from datetime import date
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tracedrop.pipelines.synth.generate import (
    DEFAULT_START,
    SUMMARY_KEY,
    SynthConfig,
    SynthError,
    SynthProgress,
    generate,
)
from tracedrop.storage.objectstore import ObjectStoreError, open_store


def summary_tables(summary: dict[str, Any]) -> list[Table]:
    """Rows and malformed lines per table and day; blobs; expected fates."""
    rows = Table(title="Landing-zone lines written (well-formed + malformed extra lines)")
    for column in ("table", "dt", "rows", "malformed"):
        rows.add_column(column, justify="right" if column in ("rows", "malformed") else "left")
    for table, days in summary["rows"].items():
        for dt, count in days.items():
            rows.add_row(table, dt, f"{count:,}", str(summary["malformed"].get(table, {}).get(dt, 0)))
    blobs = Table(title="Content-addressed blobs")
    for column in ("prefix", "written", "deduplicated", "MB"):
        blobs.add_column(column, justify="left" if column == "prefix" else "right")
    for prefix, stats in summary["blobs"].items():
        blobs.add_row(prefix, f"{stats['written']:,}", f"{stats['deduplicated']:,}", f"{stats['bytes'] / 1e6:,.1f}")
    fates = Table(title="Expected fates of usage rows (ground truth)")
    fates.add_column("fate")
    fates.add_column("partner / reason")
    fates.add_column("rows", justify="right")
    expected = summary["expected"]
    for partner, days in expected["exported"].items():
        fates.add_row("exported", partner, f"{sum(days.values()):,}")
    for reason, days in expected["excluded"].items():
        fates.add_row("excluded", reason, f"{sum(days.values()):,}")
    for table, days in expected["quarantined"].items():
        fates.add_row("quarantined", table, f"{sum(days.values()):,}")
    return [rows, blobs, fates]


def synth_command(
    out: str,
    days: int,
    requests_per_day: int,
    seed: int,
    start: str | None,
    gzip: bool,
    preview_share: float | None = None,
    history_days: int = 0,
) -> int:
    """Generate into ``out``; print what was written. Exit status 0, or 2 for bad arguments or location."""
    console = Console()
    try:
        first = date.fromisoformat(start) if start else DEFAULT_START
        config = SynthConfig(
            days=days,
            requests_per_day=requests_per_day,
            seed=seed,
            start=first,
            gzip=gzip,
            preview_share=preview_share,
            history_days=history_days,
        )
        store = open_store(out)
    except (ValueError, SynthError) as exc:
        console.print(f"[red]tracedrop synth: {exc}[/red]", soft_wrap=True)
        return 2
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[mb]} MB"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("synth", total=config.total_days * requests_per_day, mb="0")

        def progress(p: SynthProgress) -> None:
            bar.update(task, completed=p.requests, description=f"day {p.day}", mb=f"{p.bytes_written / 1e6:,.0f}")

        try:
            summary = generate(store, config, progress)
        except (SynthError, ObjectStoreError) as exc:
            console.print(f"[red]tracedrop synth: {exc}[/red]", soft_wrap=True)
            return 2
    for table in summary_tables(summary):
        console.print(table)
    console.print(
        f"Landing zone written to {store.url}; ground truth and summary under {store.url}/{SUMMARY_KEY.split('/')[0]}/"
    )
    return 0
