"""``tracedrop gc``: list (or delete) the landing blobs no line refers to."""

from __future__ import annotations

import typer

from tracedrop.pipelines.cli_errors import one_line_errors
from tracedrop.pipelines.consent_cli import _landing_exists
from tracedrop.pipelines.delivery.blob_gc import describe, sweep
from tracedrop.storage.objectstore import open_store


def gc_command(landing: str, grace_minutes: float, apply: bool) -> int:
    """0 when done, 1 when a storage operation failed or a deleted blob turned out referenced, 2 on bad input."""
    with one_line_errors("gc") as stopped:
        _landing_exists(landing)
        result = sweep(open_store(landing), grace_minutes, apply)
    if stopped.code is not None:
        return stopped.code
    young = f"{len(result.too_young)} unreferenced blob(s) younger than {grace_minutes:g} minutes kept"
    if not apply:
        for orphan in result.orphans:
            typer.echo(f"orphan {describe(orphan)}")
        typer.echo(
            f"{result.blobs} blob(s), {len(result.orphans)} orphan(s), {result.orphan_bytes:,} bytes; {young} "
            "(dry run: nothing deleted; --apply deletes the orphans)"
        )
        return 0
    for orphan in result.deleted:
        typer.echo(f"deleted {describe(orphan)}")
    for key in result.rescued:
        typer.echo(f"kept {key}: a line written during the sweep names it")
    for key in result.lost:
        typer.echo(f"tracedrop gc: {key} was deleted while a writer named it; its rows cannot be exported", err=True)
    deleted_bytes = sum(o.size for o in result.deleted)
    typer.echo(f"{len(result.deleted)} orphan(s) deleted, {deleted_bytes:,} bytes; {young}")
    return 1 if result.lost else 0
