"""Issue #13: a day larger than the memory it may use still exports, and exports the same rows.

The day is read into bucketed parts and decided one bucket at a time (docs/export.md, "Memory and
shards"); these tests hold that to the in-memory way of deciding a day, the one the rules were written
for, on a synthetic day with every exclusion reason, and run it under a hard memory cap.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from bench.scale import drop_contents
from tracedrop.pipelines.export import day
from tracedrop.pipelines.export.blobs import BlobReader
from tracedrop.pipelines.export.consent import load_opt_outs
from tracedrop.pipelines.export.doubt import names_in
from tracedrop.pipelines.export.ingest import load_ingested, read_day
from tracedrop.pipelines.export.internal_area import RunArea
from tracedrop.pipelines.export.landing_state import days_before
from tracedrop.pipelines.export.parts import all_part_keys
from tracedrop.pipelines.export.ranges import RANGE_BYTES_MIN, open_range, plan_ranges
from tracedrop.pipelines.export.rules import HISTORY_COLUMNS, Doubts, decide, eval_owners, session_history
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.pipelines.export.snapshot import load_snapshot
from tracedrop.pipelines.synth.generate import SynthConfig, generate
from tracedrop.schemas.exclusions import EXCLUSIONS_IN_ORDER
from tracedrop.schemas.landing import EXPERIMENT_REQUESTS, PROMPTS_PREFIX, USAGE
from tracedrop.schemas.partners import load_partner_registry
from tracedrop.schemas.reader import LINEAGE_FILE, LINEAGE_LINE
from tracedrop.storage.objectstore import open_store

DAY = date(2026, 11, 8)
DT = DAY.isoformat()
SALTS = {"TRACEDROP_SALT_ACME": "scale-acme", "TRACEDROP_SALT_BETA": "scale-beta", "TRACEDROP_SALT_GAMMA": "scale-g"}
USAGE_ROWS = 30_000  # about 18 MB of usage JSONL; held whole (one bucket), the working set is about 110 MB
MEMORY_LIMIT_MB = 4
CAP_MB = 32


def synth(root: Path, rows: int) -> str:
    generate(
        open_store(root),
        SynthConfig(days=1, requests_per_day=rows, seed=5, start=DAY, preview_share=0.05, history_days=2),
    )
    return str(root)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """A large day with two days of history, a tiny day to warm up on, and the partners; salts set."""
    root = tmp_path_factory.mktemp("scale")
    registry = yaml.safe_load(Path("pipelines/synth/partners.yaml").read_text())
    for partner in registry["partners"]:
        partner["destination"] = str(root / "drops")
    partners = root / "partners.yaml"
    partners.write_text(yaml.safe_dump(registry))
    with pytest.MonkeyPatch.context() as patch:
        for name, salt in SALTS.items():
            patch.setenv(name, salt)
        yield synth(root / "landing", USAGE_ROWS), synth(root / "warmup", 300), str(partners)


def export_capped(world, memory_limit_mb: int, run_id: str) -> subprocess.CompletedProcess:
    """The day's ingest and decide in a child killed (exit 3) if its resident set grows more than CAP_MB."""
    landing, warmup, partners = world
    command = [sys.executable, "tests/capped_export.py", landing, warmup, partners, DT]
    return subprocess.run(
        [*command, str(memory_limit_mb), str(CAP_MB), run_id],
        env={**os.environ, "POLARS_MAX_THREADS": "1"},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def capped(world) -> dict:
    """The day exported under the cap with ``memory_limit_mb`` set to MEMORY_LIMIT_MB."""
    child = export_capped(world, MEMORY_LIMIT_MB, "capped")
    assert child.returncode == 0, child.stderr[-2000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


def in_memory_decisions(landing: str, partners: str, lookback_days: int) -> pl.DataFrame:
    """The day decided the way the rules were written for: every row of the day and its lookback in memory."""
    store = open_store(landing)
    usage, requests = read_day(store, USAGE, DT), read_day(store, EXPERIMENT_REQUESTS, DT)
    history = [session_history(usage.rows, requests.rows)]
    quarantined = [q.raw for q in usage.quarantined]
    for earlier in days_before(DT, lookback_days):
        before = read_day(store, USAGE, earlier)
        history.append(session_history(before.rows, read_day(store, EXPERIMENT_REQUESTS, earlier).rows))
        quarantined += [q.raw for q in before.quarantined]
    content = [c for c in usage.rows.columns if c not in (LINEAGE_FILE, LINEAGE_LINE)]
    broken = names_in([q.raw for q in usage.quarantined], "id").get_column("usage_id").drop_nulls().to_list()
    copies = (
        usage.rows.with_columns(pl.struct(content).alias("_content"))
        .with_columns(
            ((pl.col("_content").n_unique().over("id") > 1) | pl.col("id").is_in(broken)).alias("conflicting_copy"),
            (pl.int_range(pl.len()).over("id", order_by=[LINEAGE_FILE, LINEAGE_LINE]) > 0).alias("extra_copy"),
        )
        .select(LINEAGE_FILE, LINEAGE_LINE, "conflicting_copy", "extra_copy")
    )
    doubts = Doubts(
        copies=copies,
        quarantined_request_usage_ids=names_in([q.raw for q in requests.quarantined], "usage_id")
        .get_column("usage_id")
        .drop_nulls()
        .to_list(),
        quarantined_sessions=sorted(set(names_in(quarantined, "id").get_column("session_id").drop_nulls().to_list())),
    )
    opt_outs = load_opt_outs(store)
    return decide(
        usage.rows,
        requests.rows,
        load_snapshot(store).versions,
        eval_owners(load_partner_registry(partners)),
        list(opt_outs.users),
        list(opt_outs.machines),
        pl.concat([h.select(HISTORY_COLUMNS) for h in history]),
        BlobReader(store, PROMPTS_PREFIX).existing,
        lookback_days,
        doubts,
    )


def test_a_day_exports_within_a_memory_cap_smaller_than_the_day(capped) -> None:
    assert capped["rows"] >= USAGE_ROWS
    assert capped["buckets"] > 10  # the limit split the day into buckets decided one at a time
    assert capped["growth_mb"] <= CAP_MB


def test_the_cap_is_enforced_the_day_held_in_one_bucket_does_not_fit(world) -> None:
    child = export_capped(world, 2048, "one-bucket")
    assert child.returncode == 3, child.stderr[-2000:]
    assert "exceeded the cap" in child.stderr


def test_decisions_by_bucket_under_the_cap_are_the_in_memory_decisions(world, capped) -> None:
    landing, _, partners = world
    expected = in_memory_decisions(landing, partners, ExportSettings().lookback_days)
    assert set(expected.get_column("reason").to_list()) == {None, *(e.value for e in EXCLUSIONS_IN_ORDER)}
    got = day.load_decisions(open_store(landing), RunArea(DT, "capped"))
    order = [LINEAGE_FILE, LINEAGE_LINE]
    assert_frame_equal(got.sort(order), expected.sort(order))


def test_a_file_cut_into_ranges_reads_every_line_once_with_its_own_number() -> None:
    rng = random.Random(13)
    for _ in range(2000):
        lines = [b"x" * rng.randint(0, 20) for _ in range(rng.randint(0, 12))]
        data = b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")
        cuts = sorted(rng.sample(range(1, len(data)), min(rng.randint(0, 4), len(data) - 1))) if len(data) > 1 else []
        read = []
        for start, end in zip([0, *cuts], [*cuts, None], strict=True):
            stream, before = open_range(io.BytesIO(data), start, end)
            got = stream.read().split(b"\n")
            read += [(before + n, line) for n, line in enumerate(got[:-1] if got[-1] == b"" else got, start=1)]
        whole = data.split(b"\n")
        assert read == list(enumerate(whole[:-1] if whole[-1] == b"" else whole, start=1))


def test_ingest_in_ranges_across_processes_writes_what_one_process_writes(world) -> None:
    landing, _, partners = world
    store = open_store(landing)
    for workers in (1, 2):
        settings = ExportSettings(landing_url=landing, partners_path=partners, workers=workers)
        day.ingest(settings, DT, f"workers-{workers}")
    for record_type in (USAGE, EXPERIMENT_REQUESTS):
        one, two = (load_ingested(store, RunArea(DT, f"workers-{n}"), record_type) for n in (1, 2))
        assert_frame_equal(one, two)
    cut = plan_ranges(store, USAGE, [DT], RANGE_BYTES_MIN, 8)
    assert len(cut) > 1  # the day's large file was validated in ranges


def test_a_day_decided_in_two_shards_publishes_the_drops_of_one(tmp_path, monkeypatch) -> None:
    for name, salt in SALTS.items():
        monkeypatch.setenv(name, salt)
    landing = synth(tmp_path / "landing", 3000)
    registry = yaml.safe_load(Path("pipelines/synth/partners.yaml").read_text())
    drops = {}
    for shards in (1, 2):
        for partner in registry["partners"]:
            partner["destination"] = str(tmp_path / f"drops-{shards}")
        partners = tmp_path / f"partners-{shards}.yaml"
        partners.write_text(yaml.safe_dump(registry))
        settings = ExportSettings(landing_url=landing, partners_path=str(partners), shards=shards)
        steps, outcomes = day.run_all(settings, DT)
        assert all(o.passed for o in outcomes)
        assert steps["decide"]["shards"] == shards
        assert steps["publish"]["rows"] > 0
        drops[shards] = drop_contents(tmp_path / f"drops-{shards}")
    assert [k for k in drops[1] if drops[1][k] != drops[2].get(k)] == []


def test_a_bucket_whose_decisions_are_missing_stops_the_day_before_anything_is_staged_for_publish(
    tmp_path, monkeypatch
) -> None:
    for name, salt in SALTS.items():
        monkeypatch.setenv(name, salt)
    landing = synth(tmp_path / "landing", 1000)
    registry = yaml.safe_load(Path("pipelines/synth/partners.yaml").read_text())
    for partner in registry["partners"]:
        partner["destination"] = str(tmp_path / "drops")
    (tmp_path / "partners.yaml").write_text(yaml.safe_dump(registry))
    settings = ExportSettings(landing_url=landing, partners_path=str(tmp_path / "partners.yaml"), shards=2, workers=1)
    day.ingest(settings, DT, "lost")
    day.decide_day(settings, DT, "lost")
    store, area = open_store(landing), RunArea(DT, "lost")
    store.delete([all_part_keys(store, area.decisions_prefix)[-1]])  # as if one shard's output were lost
    with pytest.raises(RuntimeError, match=r"decisions cover \d+ of the \d+ usage rows ingested"):
        day.stage(settings, DT, "lost")
    with pytest.raises(RuntimeError, match="no staged drops"):
        day.publish(settings, DT, "lost")
    assert not (tmp_path / "drops").exists()
