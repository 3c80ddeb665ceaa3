"""The ``tracedrop`` command line (CONTRACT.md §6).

Each command imports its implementation lazily so that ``--help`` is instant and one command's
dependencies never slow another.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tracedrop.schemas.settings import LANDING_URL, PARTNERS

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
delivery_app = typer.Typer(
    help="Partner notices and drop retention: re-send dead letters, read the delivery log, delete expired drops.",
    no_args_is_help=True,
)
app.add_typer(delivery_app, name="delivery")

DEFAULT_LANDING, DEFAULT_PARTNERS = str(LANDING_URL.default), str(PARTNERS.default)


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
    preview_share: Annotated[
        float | None,
        typer.Option(help="Share of usage rows that are preview traffic, 0 < F <= 1; the rest is bulk production."),
    ] = None,
    history_days: Annotated[
        int, typer.Option(help="Days before the first day: session lines only, no bulk rows, no blobs (rule 7).")
    ] = 0,
) -> None:
    """Write a realistic synthetic landing zone that exercises every export rule."""
    from tracedrop.pipelines.synth.cli import synth_command

    raise typer.Exit(
        synth_command(
            out=out,
            days=days,
            requests_per_day=requests_per_day,
            seed=seed,
            start=start,
            gzip=gzip,
            preview_share=preview_share,
            history_days=history_days,
        )
    )


@app.command()
def validate(
    landing: Annotated[str, typer.Option(help="Landing-zone URL to check.")] = DEFAULT_LANDING,
) -> None:
    """Validate every landing-zone file and report rows and quarantined lines per table and day."""
    from tracedrop.pipelines.validate_cli import validate_command

    raise typer.Exit(validate_command(landing))


@app.command()
def export(
    date: Annotated[str, typer.Option(help="The day partition to export, YYYY-MM-DD.")],
    landing: Annotated[str, typer.Option(help="Landing-zone URL.")] = DEFAULT_LANDING,
    partners: Annotated[str, typer.Option(help="Partner registry YAML.")] = DEFAULT_PARTNERS,
    partner: Annotated[str | None, typer.Option(help="Export only this partner.")] = None,
    shards: Annotated[
        int | None, typer.Option(help="Decide the day in N shards, in parallel processes (default 1).")
    ] = None,
) -> None:
    """Run the export job (the same one the Dagster UI runs) for one day."""
    from tracedrop.pipelines.export_cli import export_command

    raise typer.Exit(export_command(landing=landing, partners=partners, dt=date, partner=partner, shards=shards))


@app.command()
def proxy(
    config: Annotated[str, typer.Option(help="Proxy config YAML (CONTRACT.md §5).")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8787,
    landing: Annotated[str, typer.Option(help="Landing-zone URL for telemetry.")] = DEFAULT_LANDING,
) -> None:
    """Serve the OpenAI-compatible proxy with gateway-exact experiment routing."""
    from tracedrop.replay.proxy.cli import proxy_command

    raise typer.Exit(proxy_command(config=config, host=host, port=port, landing=landing))


@app.command()
def stub(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (the demo proxy config's upstreams use 9001).")] = 9001,
    latency_ms: Annotated[float, typer.Option(min=0, help="Milliseconds to wait before each answer.")] = 0.0,
) -> None:
    """Serve a stub OpenAI-compatible upstream (deterministic answers, any API key) for the proxy's demo config."""
    from tracedrop.replay.proxy.cli import stub_command

    raise typer.Exit(stub_command(host=host, port=port, latency_ms=latency_ms))


@app.command()
def redact(
    path: Annotated[str, typer.Argument(help="A text file to redact, or - for standard input.")],
) -> None:
    """Show what the redactor does to a text, with a summary of matches by type."""
    from tracedrop.pipelines.redaction.cli import redact_command

    raise typer.Exit(redact_command(path))


