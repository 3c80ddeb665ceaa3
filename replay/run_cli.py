"""``tracedrop replay run``: select drop rows, plan the calls, run what is not saved yet, summarise.

Exit codes: 0 every planned pair has a result, 1 some are missing (errors), 2 bad input (nothing
written), 130 stopped by Ctrl-C (everything finished so far saved; re-run to resume).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import polars as pl

from tracedrop.replay.completion import completion_fields, parse_completion
from tracedrop.replay.drops import DropFilter, read_rows, scan_partitions
from tracedrop.replay.plan import ORIGINAL, Arm, PlanSettings, arm_endpoint, arm_model, build_plan, sha256_text
from tracedrop.replay.progress import LiveProgress
from tracedrop.replay.proxy.records import REQUEST_KIND
from tracedrop.replay.results_lock import Lease, ResultsLocked, exclusive
from tracedrop.replay.run_options import (
    InputError,
    Price,
    RunOptions,
    aa_arm,
    aa_endpoints,
    check_filters,
    check_numbers,
    check_out,
    check_url,
    load_price_table,
    parse_candidates,
)
from tracedrop.replay.runner import Call, Runner, RunnerSettings
from tracedrop.replay.selection import replayable, sample_rows
from tracedrop.replay.store import PLAN_FILE, ResultsWriter, load_results, saved_keys, write_run
from tracedrop.storage.objectstore import ObjectStoreError, open_store

PROG = "tracedrop replay run"


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def select_rows(options: RunOptions) -> tuple[pl.DataFrame, DropFilter, dict[str, int]]:
    """The replayable drop rows the options ask for (before sampling) and the rows skipped as unreplayable,
    per reason; InputError when no row is left."""
    start, end = check_filters(options)
    variants = tuple(v.strip() for v in (options.variant or "").split(",") if v.strip())
    wanted = DropFilter(options.partner, options.experiment, start, end, variants)
    try:
        store = open_store(options.drops)
        scan = scan_partitions(store, wanted)
        if not scan.partitions:
            incomplete = f" ({scan.incomplete} matching partition(s) lack _SUCCESS)" if scan.incomplete else ""
            raise InputError(
                f"--drops {options.drops}: no complete partition (partner=/experiment=/dt= with _SUCCESS) matches "
                f"the filters{incomplete}; check the URL, --partner, --experiment, --from and --to"
            )
        if scan.incomplete:
            _say(f"skipping {scan.incomplete} partition(s) without _SUCCESS (not yet published)")
        rows = read_rows(store, scan.partitions, variants)
    except (ObjectStoreError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"--drops {options.drops}: cannot read it ({exc}); check the URL and credentials") from None
    if rows.is_empty():
        raise InputError(f"--variant {options.variant}: no row of the chosen partitions has this variant id or label")
    other = rows.filter(pl.col("request_kind") != REQUEST_KIND)
    if other.height:
        kinds = ", ".join(sorted(set(other["request_kind"])))
        _say(f"skipping {other.height} row(s) of request kind(s) {kinds}: only {REQUEST_KIND} is replayed")
        rows = rows.filter(pl.col("request_kind") == REQUEST_KIND)
    if rows.is_empty():
        raise InputError(f"--drops {options.drops}: no {REQUEST_KIND} row to replay among the chosen rows")
    rows, skipped = replayable(rows)
    if rows.is_empty():
        raise InputError(
            f"--drops {options.drops}: no chosen row has a request body that is a whole JSON object "
            f"({skipped_text(skipped)}); choose other partitions or variants"
        )
    return rows, wanted, skipped


def skipped_text(skipped: dict[str, int]) -> str:
    """``skipped`` as ``not_json 1, truncated 2`` (reasons with no row left out)."""
    return ", ".join(f"{reason} {count}" for reason, count in sorted(skipped.items()) if count)


def skipped_line(skipped: dict[str, int]) -> str:
    """The plan's and the summary's line on rows left out because their request cannot be sent as logged."""
    total = sum(skipped.values())
    if not total:
        return "skipped rows: none (every chosen request body is a JSON object)"
    return (
        f"skipped rows: {total} whose request body is not a JSON object ({skipped_text(skipped)}; truncated = cut "
        "at the export's size cap): they cannot be replayed faithfully and are in no arm"
    )


def resolve(options: RunOptions) -> tuple[pl.DataFrame, PlanSettings, dict[str, Any]]:
    """Check every option and read the drop: rows, plan settings and the run.json description."""
    check_numbers(options)
    check_out(options.out)
    proxy = check_url("--proxy", options.proxy) if options.proxy else None
    arms: tuple[Arm, ...] = parse_candidates(options, proxy)
    rows, wanted, skipped = select_rows(options)
    rows = sample_rows(rows, options.sample, options.seed)
    routes = aa_endpoints(options, proxy, set(rows["checkpoint"].to_list()))
    if options.aa:
        arms = (*arms, aa_arm())
    settings = PlanSettings(arms, options.samples, options.stream, routes)
    run = {
        "created_at": datetime.now(UTC).isoformat(),
        "drops": options.drops,
        "filters": {
            "partner": wanted.partner,
            "experiment": wanted.experiment,
            "variant": list(wanted.variants),
            "from": wanted.date_from,
            "to": wanted.date_to,
        },
        "candidates": [
            {
                "arm": arm.name,
                "kind": arm.endpoint.kind,
                "base_url": arm.endpoint.base_url,
                "api_key_env": arm.endpoint.api_key_env,
            }
            for arm in arms
            if arm.endpoint is not None
        ],
        "aa_routes": {
            checkpoint: {"kind": e.kind, "base_url": e.base_url, "api_key_env": e.api_key_env}
            for checkpoint, e in sorted(routes.items())
        },
        "samples": options.samples,
        "seed": options.seed,
        "sample": options.sample,
        "aa": options.aa,
        "stream": options.stream,
        "skipped_rows": skipped,
    }
    return rows, settings, run


def original_record(row: dict[str, Any], plan_row: dict[str, Any]) -> dict[str, Any]:
    """The ``original`` arm's outcome from the drop: a result, or an error if the logged call failed."""
    record = {
        **plan_row,
        "status_code": row["original_status_code"],
        "response_body": row["original_response_body"],
        "latency_ms": row["original_latency_ms"],
        "ttft_ms": None,
        "attempts": 0,
        "retry_wait_ms": 0.0,
        "input_tokens": row["original_input_tokens"],
        "output_tokens": row["original_output_tokens"],
    }
    if row["original_has_error"] or row["original_response_body"] is None:
        return {
            **record,
            "error": f"original: the logged call failed or kept no response (status {row['original_status_code']})",
        }
    try:
        fields = completion_fields(parse_completion(row["original_response_body"]))
    except ValueError as exc:
        return {**record, "error": f"original: {exc}"}
    return {**vars(fields), **record}  # the drop's token counts win over the body's usage


