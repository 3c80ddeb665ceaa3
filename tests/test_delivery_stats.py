"""Per-checkpoint stats against numbers computed here, independently, from synthetic ground truth: a
hot-swap mid-day never mixes checkpoints, slots add up their shown checkpoints, small cells are suppressed,
and nothing row-level (subject, turn or request ids) reaches the JSON or the HTML page."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from tracedrop.pipelines.delivery.stats import STATS_COLUMNS, experiment_stats
from tracedrop.pipelines.delivery.stats_page import render_stats_page
from tracedrop.pipelines.delivery.stats_publish import publish_stats
from tracedrop.pipelines.export.publish import Part, replace_partition
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.schemas.config_errors import ConfigError
from tracedrop.schemas.drop import DROP_SCHEMA
from tracedrop.storage.objectstore import open_store

K = 5
DAY_1 = datetime(2026, 11, 3, tzinfo=UTC)
SWAP = DAY_1 + timedelta(hours=12, minutes=30)  # control's hot-swap: ck-a until here, ck-b from here


@dataclass(frozen=True)
class Checkpoint:
    version: str
    checkpoint: str
    variant_id: str
    label: str


CK_A = Checkpoint("ver-a", "ck-a", "var-control", "control")
CK_B = Checkpoint("ver-b", "ck-b", "var-control", "control")
CK_C = Checkpoint("ver-c", "ck-c", "var-candidate", "candidate")
CK_T = Checkpoint("ver-t", "ck-t", "var-tiny", "tiny")


def served(slot: str, at: datetime) -> Checkpoint:
    return {"control": CK_A if at < SWAP else CK_B, "candidate": CK_C, "tiny": CK_T}[slot]


def ground_truth(seed: int = 11) -> list[dict]:
    """Two days of turns (several requests each) from users and machines, with ratings, errors, nulls."""
    rng = random.Random(seed)
    subjects = {
        "control": [("user", f"u{i}") for i in range(14)] + [("machine", f"m{i}") for i in range(6)],
        "candidate": [("user", f"u{i}") for i in range(100, 112)] + [("machine", f"m{i}") for i in range(100, 103)],
        "tiny": [("user", "u900"), ("machine", "m900")],
    }
    rows, turn = [], 0
    for day in range(2):
        for slot, people in subjects.items():
            for allocation, subject in people:
                for _ in range(rng.randint(1, 3)):
                    turn += 1
                    start = DAY_1 + timedelta(days=day, minutes=rng.randint(0, 24 * 60 - 30))
                    rating = rng.choice(["up", "down", "cleared", None, None])
                    for step in range(rng.randint(1, 4)):
                        at = start + timedelta(seconds=20 * step)
                        ck = served(slot, start)  # a turn is served by the checkpoint in force when it began
                        rows.append(
                            {
                                "variant_id": ck.variant_id,
                                "variant_label": ck.label,
                                "variant_version_id": ck.version,
                                "checkpoint": ck.checkpoint,
                                "turn_id": None if rng.random() < 0.05 else f"turn-{turn}",
                                "subject_hash": f"h-{subject}",
                                "allocation_subject": allocation,
                                "created_at": at,
                                "has_error": rng.random() < 0.1,
                                "latency_ms": None if rng.random() < 0.05 else round(rng.uniform(50, 4000), 1),
                                "input_tokens": rng.randint(10, 5000),
                                "output_tokens": rng.randint(1, 800),
                                "cache_hit_tokens": rng.randint(0, 100),
                                "cache_write_tokens": rng.randint(0, 50),
                                "feedback_rating": rating,
                            }
                        )
    return rows


def as_frame(rows: list[dict]) -> pl.DataFrame:
    schema = DROP_SCHEMA.empty_table().select(list(STATS_COLUMNS))
    return pl.DataFrame(rows, schema=pl.from_arrow(schema).schema)  # type: ignore[union-attr]


def expected(rows: list[dict]) -> dict:
    """The figures of one group, computed directly from its rows."""
    latencies = [r["latency_ms"] for r in rows if r["latency_ms"] is not None]
    turns: dict[str, str | None] = {}
    for r in sorted(rows, key=lambda r: r["created_at"]):
        if r["turn_id"] is not None:
            turns[r["turn_id"]] = r["feedback_rating"]
    rated = [v for v in turns.values() if v in ("up", "down")]
    by_allocation = {}
    for allocation in sorted({r["allocation_subject"] for r in rows}):
        n = len({r["subject_hash"] for r in rows if r["allocation_subject"] == allocation})
        by_allocation[allocation] = n if n >= K else None
    return {
        "requests": len(rows),
        "turns": len(turns),
        "subjects": len({(r["allocation_subject"], r["subject_hash"]) for r in rows}),
        "subjects_by_allocation": by_allocation,
        "error_rate": sum(r["has_error"] for r in rows) / len(rows),
        "latency_p50_ms": float(np.percentile(latencies, 50)),
        "latency_p95_ms": float(np.percentile(latencies, 95)),
        "tokens": {t: sum(r[f"{t}_tokens"] for r in rows) for t in ("input", "output", "cache_hit", "cache_write")},
        "rated_turns": len(rated),
        "thumbs_up_rate": rated.count("up") / len(rated),
        "thumbs_down_rate": rated.count("down") / len(rated),
    }


def assert_figures(group: dict, want: dict) -> None:
    for name, value in want.items():
        if isinstance(value, float):
            assert group[name] == pytest.approx(value), name
        else:
            assert group[name] == value, name


@pytest.fixture(scope="module")
def truth() -> list[dict]:
    return ground_truth()


@pytest.fixture(scope="module")
def document(truth: list[dict]) -> dict:
    return experiment_stats(as_frame(truth), K)


def test_each_checkpoint_has_its_own_figures_across_a_hot_swap(truth: list[dict], document: dict) -> None:
    groups = {g["variant_version_id"]: g for g in document["by_checkpoint"]}
    assert set(groups) == {"ver-a", "ver-b", "ver-c", "ver-t"}
    for ck in (CK_A, CK_B, CK_C):
        group = groups[ck.version]
        assert (group["checkpoint"], group["variant_label"], group["suppressed"]) == (ck.checkpoint, ck.label, False)
        assert_figures(group, expected([r for r in truth if r["variant_version_id"] == ck.version]))
    control_a = [r for r in truth if r["variant_version_id"] == "ver-a"]
    assert max(r["created_at"] for r in control_a) < SWAP + timedelta(minutes=2)  # the swap really splits the day
    assert any(r["created_at"].date() == SWAP.date() for r in truth if r["variant_version_id"] == "ver-b")


def test_a_machine_count_below_k_is_withheld_inside_a_shown_group(document: dict) -> None:
    candidate = next(g for g in document["by_checkpoint"] if g["variant_version_id"] == "ver-c")
    assert candidate["subjects_by_allocation"] == {"machine": None, "user": 12}


def test_a_checkpoint_with_fewer_than_k_subjects_is_suppressed(document: dict) -> None:
    tiny = next(g for g in document["by_checkpoint"] if g["variant_version_id"] == "ver-t")
    assert tiny["suppressed"] is True
    assert all(tiny[m] is None for m in ("requests", "turns", "subjects", "error_rate", "latency_p50_ms", "tokens"))
    assert "tiny" not in {g["variant_label"] for g in document["by_variant"]}  # its slot has nothing else to show
    [timeline] = [t for t in document["timeline"] if t["variant_version_id"] == "ver-t"]
    assert timeline["first_hour"] is None and timeline["last_hour"] is None


def test_slots_are_computed_over_their_shown_checkpoints(truth: list[dict], document: dict) -> None:
    slots = {g["variant_label"]: g for g in document["by_variant"]}
    assert_figures(slots["control"], expected([r for r in truth if r["variant_label"] == "control"]))
    assert_figures(slots["candidate"], expected([r for r in truth if r["variant_label"] == "candidate"]))
    by_version = {g["variant_version_id"]: g for g in document["by_checkpoint"]}
    assert slots["control"]["requests"] == by_version["ver-a"]["requests"] + by_version["ver-b"]["requests"]


def test_the_timeline_shows_when_each_checkpoint_served(truth: list[dict], document: dict) -> None:
    timeline = {t["variant_version_id"]: t for t in document["timeline"]}
    for version in ("ver-a", "ver-b", "ver-c"):
        times = [r["created_at"] for r in truth if r["variant_version_id"] == version]
        first = min(times).replace(minute=0, second=0, microsecond=0)
        last = max(times).replace(minute=0, second=0, microsecond=0)
        assert timeline[version]["first_hour"] == first.isoformat().replace("+00:00", "Z")
        assert timeline[version]["last_hour"] == last.isoformat().replace("+00:00", "Z")
        assert timeline[version]["days"] == sorted({t.date().isoformat() for t in times})
    assert timeline["ver-a"]["last_hour"] <= timeline["ver-b"]["first_hour"]  # ck-b took over control's slot
    assert document["days"] == ["2026-11-03", "2026-11-04"]


def test_no_row_level_value_reaches_the_json_or_the_page(truth: list[dict], document: dict) -> None:
    page = render_stats_page({**document, "partner_id": "acme", "experiment_id": "e-1", "generated_at": "now"})
    text = json.dumps(document) + page
    leaked = {r["subject_hash"] for r in truth} | {r["turn_id"] for r in truth if r["turn_id"]}
    assert not [value for value in leaked if f'"{value}"' in text or f">{value}<" in text]
    assert "<script" not in page and "http" not in page.replace('lang="en"', "")
    assert "ck-b" in page and "suppressed" in page


def test_k_comes_from_the_environment_and_must_be_a_positive_whole_number() -> None:
    assert ExportSettings.from_env({}).stats_min_subjects == 5
    assert ExportSettings.from_env({"TRACEDROP_STATS_MIN_SUBJECTS": "10"}).stats_min_subjects == 10
    for bad in ("0", "-2", "five"):
        with pytest.raises(ConfigError, match="TRACEDROP_STATS_MIN_SUBJECTS"):
            ExportSettings.from_env({"TRACEDROP_STATS_MIN_SUBJECTS": bad})


def test_an_experiment_with_no_rows_has_empty_stats() -> None:
    empty = experiment_stats(as_frame([]), K)
    assert (empty["by_checkpoint"], empty["by_variant"], empty["timeline"], empty["days"]) == ([], [], [], [])


def test_published_stats_match_the_rows_and_unchanged_partitions_are_read_from_the_cache(tmp_path, truth) -> None:
    drops, cache = open_store(tmp_path / "drops"), open_store(tmp_path / "landing")
    experiment_url = drops.child("partner=acme/experiment=e-1").url
    for day in ("2026-11-03", "2026-11-04"):
        rows = as_frame([r for r in truth if r["created_at"].date().isoformat() == day])
        target = drops.child(f"partner=acme/experiment=e-1/dt={day}")
        part = Part("part-00000.parquet", parquet_bytes(rows), rows.height)
        replace_partition(target, "acme", "e-1", [part], {"dt": day})
    publish_stats(cache, experiment_url, "acme", "e-1", K)
    first = json.loads(drops.get("partner=acme/experiment=e-1/_stats/stats.json"))
    assert first["by_checkpoint"] == experiment_stats(as_frame(truth), K)["by_checkpoint"]
    assert "<table>" in drops.get("partner=acme/experiment=e-1/_stats/index.html").decode()
    # bytes of an unchanged partition are not read again: the cache (keyed by manifest content) answers
    drops.put("partner=acme/experiment=e-1/dt=2026-11-03/part-00000.parquet", b"not parquet")
    publish_stats(cache, experiment_url, "acme", "e-1", K)
    again = json.loads(drops.get("partner=acme/experiment=e-1/_stats/stats.json"))
    assert again["by_checkpoint"] == first["by_checkpoint"]
    # a re-published partition (new manifest content) is read again
    only_control = as_frame([r for r in truth if r["created_at"].date().isoformat() == "2026-11-03"])
    only_control = only_control.filter(pl.col("variant_label") == "control")
    part = Part("part-00000.parquet", parquet_bytes(only_control), only_control.height)
    replace_partition(
        drops.child("partner=acme/experiment=e-1/dt=2026-11-03"), "acme", "e-1", [part], {"dt": "2026-11-03"}
    )
    publish_stats(cache, experiment_url, "acme", "e-1", K)
    latest = json.loads(drops.get("partner=acme/experiment=e-1/_stats/stats.json"))
    day_2 = [r for r in truth if r["created_at"].date().isoformat() == "2026-11-04"]
    want = sum(1 for r in day_2 if r["variant_version_id"] == "ver-c")
    assert next(g for g in latest["by_checkpoint"] if g["variant_version_id"] == "ver-c")["requests"] == want


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(frame.to_arrow(), buffer)
    return buffer.getvalue()