@replay_app.command("run")
def replay_run(
    drops: Annotated[str, typer.Option(help="Drop URL (a partner destination: local path, file:// or s3://).")],
    candidates: Annotated[
        str,
        typer.Option(
            help="Comma-separated candidates: NAME (routed by --proxy), NAME=BASE_URL or NAME=BASE_URL@KEY_ENV."
        ),
    ],
    out: Annotated[str, typer.Option(help="Results directory; re-running the same command resumes.")],
    partner: Annotated[str | None, typer.Option(help="Only this partner's partitions.")] = None,
    experiment: Annotated[str | None, typer.Option(help="Only this experiment's partitions.")] = None,
    variant: Annotated[str | None, typer.Option(help="Only these variant ids or labels (comma-separated).")] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD.")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD.")] = None,
    proxy: Annotated[
        str | None, typer.Option(help="Base URL of the bundled proxy, e.g. http://127.0.0.1:8787/v1.")
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the API key (proxy and direct endpoints).")
    ] = None,
    sample: Annotated[
        int | None, typer.Option(help="Replay about N rows: stratified by variant, whole sessions.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the row sample and the retry jitter.")] = 0,
    samples: Annotated[int, typer.Option(help="Calls per (row, candidate): K distinct calls.")] = 1,
    aa: Annotated[bool, typer.Option("--aa", help="Add the arm 'aa': each row's original checkpoint again.")] = False,
    aa_route: Annotated[
        list[str] | None,
        typer.Option(help="CHECKPOINT=BASE_URL or CHECKPOINT=BASE_URL@KEY_ENV for the aa arm (default: --proxy)."),
    ] = None,
    stream: Annotated[
        bool | None, typer.Option("--stream/--no-stream", help="Set 'stream' in every call (default: as logged).")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Calls in flight at once.")] = 8,
    rate: Annotated[float | None, typer.Option(help="Initial (and maximum) requests/s per endpoint.")] = None,
    max_retries: Annotated[int, typer.Option(help="Retries of a call on 429, 5xx, timeouts.")] = 5,
    timeout: Annotated[float, typer.Option(help="Seconds per attempt.")] = 120.0,
    retry_errors: Annotated[bool, typer.Option("--retry-errors", help="Redo the calls that failed before.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and estimates; call nothing.")] = False,
    price_table: Annotated[
        str | None, typer.Option(help="YAML: model -> {input, output} USD per 1M tokens, for --dry-run.")
    ] = None,
) -> None:
    """Replay exported prompts against each candidate; re-running resumes."""
    from tracedrop.replay.run_cli import replay_run_command
    from tracedrop.replay.run_options import RunOptions

    options = RunOptions(
        drops=drops,
        candidates=candidates,
        out=out,
        partner=partner,
        experiment=experiment,
        variant=variant,
        date_from=date_from,
        date_to=date_to,
        proxy=proxy,
        api_key_env=api_key_env,
        sample=sample,
        seed=seed,
        samples=samples,
        aa=aa,
        aa_routes=list(aa_route or []),
        stream=stream,
        concurrency=concurrency,
        rate=rate,
        max_retries=max_retries,
        timeout=timeout,
        retry_errors=retry_errors,
        dry_run=dry_run,
        price_table=price_table,
    )
    raise typer.Exit(replay_run_command(options))


@replay_app.command("report")
def replay_report(
    results: Annotated[str, typer.Option(help="Results directory of a replay run.")],
    out: Annotated[str, typer.Option(help="HTML report to write; summary.json and summary.md go beside it.")],
    baseline: Annotated[str, typer.Option(help="'original' or a candidate model id.")] = "original",
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            help="METRIC<THRESHOLD or METRIC>THRESHOLD, e.g. similarity<0.8; exit 1 when any candidate crosses it."
        ),
    ] = None,
    judge: Annotated[str | None, typer.Option(help="Base URL of an OpenAI-compatible pairwise judge.")] = None,
    judge_model: Annotated[str | None, typer.Option(help="Model name the judge endpoint serves.")] = None,
    judge_key_env: Annotated[str | None, typer.Option(help="Environment variable holding the judge's API key.")] = None,
    judge_max_pairs: Annotated[int | None, typer.Option(help="Judge at most N rows per candidate.")] = None,
) -> None:
    """Write the comparison report (tables, plots, confidence intervals)."""
    from tracedrop.replay.report_cli import ReportOptions, replay_report_command

    options = ReportOptions(
        results=results,
        out=out,
        baseline=baseline,
        fail_on=list(fail_on or []),
        judge=judge,
        judge_model=judge_model,
        judge_key_env=judge_key_env,
        judge_max_pairs=judge_max_pairs,
    )
    raise typer.Exit(replay_report_command(options))


@consent_app.command("apply")
def consent_apply(
    landing: Annotated[
        str, typer.Option(help="Landing-zone URL (its opt-outs and publication records).")
    ] = DEFAULT_LANDING,
    partners: Annotated[str, typer.Option(help="Partner registry YAML (validated).")] = DEFAULT_PARTNERS,
) -> None:
    """Re-publish now every published partition holding a withdrawn subject's rows; exit 0 when none remains."""
    from tracedrop.pipelines.consent_cli import consent_apply_command

    raise typer.Exit(consent_apply_command(landing=landing, partners=partners))


