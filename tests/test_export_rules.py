"""The seven export rules of CONTRACT.md §3, one case at a time, through the real ingest and decide steps."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.landing_builder import (
    ACME_V1,
    ACME_V2,
    BETA_V1,
    DRAFT_V1,
    DT,
    NOON,
    LandingBuilder,
    partners_yaml,
)
from tracedrop.pipelines.export import day
from tracedrop.pipelines.export.ingest import load_quarantined_raw
from tracedrop.pipelines.export.internal_area import RunArea
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.schemas.exclusions import Exclusion
from tracedrop.storage.landing_writer import timestamp
from tracedrop.storage.objectstore import open_store

RUN = "run-1"


@pytest.fixture(autouse=True)
def salts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEDROP_SALT_ACME", "acme-salt")
    monkeypatch.setenv("TRACEDROP_SALT_BETA", "beta-salt")


@pytest.fixture
def landing(tmp_path) -> LandingBuilder:
    return LandingBuilder.with_default_experiments()


def decide(builder: LandingBuilder, tmp_path, beta_eval: bool = True) -> dict[str, tuple[str | None, str | None]]:
    """usage id → (partner exported to, exclusion reason) for the day DT."""
    store = open_store(tmp_path / "landing")
    builder.write(store)
    registry = tmp_path / "partners.yaml"
    registry.write_text(partners_yaml(str(tmp_path / "drops"), beta_eval=beta_eval))
    settings = ExportSettings(landing_url=str(tmp_path / "landing"), partners_path=str(registry))
    day.ingest(settings, DT, RUN)
    day.decide_day(settings, DT, RUN)
    decisions = day.load_decisions(store, RunArea(DT, RUN))
    return {row["id"]: (row["partner_id"], row["reason"]) for row in decisions.iter_rows(named=True)}


def test_preview_traffic_of_a_partner_experiment_is_exported_to_that_partner(landing, tmp_path) -> None:
    acme = landing.request(NOON, version=ACME_V1)
    acme_candidate = landing.request(NOON, version=ACME_V2, user="user-2")
    beta = landing.request(NOON, model="preview/beta-chat", version=BETA_V1)
    decided = decide(landing, tmp_path)
    assert decided[acme] == ("acme", None)
    assert decided[acme_candidate] == ("acme", None)
    assert decided[beta] == ("beta", None)


def test_rule_1_production_traffic_without_an_experiment_request_is_never_exported(landing, tmp_path) -> None:
    production = landing.request(NOON, model="gpt-5", version=None)
    preview_but_unlogged = landing.request(NOON, version=None)
    duplicated = landing.request(NOON, version=ACME_V1, request_rows=2)
    decided = decide(landing, tmp_path)
    for usage_id in (production, preview_but_unlogged, duplicated):
        assert decided[usage_id] == (None, Exclusion.NOT_ONE_EXPERIMENT_REQUEST)


def test_rule_1_an_experiment_request_must_share_the_usage_rows_created_at(landing, tmp_path) -> None:
    usage_id = landing.request(NOON, version=ACME_V1)
    key = f"experiment_requests/dt={DT}/part-0.jsonl"
    landing.lines[key] = [line.replace(timestamp(NOON), "2026-11-03T12:00:01Z") for line in landing.lines[key]]
    assert decide(landing, tmp_path)[usage_id] == (None, Exclusion.NOT_ONE_EXPERIMENT_REQUEST)


def test_rule_2_only_experiments_owned_by_an_eval_program_partner_are_exported(landing, tmp_path) -> None:
    beta = landing.request(NOON, model="preview/beta-chat", version=BETA_V1)
    unknown_version = landing.request(NOON, version="0f000000-0000-4000-8000-0000000000ff")
    decided = decide(landing, tmp_path, beta_eval=False)
    assert decided[beta] == (None, Exclusion.NOT_PARTNER_EXPERIMENT)
    assert decided[unknown_version] == (None, Exclusion.NOT_PARTNER_EXPERIMENT)


def test_rule_3_the_requested_model_must_be_the_experiments_public_id_in_any_case(landing, tmp_path) -> None:
    other_case = landing.request(NOON, model="Preview/ACME-Coder", version=ACME_V1)
    mismatched = landing.request(NOON, model="preview/beta-chat", version=ACME_V1)
    decided = decide(landing, tmp_path)
    assert decided[other_case] == ("acme", None)
    assert decided[mismatched] == (None, Exclusion.MODEL_MISMATCH)


def test_rule_4_the_experiment_must_have_been_routing_at_the_time(landing, tmp_path) -> None:
    landing.experiments[0]["started_at"] = "2026-11-03T12:00:00Z"
    landing.experiments[0]["ended_at"] = "2026-11-03T18:00:00Z"
    before = landing.request(NOON - timedelta(seconds=1), version=ACME_V1)
    at_start = landing.request(NOON, version=ACME_V1)
    at_end = landing.request(NOON + timedelta(hours=6), version=ACME_V1)
    draft = landing.request(NOON, model="preview/draft-model", version=DRAFT_V1)
    decided = decide(landing, tmp_path)
    assert decided[before] == (None, Exclusion.EXPERIMENT_NOT_ROUTING)
    assert decided[at_start] == ("acme", None)
    assert decided[at_end] == (None, Exclusion.EXPERIMENT_NOT_ROUTING)
    assert decided[draft] == (None, Exclusion.EXPERIMENT_NOT_ROUTING)


def test_rule_5_withdrawn_consent_covers_past_and_future_requests_of_users_and_machines(landing, tmp_path) -> None:
    earlier = landing.request(NOON, version=ACME_V1, user="user-out")
    machine = landing.request(NOON, version=ACME_V1, user="anon:198.51.100.4", machine="laptop-7", subject="machine")
    kept = landing.request(NOON, version=ACME_V1, user="user-in")
    landing.opt_out("user", "user-out", NOON + timedelta(days=5))
    landing.opt_out("machine", "laptop-7", NOON + timedelta(days=5))
    decided = decide(landing, tmp_path)
    assert decided[earlier] == (None, Exclusion.CONSENT_WITHDRAWN)
    assert decided[machine] == (None, Exclusion.CONSENT_WITHDRAWN)
    assert decided[kept] == ("acme", None)


def test_rule_6_deleted_failed_or_missing_prompts_are_never_exported(landing, tmp_path) -> None:
    deleted = landing.request(NOON, version=ACME_V1, prompt_hash="__deleted__")
    failed = landing.request(NOON, version=ACME_V1, prompt_hash="__failed__")
    missing = landing.request(NOON, version=ACME_V1, prompt_hash="e" * 64)
    decided = decide(landing, tmp_path)
    for usage_id in (deleted, failed, missing):
        assert decided[usage_id] == (None, Exclusion.PROMPT_UNAVAILABLE)


def test_rule_7_a_session_that_touched_another_model_earlier_is_contaminated(landing, tmp_path) -> None:
    landing.request(NOON - timedelta(days=1), model="gpt-5", version=None, session="ses_mixed")
    contaminated = landing.request(NOON, version=ACME_V1, session="ses_mixed")
    landing.request(NOON - timedelta(hours=1), version=ACME_V2, session="ses_pure")
    pure = landing.request(NOON, version=ACME_V1, session="ses_pure")
    landing.request(NOON - timedelta(days=8), model="gpt-5", version=None, session="ses_old")
    beyond_lookback = landing.request(NOON, version=ACME_V1, session="ses_old")
    first_then_other = landing.request(NOON, version=ACME_V1, session="ses_later")
    landing.request(NOON + timedelta(hours=1), model="gpt-5", version=None, session="ses_later")
    decided = decide(landing, tmp_path)
    assert decided[contaminated] == (None, Exclusion.SESSION_CONTAMINATED)
    assert decided[pure] == ("acme", None)
    assert decided[beyond_lookback] == ("acme", None)
    assert decided[first_then_other] == ("acme", None)


def test_the_first_failing_rule_is_the_reason(landing, tmp_path) -> None:
    landing.request(NOON - timedelta(hours=1), model="gpt-5", version=None, session="ses_x", user="user-out")
    both = landing.request(NOON, version=ACME_V1, session="ses_x", user="user-out", prompt_hash="__deleted__")
    landing.opt_out("user", "user-out", NOON)
    assert decide(landing, tmp_path)[both] == (None, Exclusion.CONSENT_WITHDRAWN)


def test_every_usage_row_ends_in_exactly_one_place(landing, tmp_path) -> None:
    for n in range(5):
        landing.request(NOON + timedelta(minutes=n), version=ACME_V1)
        landing.request(NOON + timedelta(minutes=n), model="gpt-5", version=None)
    landing.raw_line(f"usage/dt={DT}/part-0.jsonl", "{broken")
    decided = decide(landing, tmp_path)
    store = open_store(tmp_path / "landing")
    quarantined = len(load_quarantined_raw(store, RunArea(DT, RUN), "usage"))
    assert (len(decided), quarantined) == (10, 1)
    assert sum(1 for partner, reason in decided.values() if (partner is None) == (reason is None)) == 0
