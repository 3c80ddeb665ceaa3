"""The ``tracedrop`` command line (CONTRACT.md §6).

Each command imports its implementation lazily so that ``--help`` is instant and one command's
dependencies never slow another.
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="tracedrop",
    help="Partner trace export and replay: strict opt-in export of preview-model traffic, redacted, as Parquet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
replay_app = typer.Typer(
    help="Replay exported prompts against candidate models and compare them.", no_args_is_help=True
)
app.add_typer(replay_app, name="replay")
consent_app = typer.Typer(
    help="Withdrawn consent: apply it to every published partition, read the ledger.", no_args_is_help=True
)
app.add_typer(consent_app, name="consent")

DEFAULT_LANDING = "var/landing"


def _not_built(command: str) -> None:
    typer.echo(
        f"tracedrop {command}: not built yet in this version; nothing was run. "
        "See the project's open issues for its status.",
        err=True,
    )
    raise typer.Exit(2)


@app.command()
def synth(
    out: Annotated[
        str, typer.Option(help="Landing-zone URL to write (local path, file:// or s3://).")
    ] = DEFAULT_LANDING,
    days: Annotated[int, typer.Option(min=1, help="Number of days.")] = 3,
    requests_per_day: Annotated[int, typer.Option(min=1, help="Gateway requests per day (all traffic).")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes identical files.")] = 7,
    start: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD (default: the scenario's).")] = None,
    gzip: Annotated[bool, typer.Option("--gzip/--no-gzip", help="Write .jsonl.gz files.")] = False,
) -> None:
    """Write a realistic synthetic landing zone that exercises every export rule."""
    from pipelines.synth.cli import synth_command

    raise typer.Exit(
        synth_command(out=out, days=days, requests_per_day=requests_per_day, seed=seed, start=start, gzip=gzip)
    )


@app.command()
def validate(
    landing: Annotated[str, typer.Option(help="Landing-zone URL to check.")] = DEFAULT_LANDING,
) -> None:
    """Validate every landing-zone file and report rows and quarantined lines per table and day."""
    from pipelines.validate_cli import validate_command

    raise typer.Exit(validate_command(landing))


@app.command()
def export(
    date: Annotated[str, typer.Option(help="The day partition to export, YYYY-MM-DD.")],
    landing: Annotated[str, typer.Option(help="Landing-zone URL.")] = DEFAULT_LANDING,
    partners: Annotated[str, typer.Option(help="Partner registry YAML.")] = "pipelines/synth/partners.yaml",
    partner: Annotated[str | None, typer.Option(help="Export only this partner.")] = None,
) -> None:
    """Run the export job (the same one the Dagster UI runs) for one day."""
    from pipelines.export_cli import export_command

    raise typer.Exit(export_command(landing=landing, partners=partners, dt=date, partner=partner))


@app.command()
def proxy(
    config: Annotated[str, typer.Option(help="Proxy config YAML (CONTRACT.md §5).")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8787,
    landing: Annotated[str, typer.Option(help="Landing-zone URL for telemetry.")] = DEFAULT_LANDING,
) -> None:
    """Serve the OpenAI-compatible proxy with gateway-exact experiment routing."""
    from replay.proxy.cli import proxy_command

    raise typer.Exit(proxy_command(config=config, host=host, port=port, landing=landing))


@app.command()
def redact(
    path: Annotated[str, typer.Argument(help="A text file to redact, or - for standard input.")],
) -> None:
    """Show what the redactor does to a text, with a summary of matches by type."""
    from pipelines.redaction.cli import redact_command

    raise typer.Exit(redact_command(path))


@replay_app.command("run")
def replay_run(
    drops: Annotated[str, typer.Option(help="Drop URL (a partner destination).")],
    candidates: Annotated[str, typer.Option(help="Comma-separated candidate model ids.")],
    out: Annotated[str, typer.Option(help="Results directory.")],
    partner: Annotated[str | None, typer.Option()] = None,
    experiment: Annotated[str | None, typer.Option()] = None,
    proxy: Annotated[str | None, typer.Option(help="Proxy base URL.")] = None,
    sample: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int, typer.Option()] = 0,
    concurrency: Annotated[int, typer.Option()] = 8,
) -> None:
    """Replay exported prompts against each candidate; re-running resumes."""
    _not_built("replay run")


@replay_app.command("report")
def replay_report(
    results: Annotated[str, typer.Option(help="Results directory of a replay run.")],
    out: Annotated[str, typer.Option(help="HTML report to write.")],
    baseline: Annotated[str, typer.Option(help="'original' or a candidate model id.")] = "original",
) -> None:
    """Write the comparison report (tables, plots, confidence intervals)."""
    _not_built("replay report")


@consent_app.command("apply")
def consent_apply(
    landing: Annotated[
        str, typer.Option(help="Landing-zone URL (its opt-outs and publication records).")
    ] = DEFAULT_LANDING,
    partners: Annotated[str, typer.Option(help="Partner registry YAML (validated).")] = "pipelines/synth/partners.yaml",
) -> None:
    """Re-publish now every published partition holding a withdrawn subject's rows; exit 0 when none remains."""
    from pipelines.consent_cli import consent_apply_command

    raise typer.Exit(consent_apply_command(landing=landing, partners=partners))


@consent_app.command("ledger")
def consent_ledger(
    landing: Annotated[str, typer.Option(help="Landing-zone URL.")] = DEFAULT_LANDING,
    value: Annotated[str | None, typer.Option(help="Only this user or machine id.")] = None,
) -> None:
    """When each withdrawn subject's rows left each partition (and how many)."""
    from pipelines.consent_cli import consent_ledger_command

    raise typer.Exit(consent_ledger_command(landing=landing, value=value))


@app.command()
def demo(
    workdir: Annotated[str, typer.Option(help="Where the demo writes everything.")] = "var/demo",
) -> None:
    """The whole loop on embedded defaults, no network."""
    from pipelines.demo import demo_command

    raise typer.Exit(demo_command(workdir))


def main() -> None:
    """Console-script entry point."""
    app()
