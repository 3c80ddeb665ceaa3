"""``tracedrop synth``: a deterministic landing zone that exercises every export rule, with its truth."""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from tracedrop.pipelines.landing import read_record_type, validate_landing
from tracedrop.pipelines.synth.cli import synth_command
from tracedrop.pipelines.synth.generate import SUMMARY_KEY, SynthConfig, SynthError, generate
from tracedrop.pipelines.synth.ids import Ids
from tracedrop.pipelines.synth.plants import ALL_FACTORIES, SECRET
from tracedrop.pipelines.synth.scenario import PARTNERS_YAML, build_scenario
from tracedrop.replay.proxy.demo_traffic import DEMO_CONFIG
from tracedrop.schemas.bucketing import allocation_subject, choose_variant, version_in_force
from tracedrop.schemas.exclusions import Exclusion
from tracedrop.schemas.fields import parse_timestamp
from tracedrop.schemas.landing import (
    BLOB_CAP_BYTES,
    EXPERIMENT_REQUESTS,
    FEEDBACK,
    OPT_OUTS,
    PROMPT_DELETED,
    PROMPT_FAILED,
    PROMPTS_PREFIX,
    RESPONSES_PREFIX,
    USAGE,
    RecordType,
)
from tracedrop.schemas.partners import load_partner_registry
from tracedrop.schemas.proxy_config import load_proxy_config
from tracedrop.storage.objectstore import ObjectStore, open_store

SMALL = SynthConfig(days=2, requests_per_day=400, seed=11)


def digests(store: ObjectStore) -> dict[str, str]:
    """Every object of a store: key → sha256 of its bytes."""
    return {info.key: hashlib.sha256(store.get(info.key)).hexdigest() for info in store.list()}


def rows(store: ObjectStore, record_type: RecordType) -> list[dict[str, Any]]:
    """The well-formed rows of a record type (all days) as dicts."""
    out = []
    for batch in read_record_type(store, record_type):
        out.extend(batch.rows.to_pylist())
    return out


def jsonl(store: ObjectStore, prefix: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for info in store.list(prefix) for line in store.get(info.key).splitlines()]


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> tuple[ObjectStore, dict[str, Any]]:
    store = open_store(tmp_path_factory.mktemp("synth") / "landing")
    return store, generate(store, SMALL)


@pytest.fixture(scope="module")
def truth(zone: tuple[ObjectStore, dict[str, Any]]) -> list[dict[str, Any]]:
    return jsonl(zone[0], "_synth/truth")


