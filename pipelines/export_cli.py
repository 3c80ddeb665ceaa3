"""``tracedrop export``: run the Dagster export job in-process for one day and print what it did."""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_shared.error import SerializableErrorInfo
from rich.console import Console
from rich.table import Table

from tracedrop.pipelines.assets import EXPORT_ASSETS, partner_drops
from tracedrop.pipelines.export.preflight import export_problems
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.pipelines.instance import dagster_instance
from tracedrop.pipelines.jobs import export_job
from tracedrop.pipelines.resources import TracedropResource
from tracedrop.schemas.config_errors import ConfigError

STEP_ORDER = tuple(asset.key.to_user_string() for asset in EXPORT_ASSETS)


def run_export_job(
    landing: str, partners: str, dt: str, partner: str | None = None, shards: int | None = None
) -> dg.ExecuteInProcessResult:
    """Execute the same job the UI runs, for partition ``dt``, on a persistent or temporary instance."""
    from tracedrop.pipelines.definitions import defs

    job = defs.resolve_job_def(export_job.name)
    resource = TracedropResource(
        landing_url=landing, partners_path=partners, only_partner=partner or "", shards=shards
    )
    with dagster_instance() as instance:
        return job.execute_in_process(
            partition_key=dt,
            resources={"tracedrop": resource},
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        )


def _materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        found[materialization.asset_key.to_user_string()] = {k: v.value for k, v in materialization.metadata.items()}
    return found


def _check_results(result: dg.ExecuteInProcessResult) -> list[tuple[str, bool, str]]:
    rows = []
    for evaluation in result.get_asset_check_evaluations():
        summary = evaluation.metadata.get("summary")
        rows.append((evaluation.check_name, evaluation.passed, str(summary.value) if summary else ""))
    return rows


def _root_message(error: SerializableErrorInfo | None) -> str:
    """The innermost cause of a step's error (Dagster wraps the exception the step raised)."""
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message.strip() if error else ""


def render_summary(result: dg.ExecuteInProcessResult, console: Console) -> None:
    """Steps with their key figures, then every check with its verdict."""
    steps = _materializations(result)
    table = Table(title="Export steps")
    table.add_column("step")
    table.add_column("figures")
    for name in STEP_ORDER:
        figures = steps.get(name)
        shown = (
            "not run"
            if figures is None
            else ", ".join(
                f"{k}={v}" for k, v in figures.items() if k not in ("notices", "first_quarantined", "destinations")
            )
        )
        table.add_row(name, shown)
    console.print(table)
    checks = Table(title="Blocking checks")
    for column in ("check", "result", "detail"):
        checks.add_column(column)
    for name, passed, summary in _check_results(result):
        checks.add_row(name, "[green]passed[/]" if passed else "[red]FAILED[/]", summary)
    console.print(checks)
    for destination in (steps.get(partner_drops.key.to_user_string()) or {}).get("destinations", []):
        console.print(f"published {destination}", soft_wrap=True)


def export_command(landing: str, partners: str, dt: str, partner: str | None, shards: int | None = None) -> int:
    """Exit 0 when every step ran and every check passed, 1 otherwise, 2 (nothing run) on bad input."""
    console = Console()
    try:
        settings = ExportSettings.from_env(
            landing_url=landing, partners_path=partners, only_partner=partner, shards=shards
        )
    except ConfigError as exc:
        problems = [str(exc)]
    else:
        problems = export_problems(settings, dt)
    if problems:
        errors = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
        for problem in problems:
            errors.print(f"tracedrop export: {problem}")
        return 2
    with console.status(f"exporting {dt} from {landing} ..."):
        result = run_export_job(landing, partners, dt, partner, shards)
    render_summary(result, console)
    failed_checks = [name for name, passed, _ in _check_results(result) if not passed]
    if not result.success or failed_checks:
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data is not None:
                data = event.step_failure_data
                message = data.user_failure_data.description if data.user_failure_data else None
                message = message or _root_message(data.error)
                console.print(f"[red]step {event.step_key} failed:[/] {message}", soft_wrap=True)
                published = data.user_failure_data.metadata.get("destinations") if data.user_failure_data else None
                for destination in published.value if published else []:
                    console.print(f"published {destination}", soft_wrap=True)
        if failed_checks:
            console.print(
                f"[red]checks failed: {', '.join(failed_checks)}; the partitions they failed for were not published[/]"
            )
        return 1
    return 0
