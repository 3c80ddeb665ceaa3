"""Benchmark the export: MB/s of landing data and peak RSS, against a per-row baseline and a copy floor.

    .venv/bin/python bench/export.py [--gb 1,5] [--baseline-gb 0.1]

For each size a one-day landing zone is synthesised (``tracedrop synth``), then three exporters run
over it, each in its own process so peak RSS is its own:

* ``tracedrop``: the real export steps (ingest → decide → stage with redaction → checks → publish);
* ``baseline``: the straightforward way — ``json.loads`` per line, pandas joins, the same rules and
  the same redaction regexes applied with Python ``re`` row by row, HMAC per row, pandas to Parquet
  (run on a smaller landing zone of ``--baseline-gb``, since it is slow; MB/s is a rate);
* ``floor``: no validation and no redaction — polars reads the JSONL, joins, reads the exported
  prompts and writes zstd Parquet: the cost of merely moving the same bytes.

"MB/s" is landing bytes (JSONL + the day's blobs) over wall time; "MB/s per core" divides by the CPU
seconds used (user + system), so multi-threaded work is not flattered.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DT = "2026-11-01"
SALT_ENVS = {"TRACEDROP_SALT_ACME": "bench-acme", "TRACEDROP_SALT_BETA": "bench-beta", "TRACEDROP_SALT_GAMMA": "g"}


def landing_bytes(root: Path) -> int:
    """Bytes of landing data (everything but tracedrop's and synth's own areas)."""
    total = 0
    for dirpath, _, names in os.walk(root):
        if "/_tracedrop" in dirpath or "/_synth" in dirpath:
            continue
        total += sum((Path(dirpath) / n).stat().st_size for n in names)
    return total


def synthesise(out: Path, gb: float) -> int:
    """A one-day landing zone of about ``gb`` GB; returns its landing bytes."""
    from tracedrop.pipelines.synth.generate import SynthConfig, generate
    from tracedrop.storage.objectstore import open_store

    probe = out.parent / f"{out.name}-probe"
    probe_requests = 20_000
    generate(open_store(probe), SynthConfig(days=1, requests_per_day=probe_requests, start=date.fromisoformat(DT)))
    per_request = landing_bytes(probe) / probe_requests
    requests = max(2000, int(gb * 1e9 / per_request))
    generate(open_store(out), SynthConfig(days=1, requests_per_day=requests, start=date.fromisoformat(DT)))
    return landing_bytes(out)


# --- the three exporters (each runs in a child process) --------------------------------------


def run_tracedrop(landing: Path, partners: Path, drops: Path) -> None:
    from tracedrop.pipelines.export import day
    from tracedrop.pipelines.export.settings import ExportSettings

    settings = ExportSettings(landing_url=str(landing), partners_path=str(partners))
    steps, outcomes = day.run_all(settings, DT)
    failed = [o.name for o in outcomes if not o.passed]
    if failed:
        raise SystemExit(f"checks failed: {failed}")
    print(json.dumps({"rows": steps["stage"]["rows_out"]}))


def _read_jsonl_python(directory: Path) -> list[dict]:
    rows = []
    for path in sorted(directory.glob("*.jsonl")):
        with path.open("rb") as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
                if isinstance(row, dict) and ("id" in row or "usage_id" in row):
                    rows.append(row)
    return rows


def run_baseline(landing: Path, partners: Path, drops: Path) -> None:
    import pandas as pd
    import yaml

    from tracedrop.pipelines.redaction import load_default_rules

    registry = yaml.safe_load(partners.read_text())["partners"]
    owners = {e: p for p in registry if p["eval_program"] for e in p["experiments"]}
    rules = [(rule.regex, f"<REDACTED:{rule.type}>") for rule in load_default_rules().rules]
    usage = pd.DataFrame(_read_jsonl_python(landing / f"usage/dt={DT}"))
    requests = pd.DataFrame(_read_jsonl_python(landing / f"experiment_requests/dt={DT}"))

    def snapshot(name: str) -> dict[str, dict]:
        with (landing / f"experiments/{name}.jsonl").open() as handle:
            return {row["id"]: row for row in map(json.loads, handle)}

    versions = snapshot("model_experiment_variant_version")
    variants = snapshot("model_experiment_variant")
    exps = snapshot("model_experiment")
    merged = usage.merge(requests, left_on="id", right_on="usage_id", how="inner", suffixes=("", "_er"))
    out_rows = []
    for row in merged.to_dict("records"):
        version = versions.get(row["variant_version_id"])
        variant = variants.get(version["variant_id"]) if version else None
        experiment = exps.get(variant["experiment_id"]) if variant else None
        if not experiment or experiment["id"] not in owners or experiment["status"] == "draft":
            continue
        if str(row["requested_model"]).lower() != str(experiment["public_model_id"]).lower():
            continue
        digest = row["request_body_sha256"]
        blob = landing / "prompts" / str(digest)
        if not re.fullmatch(r"[0-9a-f]{64}", str(digest)) or not blob.exists():
            continue
        text = blob.read_text()
        for regex, placeholder in rules:
            text = regex.sub(lambda m, p=placeholder: m.group(0)[: m.start("secret") - m.start()] + p, text)
        salt = os.environ[owners[experiment["id"]]["subject_salt_env"]].encode()
        out_rows.append(
            {
                "partner_id": owners[experiment["id"]]["id"],
                "request_id": hmac.new(salt, row["id"].encode(), hashlib.sha256).hexdigest(),
                "created_at": row["created_at"],
                "request_body": text,
            }
        )
    drops.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(out_rows).to_parquet(drops / "baseline.parquet", compression="zstd")
    print(json.dumps({"rows": len(out_rows)}))


def run_floor(landing: Path, partners: Path, drops: Path) -> None:
    import duckdb
    import polars as pl

    def jsonl(table: str, columns: str) -> str:
        path = f"{landing}/{table}/dt={DT}/*.jsonl"
        return f"read_json('{path}', format='newline_delimited', ignore_errors=true, columns={{{columns}}})"

    usage = jsonl("usage", "id: 'VARCHAR', created_at: 'VARCHAR', session_id: 'VARCHAR'")
    requests = jsonl("experiment_requests", "usage_id: 'VARCHAR', request_body_sha256: 'VARCHAR'")
    exported = duckdb.sql(
        f"""SELECT u.id, u.created_at, u.session_id, r.request_body_sha256
            FROM {usage} u JOIN {requests} r ON u.id = r.usage_id
            WHERE length(r.request_body_sha256) = 64"""
    ).pl()
    bodies = []
    for digest in exported.get_column("request_body_sha256").to_list():
        blob = landing / "prompts" / digest
        bodies.append(blob.read_text() if blob.exists() else None)
    drops.mkdir(parents=True, exist_ok=True)
    exported.with_columns(pl.Series("request_body", bodies)).write_parquet(drops / "floor.parquet", compression="zstd")
    print(json.dumps({"rows": exported.height}))


RUNNERS = {"tracedrop": run_tracedrop, "baseline": run_baseline, "floor": run_floor}


def measure(kind: str, landing: Path, partners: Path, drops: Path) -> dict[str, float]:
    """Run one exporter in a child process; wall seconds, CPU seconds, its own peak RSS (MiB), rows."""
    env = {**os.environ, **SALT_ENVS}
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            [sys.executable, __file__, "--run", kind, str(landing), str(partners), str(drops)],
            env=env,
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode:
            raise SystemExit(f"{kind} failed:\n{err.read()[-3000:]}")
        rows = json.loads(out.read().strip().splitlines()[-1])["rows"]
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall": wall, "cpu": cpu, "rss_mib": usage.ru_maxrss / 1024, "rows": rows}


def demo_partners(path: Path, drops: Path) -> Path:
    import yaml

    registry = yaml.safe_load((ROOT / "pipelines/synth/partners.yaml").read_text())
    for partner in registry["partners"]:
        partner["destination"] = str(drops)
    path.write_text(yaml.safe_dump(registry))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", default="1,5", help="comma-separated landing sizes in GB (default 1,5)")
    parser.add_argument("--baseline-gb", type=float, default=0.1, help="landing size for the slow baseline")
    parser.add_argument("--run", nargs=4, metavar=("KIND", "LANDING", "PARTNERS", "DROPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        kind, landing, partners, drops = args.run
        RUNNERS[kind](Path(landing), Path(partners), Path(drops))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Export of one synthetic day ({os.cpu_count()} cores)")
    for column in (
        "landing",
        "exporter",
        "rows out",
        "wall s",
        "MB/s",
        "MB/s per core",
        "peak RSS MiB",
        "vs tracedrop",
    ):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        work = Path(tmp)
        sizes = [("baseline", args.baseline_gb)] + [("main", float(gb)) for gb in args.gb.split(",")]
        for label, gb in sizes:
            landing = work / f"landing-{gb}"
            with console.status(f"synthesising a {gb} GB day ..."):
                size = synthesise(landing, gb)
            partners = demo_partners(work / f"partners-{gb}.yaml", work / f"drops-{gb}")
            kinds = ["tracedrop", "baseline"] if label == "baseline" else ["tracedrop", "floor"]
            results = {}
            for kind in kinds:
                with console.status(f"{kind} over {size / 1e9:.2f} GB ..."):
                    results[kind] = measure(kind, landing, partners, work / f"drops-{gb}-{kind}")
            ours = size / 1e6 / results["tracedrop"]["wall"]
            for kind, r in results.items():
                rate = size / 1e6 / r["wall"]
                table.add_row(
                    f"{size / 1e9:.2f} GB",
                    kind,
                    f"{r['rows']:,}",
                    f"{r['wall']:.1f}",
                    f"{rate:.1f}",
                    f"{size / 1e6 / max(r['cpu'], 1e-9):.1f}",
                    f"{r['rss_mib']:.0f}",
                    f"{ours / rate:.2f}x" if kind != "tracedrop" else "1.00x",
                )
            subprocess.run(["rm", "-rf", str(landing), str(work / f"landing-{gb}-probe")], check=False)
    console.print(table)
    console.print(
        "vs tracedrop = tracedrop's MB/s divided by the exporter's: >1 means tracedrop is faster "
        "(baseline goal >= 10x), <1 means slower (floor goal: tracedrop within 3x, i.e. >= 0.33x)."
    )


if __name__ == "__main__":
    main()