def estimate(rows: pl.DataFrame, plan: pl.DataFrame, settings: PlanSettings, prices: dict[str, Price]) -> pl.DataFrame:
    """Per arm: calls, and input/output tokens and cost estimated from the drop's token columns."""
    called = plan.filter(pl.col("arm") != ORIGINAL).join(
        rows.select("row_id", "checkpoint", "original_input_tokens", "original_output_tokens"), on="row_id"
    )
    fixed = {arm.name: arm.model for arm in settings.arms if arm.model is not None}  # aa: the row's checkpoint
    model = pl.col("arm").replace_strict(fixed, default=None, return_dtype=pl.String)
    called = called.with_columns(pl.coalesce(model, pl.col("checkpoint")).alias("model"))
    table = {m: (p.input_per_million, p.output_per_million) for m, p in prices.items()}
    priced = called.with_columns(
        pl.col("model")
        .replace_strict({m: v[0] for m, v in table.items()}, default=None, return_dtype=pl.Float64)
        .alias("pin"),
        pl.col("model")
        .replace_strict({m: v[1] for m, v in table.items()}, default=None, return_dtype=pl.Float64)
        .alias("pout"),
    )
    return priced.group_by("arm", maintain_order=True).agg(
        pl.len().alias("calls"),
        pl.col("original_input_tokens").sum().alias("input_tokens"),
        pl.col("original_output_tokens").sum().alias("output_tokens"),
        pl.when(pl.col("pin").is_null().any())
        .then(None)
        .otherwise(
            (
                (pl.col("original_input_tokens") * pl.col("pin") + pl.col("original_output_tokens") * pl.col("pout"))
                / 1e6
            ).sum()
        )
        .alias("cost_usd"),
    )


def print_plan(
    rows: pl.DataFrame,
    plan: pl.DataFrame,
    settings: PlanSettings,
    prices: dict[str, Price],
    to_call: int,
    skipped: dict[str, int],
) -> None:
    table = estimate(rows, plan, settings, prices)
    sessions = rows.select(pl.coalesce("session_id", "row_id")).n_unique()
    print(
        f"plan: {rows.height} rows in {sessions} sessions, {settings.samples} sample(s) per call, "
        f"{plan.height - table['calls'].sum()} logged (original), {table['calls'].sum()} calls, {to_call} not saved yet"
    )
    print(skipped_line(skipped))
    print(f"{'arm':<24} {'calls':>8} {'est. input tok':>15} {'est. output tok':>16} {'est. cost USD':>14}")
    for arm, calls, tokens_in, tokens_out, cost in table.iter_rows():
        shown = "n/a (no price)" if cost is None else f"{cost:.4f}"
        print(f"{arm:<24} {calls:>8} {tokens_in or 0:>15} {tokens_out or 0:>16} {shown:>14}")
    if not prices:
        print("(no --price-table: cost not estimated)")


