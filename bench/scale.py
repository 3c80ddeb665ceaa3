"""Benchmark the export at scale: peak RSS and usage rows/s of ingest and decide as the day grows.

    .venv/bin/python bench/scale.py [--rows 1000000,5000000,10000000] [--preview-share 0.01] [--history-days 7]

For each size ``tracedrop synth --preview-share`` writes one production-heavy day (``--rows`` usage
rows, ``--preview-share`` of them preview traffic) after ``--history-days`` days of preview sessions
for rule 7 to look back at.  Then one child process per size runs the export steps ingest and decide
(and, for the first size only, stage, the checks and publish), timing each step's wall and CPU
seconds and reading its peak RSS (``getrusage``: the largest resident set so far, so a step's figure
is the highest of it and the steps before).  The table shows each step; the summary compares
ingest + decide with the targets (peak RSS <= 2.5 GB and flat across sizes, >= 100k usage rows/s)
and with the first size, whose ratios show how figures grow with the day (flat = 1.00x).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.export import SALT_ENVS, demo_partners  # noqa: E402

DAY = date(2026, 11, 8)
RSS_TARGET_GB = 2.5
RATE_TARGET = 100_000  # usage rows per second through ingest + decide
GB = 1024**3
MADE_AT = ("created_at", "generated_at")  # when a manifest or stats file was written: differs between runs


def synthesise(out: Path, rows: int, preview_share: float, history_days: int, seed: int) -> dict[str, float]:
    """Write the day and its history; seconds taken and the day's usage rows."""
    from tracedrop.pipelines.synth.generate import SynthConfig, generate
    from tracedrop.storage.objectstore import open_store

    config = SynthConfig(
        days=1, requests_per_day=rows, seed=seed, start=DAY, preview_share=preview_share, history_days=history_days
    )
    started = time.perf_counter()
    summary = generate(open_store(str(out)), config)
    return {"seconds": time.perf_counter() - started, "usage_rows": summary["rows"]["usage"][DAY.isoformat()]}


def _peak_rss_bytes() -> int:
    """The largest resident set of this process or any worker process it waited for (Linux reports KiB)."""
    return max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) * 1024


def _cpu_seconds() -> float:
    """CPU seconds of this process and of the worker processes it waited for."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


def run_steps(landing: str, partners: str, full: bool, shards: int = 1) -> None:
    """In the child: run the export steps one by one and print each one's figures as JSON."""
    from uuid import uuid4

    from tracedrop.pipelines.export import day
    from tracedrop.pipelines.export.settings import ExportSettings

    settings = ExportSettings(landing_url=landing, partners_path=partners, shards=shards)
    dt, run_id = DAY.isoformat(), uuid4().hex
    steps = [("ingest", day.ingest), ("decide", day.decide_day)]
    if full:
        steps += [("stage", day.stage), ("checks", day.run_checks), ("publish", day.publish)]
    figures = []
    for name, step in steps:
        cpu, wall = _cpu_seconds(), time.perf_counter()
        result = step(settings, dt, run_id)
        figures.append(
            {
                "step": name,
                "wall": time.perf_counter() - wall,
                "cpu": _cpu_seconds() - cpu,
                "peak_rss": _peak_rss_bytes(),
            }
        )
        if name == "checks":
            failed = [outcome.name for outcome in result if not outcome.passed]
            if failed:
                raise SystemExit(f"checks failed: {failed}")
    print(json.dumps(figures))