@pytest.fixture(scope="module")
def requests_by_usage(zone: tuple[ObjectStore, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_usage = defaultdict(list)
    for row in rows(zone[0], EXPERIMENT_REQUESTS):
        by_usage[row["usage_id"]].append(row)
    return by_usage


def test_same_seed_writes_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    config = SynthConfig(days=1, requests_per_day=120, seed=3)
    first, second, other = (open_store(tmp_path / name) for name in ("a", "b", "c"))
    generate(first, config)
    generate(second, config)
    generate(other, SynthConfig(days=1, requests_per_day=120, seed=4))
    assert digests(first) == digests(second)
    assert digests(first) != digests(other)


def test_output_validates_with_exactly_the_expected_rows_and_quarantine(zone: tuple[ObjectStore, dict]) -> None:
    store, summary = zone
    report = validate_landing(store)
    for table in (USAGE, EXPERIMENT_REQUESTS, FEEDBACK):
        for dt, count in summary["rows"][table.name].items():
            assert report.rows[(table.name, dt)] == count
            assert report.quarantined[(table.name, dt)] == summary["malformed"][table.name][dt] >= 1
    assert report.total_quarantined == sum(
        n for days in summary["expected"]["quarantined"].values() for n in days.values()
    )
    assert report.notices == []  # the snapshot never carries a key


def test_truth_has_one_line_per_usage_line_and_matches_the_summary(zone: tuple[ObjectStore, dict], truth: list) -> None:
    store, summary = zone
    usage_ids = Counter(r["id"] for r in rows(store, USAGE))
    assert Counter(t["usage_id"] for t in truth) == usage_ids
    assert set(usage_ids.values()) == {1, 2}  # a few usage lines are delivered twice
    doubled = {t["reason"] for t in truth if usage_ids[t["usage_id"]] == 2}
    assert {"duplicate_delivery", "conflicting_duplicate"} <= doubled
    exported = Counter(t["partner_id"] for t in truth if t["fate"] == "exported")
    assert exported == {p: sum(days.values()) for p, days in summary["expected"]["exported"].items()}
    excluded = Counter(t["reason"] for t in truth if t["fate"] == "excluded")
    assert excluded == {r: sum(days.values()) for r, days in summary["expected"]["excluded"].items()}


def test_every_exclusion_reason_and_every_partner_appears(truth: list) -> None:
    assert {t["reason"] for t in truth if t["reason"]} == {e.value for e in Exclusion}
    assert {t["partner_id"] for t in truth if t["fate"] == "exported"} == {"acme", "beta"}
    registry = load_partner_registry(PARTNERS_YAML)
    assert {t["partner_id"] for t in truth} - {None} == {p.id for p in registry.partners}
    gamma = [t for t in truth if t["partner_id"] == "gamma"]
    assert gamma and {t["reason"] for t in gamma} == {Exclusion.NOT_PARTNER_EXPERIMENT.value}


def test_production_traffic_is_the_large_majority(zone: tuple[ObjectStore, dict]) -> None:
    usage = rows(zone[0], USAGE)
    production = [r for r in usage if r["provider"] != "experiment"]
    assert 0.75 <= len(production) / len(usage) <= 0.92


def test_variants_and_versions_are_assigned_as_the_gateway_does(
    zone: tuple[ObjectStore, dict], requests_by_usage
) -> None:
    store, summary = zone
    scenario = build_scenario(parse_timestamp(summary["window"]["start"]), SMALL.days)
    index = scenario.version_index
    usage = {r["id"]: r for r in rows(store, USAGE)}
    checked, versions_seen = 0, set()
    for usage_id, requests in requests_by_usage.items():
        request, row = requests[0], usage[usage_id]
        if request["variant_version_id"] not in index:
            continue  # the planted version id that resolves to nothing
        variant, experiment = index[request["variant_version_id"]]
        user = None if row["kilo_user_id"].startswith("anon:") else row["kilo_user_id"]
        subject = allocation_subject(user, row["machine_id"], row["client_ip"])
        assert subject is not None and subject[0] == request["allocation_subject"]
        assert choose_variant(experiment.id, subject[0], subject[1], experiment.variants) == variant
        assert version_in_force(variant.versions, row["created_at"]).id == request["variant_version_id"]
        versions_seen.add(request["variant_version_id"])
        checked += 1
    assert checked > 50
    candidate = next(
        v for v in scenario.experiments["3f1c2a9e-8b7d-4c6e-9a1b-2d3e4f5a6b7c"].variants if len(v.versions) == 2
    )
    assert {v.id for v in candidate.versions} <= versions_seen  # the hot-swap is visible in the traffic
    assert {r["allocation_subject"] for rs in requests_by_usage.values() for r in rs} == {"user", "machine", "ip"}


def test_sessions_are_turns_of_steps_whose_bodies_grow(zone: tuple[ObjectStore, dict], requests_by_usage) -> None:
    store = zone[0]
    by_turn = defaultdict(list)
    for requests in requests_by_usage.values():
        request = requests[0]
        if len(request["request_body_sha256"]) == 64 and store.exists(
            f"{PROMPTS_PREFIX}/{request['request_body_sha256']}"
        ):
            by_turn[request["client_request_id"]].append(request)
    multi = [steps for steps in by_turn.values() if len(steps) >= 3]
    assert multi
    for steps in multi[:5]:
        steps.sort(key=lambda r: r["created_at"])
        counts = [
            len(orjson.loads(store.get(f"{PROMPTS_PREFIX}/{s['request_body_sha256']}"))["messages"]) for s in steps
        ]
        assert counts == sorted(counts) and counts[-1] > counts[0]


def test_prompt_bodies_are_coding_agent_chat_completions(zone: tuple[ObjectStore, dict], requests_by_usage) -> None:
    store = zone[0]
    roles, tool_calls = Counter(), 0
    for info in store.list(PROMPTS_PREFIX):
        data = store.get(info.key)
        assert info.key == f"{PROMPTS_PREFIX}/{hashlib.sha256(data).hexdigest()}"
        if len(data) >= BLOB_CAP_BYTES - 4:
            continue  # the truncated body is not JSON any more
        body = orjson.loads(data)
        assert body["tools"] and body["messages"][0]["role"] == "system"
        assert 6_000 <= len(body["messages"][0]["content"].encode()) <= 10_000
        for message in body["messages"]:
            roles[message["role"]] += 1
            for call in message.get("tool_calls") or []:
                assert call["id"].startswith("call_") and isinstance(orjson.loads(call["function"]["arguments"]), dict)
                tool_calls += 1
    assert set(roles) == {"system", "user", "assistant", "tool"} and tool_calls > 0
    for info in list(store.list(RESPONSES_PREFIX))[:50]:
        response = orjson.loads(store.get(info.key))
        assert response["object"] == "chat.completion" and response["usage"]["total_tokens"] > 0
        assert response["choices"][0]["message"]["role"] == "assistant"


def test_shared_system_prompt_bodies_are_stored_once(zone: tuple[ObjectStore, dict], requests_by_usage) -> None:
    store, summary = zone
    references = Counter(rs[0]["request_body_sha256"] for rs in requests_by_usage.values())
    shared = [sha for sha, n in references.items() if n >= 2 and len(sha) == 64]
    assert shared and summary["blobs"]["prompts"]["deduplicated"] >= 2
    assert len(list(store.list(PROMPTS_PREFIX))) == summary["blobs"]["prompts"]["written"]


def test_the_truncated_body_is_capped_at_a_code_point_boundary(
    zone: tuple[ObjectStore, dict], requests_by_usage
) -> None:
    store = zone[0]
    truncated = [rs[0] for rs in requests_by_usage.values() if rs[0]["was_truncated"]]
    assert len(truncated) == 1
    data = store.get(f"{PROMPTS_PREFIX}/{truncated[0]['request_body_sha256']}")
    assert BLOB_CAP_BYTES - 3 <= len(data) < BLOB_CAP_BYTES  # the cap fell inside a multi-byte character
    data.decode("utf-8")


def test_prompt_sentinels_and_a_missing_blob_are_unavailable(zone, requests_by_usage, truth) -> None:
    store = zone[0]
    fate = {t["usage_id"]: t["reason"] for t in truth}
    hashes = {u: rs[0]["request_body_sha256"] for u, rs in requests_by_usage.items() if len(rs) == 1}
    sentinel = {u for u, h in hashes.items() if h in (PROMPT_FAILED, PROMPT_DELETED)}
    missing = {u for u, h in hashes.items() if len(h) == 64 and not store.exists(f"{PROMPTS_PREFIX}/{h}")}
    assert {hashes[u] for u in sentinel} == {PROMPT_FAILED, PROMPT_DELETED} and missing
    unavailable = {u for u in sentinel | missing if fate[u] != Exclusion.PROMPT_UNAVAILABLE.value}
    earlier = list(Exclusion)[: list(Exclusion).index(Exclusion.PROMPT_UNAVAILABLE)]
    assert all(fate[u] in {e.value for e in earlier} for u in unavailable)  # an earlier rule failed


def test_planted_values_are_in_the_bodies_they_are_recorded_for(zone: tuple[ObjectStore, dict]) -> None:
    store = zone[0]
    planted = jsonl(store, "_synth/planted")
    every_kind = {item.kind for factory in ALL_FACTORIES for item in factory(Ids(random.Random(0))).items}
    assert {p["kind"] for p in planted} == every_kind
    assert {p["kind"] for p in planted if p["category"] == SECRET} >= {"aws_secret_access_key", "private_key_truncated"}
    bodies: dict[str, bytes] = {}
    for plant in planted:
        sha = plant["request_body_sha256"]
        body = bodies.setdefault(sha, store.get(f"{PROMPTS_PREFIX}/{sha}"))
        assert orjson.dumps(plant["value"])[1:-1] in body  # as the JSON text carries it
    with_secrets = {p["request_body_sha256"] for p in planted if p["category"] == SECRET}
    assert 0.03 <= len(with_secrets) / len(list(store.list(PROMPTS_PREFIX))) <= 0.5


def test_opt_outs_cover_requests_before_and_after_they_were_recorded(zone, truth) -> None:
    store = zone[0]
    opt_outs = rows(store, OPT_OUTS)
    assert {o["subject"] for o in opt_outs} == {"user", "machine"}
    reasons = {t["usage_id"]: t["reason"] for t in truth}
    for opt_out in opt_outs:
        column = "kilo_user_id" if opt_out["subject"] == "user" else "machine_id"
        theirs = [r for r in rows(store, USAGE) if r[column] == opt_out["value"]]
        assert min(r["created_at"] for r in theirs) < opt_out["recorded_at"] < max(r["created_at"] for r in theirs)
        assert {reasons[r["id"]] for r in theirs} == {Exclusion.CONSENT_WITHDRAWN.value}


def test_feedback_follows_its_turn_and_the_latest_event_wins(zone, truth, requests_by_usage) -> None:
    store = zone[0]
    events = defaultdict(list)
    for event in rows(store, FEEDBACK):
        events[event["parent_message_id"]].append(event)
    assert any(len(e) >= 2 for e in events.values())
    turn_of = {u: rs[0]["client_request_id"] for u, rs in requests_by_usage.items()}
    created = {t["usage_id"]: parse_timestamp(t["created_at"]) for t in truth}
    rated = 0
    for t in (t for t in truth if t["usage_id"] in turn_of):  # the landing links a turn to experiment rows
        turn_events = events.get(turn_of[t["usage_id"]], [])
        if not turn_events:
            assert t["feedback_rating"] is None
            continue
        latest = max(turn_events, key=lambda e: e["timestamp"])["rating"]
        assert t["feedback_rating"] == (None if latest == "cleared" else latest)
        assert min(e["timestamp"] for e in turn_events) > created[t["usage_id"]]
        rated += 1
    assert rated > 0


def test_files_roll_and_gzip_still_validate(tmp_path: Path) -> None:
    store = open_store(tmp_path / "landing")
    summary = generate(store, SynthConfig(days=1, requests_per_day=300, seed=5, gzip=True, roll_bytes=20_000))
    usage_files = [i.key for i in store.list("usage")]
    assert len(usage_files) > 1 and all(k.endswith(".jsonl.gz") for k in usage_files)
    report = validate_landing(store)
    assert report.rows[(USAGE.name, "2026-11-01")] == summary["rows"]["usage"]["2026-11-01"]
    assert report.quarantined[(USAGE.name, "2026-11-01")] == summary["malformed"]["usage"]["2026-11-01"]


def test_refuses_a_foreign_location_but_replaces_an_earlier_run(tmp_path: Path) -> None:
    foreign = open_store(tmp_path / "foreign")
    foreign.put("usage/dt=2026-11-01/real.jsonl", b"{}\n")
    with pytest.raises(SynthError, match="not empty"):
        generate(foreign, SynthConfig(days=1, requests_per_day=50))
    store = open_store(tmp_path / "again")
    generate(store, SynthConfig(days=2, requests_per_day=60, seed=1))
    generate(store, SynthConfig(days=1, requests_per_day=60, seed=2))
    assert {i.key.split("/")[1] for i in store.list("usage")} == {"dt=2026-11-01"}


def test_synth_command_reports_and_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert synth_command(str(tmp_path / "z"), 1, 80, 1, "2027-02-03", False) == 0
    assert "Expected fates" in capsys.readouterr().out
    assert open_store(tmp_path / "z").exists(SUMMARY_KEY)
    assert any(i.key.startswith("usage/dt=2027-02-03/") for i in open_store(tmp_path / "z").list("usage"))
    assert synth_command(str(tmp_path / "y"), 1, 80, 1, "03/02/2027", False) == 2


def test_demo_registry_owns_the_scenario_experiments_and_the_proxy_demo_s() -> None:
    registry = load_partner_registry(PARTNERS_YAML)
    scenario = build_scenario(parse_timestamp("2026-11-01T00:00:00Z"), 1)
    proxy_demo = {str(e.id) for e in load_proxy_config(DEMO_CONFIG).experiments}
    assert not proxy_demo & set(scenario.experiments)  # the proxy demo's traffic never mixes with synth's
    assert {e for p in registry.partners for e in p.experiment_ids} == set(scenario.experiments) | proxy_demo
    assert len(registry.partners) >= 2 and [p.id for p in registry.partners if not p.eval_program] == ["gamma"]
    assert all(p.subject_salt_env.startswith("TRACEDROP_SALT_") for p in registry.partners)
    statuses = Counter(e.status for e in scenario.experiments.values())
    assert statuses["paused"] == statuses["completed"] == statuses["draft"] == 1
    assert all(2 <= len(e.variants) <= 3 for e in scenario.experiments.values() if e.status != "draft")