def pending_calls(rows: pl.DataFrame, plan: pl.DataFrame, settings: PlanSettings, skip: set[str]) -> list[Call]:
    bodies = {r: (b, c) for r, b, c in rows.select("row_id", "request_body", "checkpoint").iter_rows()}
    arms = {arm.name: arm for arm in settings.arms}
    calls = []
    for key, row_id, arm_name, sample, request_hash, config in plan.filter(pl.col("arm") != ORIGINAL).iter_rows():
        if key in skip:
            continue
        body, checkpoint = bodies[row_id]
        arm = arms[arm_name]
        calls.append(
            Call(
                key,
                row_id,
                arm_name,
                sample,
                request_hash,
                config,
                arm_endpoint(arm, checkpoint, settings),
                arm_model(arm, checkpoint),
                body,
            )
        )
    return calls


def per_arm(frame: pl.DataFrame) -> dict[str, int]:
    return dict(frame.group_by("arm", maintain_order=True).len().iter_rows()) if frame.height else {}


def print_summary(out: str, retries: dict[str, int]) -> int:
    """Per arm planned / done / errors / missing; the number of planned pairs missing."""
    loaded = load_results(out)
    planned, done, errors, missing = (per_arm(f) for f in (loaded.plan, loaded.results, loaded.errors, loaded.missing))
    print(f"{'arm':<24} {'planned':>8} {'done':>8} {'errors':>8} {'missing':>8}")
    for arm in planned:
        print(f"{arm:<24} {planned[arm]:>8} {done.get(arm, 0):>8} {errors.get(arm, 0):>8} {missing.get(arm, 0):>8}")
    total_missing = loaded.missing.height
    causes = ", ".join(f"{kind} {count}" for kind, count in sorted(retries.items())) or "none"
    print(f"retries this run: {causes}")
    print(f"{total_missing} of {loaded.plan.height} planned pairs missing (errors included: an error is not a result)")
    print(skipped_line(loaded.run["skipped_rows"]))
    print(f"results: {out}")
    return total_missing


def replay_run_command(options: RunOptions) -> int:
    """Run the command; return its exit code."""
    try:
        return _run(options)
    except KeyboardInterrupt:
        _say(f"{PROG}: stopped by Ctrl-C; everything finished is saved; re-run the same command to resume")
        return 130


def saved_outcomes(options: RunOptions) -> set[str]:
    """The keys a run makes no call for: saved results, and saved errors unless ``--retry-errors``."""
    if not open_store(options.out).exists(PLAN_FILE):
        return set()
    done, errored = saved_keys(options.out)
    return done if options.retry_errors else done | errored


def _run(options: RunOptions) -> int:
    try:
        prices = load_price_table(options.price_table)
        rows, settings, run = resolve(options)
        plan = build_plan(rows, settings)
    except InputError as exc:
        _say(f"{PROG}: {exc}")
        return 2
    if options.dry_run:
        to_call = len(pending_calls(rows, plan, settings, saved_outcomes(options)))
        print_plan(rows, plan, settings, prices, to_call, run["skipped_rows"])
        return 0
    try:
        with exclusive(options.out) as lease:  # saved keys are read under the lock: no other run adds to them
            skip = saved_outcomes(options)
            calls = pending_calls(rows, plan, settings, skip)
            return _execute(options, rows, plan, settings, run, skip, calls, lease)
    except ResultsLocked as exc:
        _say(f"{PROG}: --out {options.out}: {exc}")
        return 2


def _execute(
    options: RunOptions,
    rows: pl.DataFrame,
    plan: pl.DataFrame,
    settings: PlanSettings,
    run: dict[str, Any],
    skip: set[str],
    calls: list[Call],
    lease: Lease,
) -> int:
    """Write the run's description and the originals, make the calls, print the summary."""
    run["config_hash"] = sha256_text("".join(sorted(set(plan["config_hash"].to_list()))).encode())[:16]
    run["planned"] = dict(plan.group_by("arm", maintain_order=True).len().iter_rows())
    lease.check()
    write_run(options.out, run, rows, plan)
    writer = ResultsWriter(options.out, guard=lease.check)
    by_row = {row["row_id"]: row for row in rows.iter_rows(named=True)}
    for plan_row in plan.filter(pl.col("arm") == ORIGINAL).iter_rows(named=True):
        if plan_row["key"] not in skip:
            writer.add(original_record(by_row[plan_row["row_id"]], plan_row))
    writer.flush()
    runner_settings = RunnerSettings(
        concurrency=options.concurrency,
        max_retries=options.max_retries,
        timeout_s=options.timeout,
        rate=options.rate,
        stream=options.stream,
        seed=options.seed,
    )
    _say(f"{len(calls)} call(s) to make ({len(skip)} saved outcome(s) skipped); Ctrl-C stops and keeps what is done")
    with LiveProgress(len(calls)) as progress:
        tally = asyncio.run(Runner(runner_settings, writer, progress.update).run(calls))
    missing = print_summary(options.out, dict(tally.retries))
    if tally.interrupted:
        _say(f"{PROG}: stopped by Ctrl-C; everything finished is saved; re-run the same command to resume")
        return 130
    return 1 if missing else 0