def measure(landing: Path, partners: Path, full: bool, shards: int = 1) -> list[dict]:
    """The per-step figures of the export run in a child process of its own."""
    mode = f"{'full' if full else 'decide'}:{shards}"
    command = [sys.executable, __file__, "--run", str(landing), str(partners), mode]
    child = subprocess.run(command, env={**os.environ, **SALT_ENVS}, capture_output=True, text=True, check=False)
    if child.returncode:
        raise SystemExit(f"the export of {landing} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="200000", help="comma-separated usage rows per day (default 200000)")
    parser.add_argument("--preview-share", type=float, default=0.01, help="share of preview traffic (default 0.01)")
    parser.add_argument("--history-days", type=int, default=7, help="lookback days before the day (default 7)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--run", nargs=3, metavar=("LANDING", "PARTNERS", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        landing, partners, mode = args.run
        kind, shards = mode.split(":")
        run_steps(landing, partners, kind == "full", int(shards))
        return
    try:
        sizes = [int(size.replace("_", "")) for size in args.rows.split(",")]
    except ValueError:
        parser.exit(2, f"bench/scale.py: --rows must be comma-separated whole numbers, got {args.rows!r}\n")

    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    steps = Table(title=f"Export steps per day size ({os.cpu_count()} cores, {args.preview_share:.0%} preview)")
    for column in ("usage rows", "synth s", "step", "wall s", "CPU s", "usage rows/s", "peak RSS GB (so far)"):
        steps.add_column(column, justify="right")
    results = []
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        work = Path(tmp)
        for index, rows in enumerate(sizes):
            landing = work / f"landing-{rows}"
            with console.status(f"synthesising {rows:,} usage rows + {args.history_days} history days ..."):
                synth = synthesise(landing, rows, args.preview_share, args.history_days, args.seed)
            partners = demo_partners(work / f"partners-{rows}.yaml", work / f"drops-{rows}")
            with console.status(f"exporting {synth['usage_rows']:,} usage rows ..."):
                figures = measure(landing, partners, full=index == 0)
            usage_rows = synth["usage_rows"]
            for n, step in enumerate(figures):
                steps.add_row(
                    f"{usage_rows:,}" if n == 0 else "",
                    f"{synth['seconds']:.1f}" if n == 0 else "",
                    step["step"],
                    f"{step['wall']:.1f}",
                    f"{step['cpu']:.1f}",
                    f"{usage_rows / step['wall']:,.0f}",
                    f"{step['peak_rss'] / GB:.2f}",
                )
            core = [s for s in figures if s["step"] in ("ingest", "decide")]
            results.append(
                {
                    "rows": usage_rows,
                    "wall": sum(s["wall"] for s in core),
                    "rss": max(s["peak_rss"] for s in core),
                }
            )
            if index == 0:
                shard_check = compare_shards(landing, work / f"drops-{rows}", work / f"drops-{rows}-2-shards")
            subprocess.run(["rm", "-rf", str(landing), str(work / f"drops-{rows}")], check=False)
    console.print(steps)
    console.print(summary_table(results))
    console.print(shard_check)
    console.print(
        f"Targets: peak RSS <= {RSS_TARGET_GB} GB at every size (flat: the same as the first size), "
        f"ingest + decide >= {RATE_TARGET:,} usage rows/s. The {args.history_days} history days before {DAY} "
        "hold session lines only (the preview sessions with their production turns; no bulk production rows, "
        "no blobs), so decide's lookback figures leave out indexing full production days."
    )


def drop_contents(drops: Path) -> dict[str, object]:
    """Every published file: Parquet as its bytes, manifests and stats without the time they were made."""
    found: dict[str, object] = {}
    for path in sorted(drops.rglob("*")):
        if path.is_file():
            name = str(path.relative_to(drops))
            if path.suffix == ".json":
                found[name] = {k: v for k, v in json.loads(path.read_text()).items() if k not in MADE_AT}
            elif path.suffix == ".html":
                found[name] = re.sub(r"Generated \S+Z\.", "", path.read_text())
            else:
                found[name] = path.read_bytes()
    return found


def compare_shards(landing: Path, one_shard: Path, two_shards: Path) -> str:
    """Export the day again in 2 shards to another destination; say whether the drops are the same."""
    partners = demo_partners(landing.parent / f"{landing.name}-partners-2-shards.yaml", two_shards)
    figures = measure(landing, partners, full=True, shards=2)
    one, two = drop_contents(one_shard), drop_contents(two_shards)
    differing = sorted(name for name in one.keys() | two.keys() if one.get(name) != two.get(name))
    decide = next(f for f in figures if f["step"] == "decide")
    verdict = "identical" if not differing else f"DIFFERENT: {', '.join(differing[:5])}"
    return (
        f"The first size exported again with 2 shards (decide {decide['wall']:.1f} s wall): {len(one)} published "
        f"files vs {len(two)}, {verdict} (manifests and stats compared without created_at / generated_at)."
    )


def summary_table(results: list[dict]) -> object:
    """Ingest + decide per size against the targets and the first size."""
    from rich.table import Table

    table = Table(title="Ingest + decide: targets and growth against the first size")
    for column in ("usage rows", "wall s", "usage rows/s", "vs rate target", "peak RSS GB", "vs RSS target"):
        table.add_column(column, justify="right")
    table.add_column("rows / RSS / time vs first", justify="right")
    first = results[0]
    for r in results:
        rate = r["rows"] / r["wall"]
        table.add_row(
            f"{r['rows']:,}",
            f"{r['wall']:.1f}",
            f"{rate:,.0f}",
            f"{rate / RATE_TARGET:.2f}x {'ok' if rate >= RATE_TARGET else 'MISSED'}",
            f"{r['rss'] / GB:.2f}",
            f"{r['rss'] / GB / RSS_TARGET_GB:.2f}x {'ok' if r['rss'] <= RSS_TARGET_GB * GB else 'MISSED'}",
            f"{r['rows'] / first['rows']:.1f}x / {r['rss'] / first['rss']:.2f}x / {r['wall'] / first['wall']:.2f}x",
        )
    return table


if __name__ == "__main__":
    main()