@consent_app.command("ledger")
def consent_ledger(
    landing: Annotated[str, typer.Option(help="Landing-zone URL.")] = DEFAULT_LANDING,
    value: Annotated[str | None, typer.Option(help="Only this user or machine id.")] = None,
) -> None:
    """When each withdrawn subject's rows left each partition (and how many)."""
    from tracedrop.pipelines.consent_cli import consent_ledger_command

    raise typer.Exit(consent_ledger_command(landing=landing, value=value))


@delivery_app.command("resend")
def delivery_resend(
    landing: Annotated[str, typer.Option(help="Landing-zone URL (its dead letters).")] = DEFAULT_LANDING,
    partners: Annotated[
        str, typer.Option(help="Partner registry YAML (current webhook_url, webhook_secret_env).")
    ] = DEFAULT_PARTNERS,
) -> None:
    """Re-send every dead-lettered notice (same body, same idempotency key); exit 0 when none is left."""
    from tracedrop.pipelines.delivery_cli import delivery_resend_command

    raise typer.Exit(delivery_resend_command(landing=landing, partners=partners))


@delivery_app.command("log")
def delivery_log(
    landing: Annotated[str, typer.Option(help="Landing-zone URL.")] = DEFAULT_LANDING,
    partner: Annotated[str | None, typer.Option(help="Only this partner's notices.")] = None,
) -> None:
    """Every attempt to deliver a notice: when, which partition, why, HTTP status, outcome."""
    from tracedrop.pipelines.delivery_cli import delivery_log_command

    raise typer.Exit(delivery_log_command(landing=landing, partner=partner))


@delivery_app.command("retention")
def delivery_retention(
    landing: Annotated[str, typer.Option(help="Landing-zone URL (its publication records).")] = DEFAULT_LANDING,
    partners: Annotated[
        str, typer.Option(help="Partner registry YAML (each partner's retention_days).")
    ] = "pipelines/synth/partners.yaml",
    apply: Annotated[bool, typer.Option("--apply", help="Delete them (default: only list what would go).")] = False,
) -> None:
    """Partitions older than their partner's retention_days: listed, or deleted with --apply (and logged)."""
    from tracedrop.pipelines.delivery_cli import delivery_retention_command

    raise typer.Exit(delivery_retention_command(landing=landing, partners=partners, apply=apply))


@app.command()
def wipe(
    experiment: Annotated[str, typer.Option(help="The experiment id whose prompt and response bodies go.")],
    landing: Annotated[str, typer.Option(help="Landing-zone URL.")] = DEFAULT_LANDING,
    partners: Annotated[
        str, typer.Option(help="Partner registry YAML (webhooks for the re-publish notices).")
    ] = "pipelines/synth/partners.yaml",
    apply: Annotated[bool, typer.Option("--apply", help="Wipe (default: only show what would change).")] = False,
) -> None:
    """Wipe an experiment's bodies: landing references set to __deleted__, its drops re-published without them."""
    from tracedrop.pipelines.wipe_cli import wipe_command

    raise typer.Exit(wipe_command(experiment=experiment, landing=landing, partners=partners, apply=apply))


@app.command()
def gc(
    landing: Annotated[
        str, typer.Option(help="Landing-zone URL (its prompts/ and responses/ blobs).")
    ] = DEFAULT_LANDING,
    grace_minutes: Annotated[
        float, typer.Option(min=0, help="Never delete a blob written less than this many minutes ago.")
    ] = 60.0,
    apply: Annotated[bool, typer.Option("--apply", help="Delete the orphans (default: only list them).")] = False,
) -> None:
    """Landing blobs no usage or experiment_requests line refers to: listed, or deleted with --apply."""
    from tracedrop.pipelines.gc_cli import gc_command

    raise typer.Exit(gc_command(landing=landing, grace_minutes=grace_minutes, apply=apply))


@app.command()
def demo(
    workdir: Annotated[str, typer.Option(help="Where the demo writes everything.")] = "var/demo",
) -> None:
    """The whole loop on embedded defaults, no network."""
    from tracedrop.pipelines.demo import demo_command

    raise typer.Exit(demo_command(workdir))


def main() -> None:
    """Console-script entry point."""
    app()
