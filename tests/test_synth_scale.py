"""``tracedrop synth --preview-share``: production-heavy days whose bulk production rows are valid landing
lines, never exportable, and leave the ground truth exact (the export's decisions match it row by row)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml

from tracedrop.pipelines.export import day
from tracedrop.pipelines.export.internal_area import RunArea
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.pipelines.landing import landing_days, read_record_type, validate_landing
from tracedrop.pipelines.synth.cli import synth_command
from tracedrop.pipelines.synth.clock import day_start_us
from tracedrop.pipelines.synth.generate import SynthConfig, generate
from tracedrop.pipelines.synth.population import build_population
from tracedrop.pipelines.synth.production import people_frame, production_day
from tracedrop.pipelines.synth.scenario import PARTNERS_YAML, PRODUCTION_MODELS
from tracedrop.schemas.exclusions import Exclusion
from tracedrop.schemas.fields import UUID_RE
from tracedrop.schemas.landing import EXPERIMENT_REQUESTS, USAGE
from tracedrop.storage.objectstore import ObjectStore, open_store

DT = "2026-11-03"
CONFIG = SynthConfig(
    days=1, requests_per_day=20_000, seed=5, start=date.fromisoformat(DT), preview_share=0.03, history_days=2
)


def jsonl(store: ObjectStore, directory: str, name_start: str = "") -> list[dict[str, Any]]:
    """The lines of every object in ``directory`` whose name starts with ``name_start``."""
    keys = [i.key for i in store.list(directory) if i.key.rsplit("/", 1)[1].startswith(name_start)]
    return [orjson.loads(line) for key in keys for line in store.get(key).splitlines()]


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> tuple[ObjectStore, dict[str, Any]]:
    store = open_store(tmp_path_factory.mktemp("scale") / "landing")
    return store, generate(store, CONFIG)


@pytest.fixture(scope="module")
def usage(zone: tuple[ObjectStore, dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for batch in read_record_type(zone[0], USAGE, DT) for row in batch.rows.to_pylist()]


def test_the_day_holds_the_requested_rows_with_the_requested_preview_share(zone, usage) -> None:
    store, summary = zone
    preview = sum(batch.rows.num_rows for batch in read_record_type(store, EXPERIMENT_REQUESTS, DT))
    assert CONFIG.requests_per_day <= len(usage) <= CONFIG.requests_per_day * 1.002  # + repeated deliveries
    assert summary["rows"]["usage"][DT] == len(usage)
    assert preview / len(usage) == pytest.approx(CONFIG.preview_share, rel=0.1)
    assert {info.key.rsplit("/", 1)[1] for info in store.list(f"usage/dt={DT}")} >= {"production-00000.jsonl"}


def test_history_days_come_before_the_day_with_sessions_only(zone) -> None:
    store, summary = zone
    assert landing_days(store, USAGE) == ["2026-11-01", "2026-11-02", DT]
    for history in ("2026-11-01", "2026-11-02"):
        assert not [i for i in store.list(f"usage/dt={history}") if "production" in i.key]
        assert summary["rows"]["usage"][history] < summary["rows"]["usage"][DT] / 5


def test_history_days_store_no_blob_and_their_truth_says_every_prompt_is_lost(zone) -> None:
    store, _ = zone
    history = "2026-11-01"
    requests = [r for b in read_record_type(store, EXPERIMENT_REQUESTS, history) for r in b.rows.to_pylist()]
    assert requests and not any(store.exists(f"prompts/{r['request_body_sha256']}") for r in requests)
    truth = jsonl(store, f"_synth/truth/dt={history}")
    assert {t["fate"] for t in truth} == {"excluded"}
    assert Counter(t["reason"] for t in truth)[Exclusion.PROMPT_UNAVAILABLE.value] > 0
    assert not list(store.list(f"_synth/planted/dt={history}"))


def test_bulk_production_rows_are_valid_lines_of_production_models(zone, usage) -> None:
    store, summary = zone
    report = validate_landing(store)
    assert report.quarantined[(USAGE.name, DT)] == summary["malformed"][USAGE.name][DT]  # only the planted ones
    bulk = jsonl(store, f"usage/dt={DT}", "production-")
    assert len({r["id"] for r in bulk}) == len(bulk) and all(UUID_RE.match(r["id"]) for r in bulk)
    assert list(bulk[0]) == USAGE.column_names
    assert {r["requested_model"] for r in bulk} == {m.public_id for m in PRODUCTION_MODELS}
    assert {r["created_at"][:10] for r in bulk} == {DT}
    assert all(r["response_body_sha256"] is None and r["provider"] != "experiment" for r in bulk)
    turns = Counter(r["session_id"] for r in bulk if r["session_id"])
    assert max(turns.values()) > 1 and 0.9 < sum(turns.values()) / len(bulk) < 1


def test_truth_has_a_line_per_usage_line_and_bulk_rows_fail_rule_1(zone, usage) -> None:
    store, summary = zone
    truth = jsonl(store, f"_synth/truth/dt={DT}")
    assert Counter(t["usage_id"] for t in truth) == Counter(r["id"] for r in usage)
    bulk_ids = {r["id"] for r in jsonl(store, f"usage/dt={DT}", "production-")}
    bulk_truth = [t for t in truth if t["usage_id"] in bulk_ids]
    assert {t["reason"] for t in bulk_truth} == {Exclusion.NOT_ONE_EXPERIMENT_REQUEST.value}
    assert list(bulk_truth[0]) == list(truth[0])  # spelled as the session builder's truth
    excluded = Counter(t["reason"] for t in truth if t["fate"] == "excluded")
    assert excluded == {reason: days[DT] for reason, days in summary["expected"]["excluded"].items() if DT in days}


def test_the_export_decides_every_usage_row_as_the_ground_truth_says(zone, tmp_path: Path) -> None:
    store, _ = zone
    registry = yaml.safe_load(PARTNERS_YAML.read_text())
    with pytest.MonkeyPatch.context() as patch:
        for partner in registry["partners"]:
            partner["destination"] = str(tmp_path / "drops")
            patch.setenv(partner["subject_salt_env"], f"{partner['id']}-scale-salt")
        partners = tmp_path / "partners.yaml"
        partners.write_text(yaml.safe_dump(registry))
        settings = ExportSettings(landing_url=store.url, partners_path=str(partners))
        day.ingest(settings, DT, "scale")
        day.decide_day(settings, DT, "scale")
    decisions = day.load_decisions(store, RunArea(DT, "scale")).to_dicts()
    truth = jsonl(store, f"_synth/truth/dt={DT}")
    assert Counter((r["id"], r["reason"]) for r in decisions) == Counter((t["usage_id"], t["reason"]) for t in truth)


def test_bulk_rows_come_in_chunks_and_repeat_with_the_seed() -> None:
    people = people_frame(build_population(random.Random(1), 50))
    start = day_start_us(date.fromisoformat(DT))
    chunks = list(production_day(3, DT, 20_000, start, people, chunk_rows=7_000))
    assert [c.height for c in chunks] == [7_000, 7_000, 6_000]
    again = list(production_day(3, DT, 20_000, start, people, chunk_rows=7_000))
    assert all(a.equals(b) for a, b in zip(chunks, again, strict=True))
    other = next(production_day(4, DT, 7_000, start, people))
    assert not np.array_equal(other["id"].to_numpy(), chunks[0]["id"].to_numpy())


@pytest.mark.parametrize("share", ["0", "-0.1", "1.5"])
def test_a_preview_share_outside_0_to_1_is_one_line_exit_2_and_nothing_written(
    share: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "z"
    assert synth_command(str(out), 1, 100, 1, None, False, preview_share=float(share)) == 2
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1 and "--preview-share must be more than 0 and at most 1" in printed
    assert not out.exists()


def test_gzipped_bulk_objects_validate_like_plain_ones(tmp_path: Path) -> None:
    store = open_store(tmp_path / "gz")
    summary = generate(store, SynthConfig(days=1, requests_per_day=3_000, seed=2, preview_share=0.05, gzip=True))
    report = validate_landing(store)
    (dt,) = summary["rows"]["usage"]
    assert report.rows[(USAGE.name, dt)] == summary["rows"]["usage"][dt] >= 3_000
    assert any(i.key.endswith("production-00000.jsonl.gz") for i in store.list(f"usage/dt={dt}"))
