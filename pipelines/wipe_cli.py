"""``tracedrop wipe``: show (or do) the wipe of one experiment's bodies."""

from __future__ import annotations

import typer

from tracedrop.pipelines.consent_cli import _landing_exists
from tracedrop.pipelines.delivery.wipe import WipeError, WipePlan, apply_wipe, plan_wipe
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.pipelines.export.snapshot import SnapshotMissing
from tracedrop.schemas.config_errors import ConfigError
from tracedrop.schemas.partners import load_partner_registry
from tracedrop.storage.objectstore import ObjectStoreError, open_store


def _show(plan: WipePlan) -> None:
    typer.echo(f"experiment {plan.experiment_id}: {len(plan.usage_ids)} request(s) in the landing zone")
    for edit in plan.edits:
        typer.echo(f"landing {edit.key}: {edit.lines} line(s) to rewrite")
    typer.echo(f"days: {', '.join(plan.days) or 'none'}")
    for record in plan.partitions:
        typer.echo(f"partition {record.url} (partner {record.partner_id}, dt={record.dt})")
    typer.echo(f"staged files holding its bodies: {len(plan.staged)}")


def wipe_command(experiment: str, landing: str, partners: str, apply: bool) -> int:
    """0 when wiped (or shown), 1 when a line or a partition could not be done, 2 on bad input (nothing written)."""
    try:
        registry = load_partner_registry(partners)
        _landing_exists(landing)
        store = open_store(landing)
        plan = plan_wipe(store, experiment)
        settings = ExportSettings.from_env(landing_url=landing, partners_path=partners)
    except (ConfigError, SnapshotMissing) as exc:
        typer.echo(f"tracedrop wipe: {exc}", err=True)
        return 2
    except (WipeError, ObjectStoreError) as exc:
        typer.echo(f"tracedrop wipe: {exc} (nothing was changed)", err=True)
        return 1
    _show(plan)
    if not apply:
        typer.echo("dry run: nothing changed; --apply wipes")
        return 0
    try:
        report = apply_wipe(store, plan, registry, settings)
    except ObjectStoreError as exc:
        typer.echo(f"tracedrop wipe: {exc}; run the same command again to finish", err=True)
        return 1
    for url, rows in report.republished:
        typer.echo(f"re-published {url}: {rows} row(s) without their bodies")
    for error in report.errors:
        typer.echo(f"failed: {error}", err=True)
    for problem in report.delivery.get("delivery_errors", []):  # a notice never fails the wipe: it is re-sent
        typer.echo(problem, err=True)
    lines = sum(e.lines for e in plan.edits)
    typer.echo(
        f"{lines} landing line(s) rewritten in {len(plan.edits)} file(s), {len(report.republished)} partition(s) "
        f"re-published, {len(plan.staged)} staged file(s) deleted; run `tracedrop gc --apply` to delete the blobs"
    )
    return 1 if report.errors else 0
