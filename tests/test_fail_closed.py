"""The export fails closed (CONTRACT.md §3 "doubt excludes", §4, §6 consent apply): every doubt ends in "not
exported", every withdrawal reaches every published partition, one partner's failure is its own."""

from __future__ import annotations

import io
import json
import threading
from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from tests.landing_builder import (
    ACME_EXPERIMENT,
    ACME_V1,
    BETA_EXPERIMENT,
    BETA_V1,
    DT,
    NOON,
    LandingBuilder,
    partners_yaml,
)
from tracedrop.pipelines.cli import app
from tracedrop.pipelines.export import day
from tracedrop.pipelines.export.internal_area import RunArea, lock_key
from tracedrop.pipelines.export.lock import day_lock
from tracedrop.pipelines.export.pseudonyms import pseudonym
from tracedrop.pipelines.export.resync import days_due, load_day_record
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.pipelines.instance import INSTANCE_CONFIG
from tracedrop.pipelines.resources import TracedropResource
from tracedrop.pipelines.sensors import RESYNC_TAG, late_landing_files
from tracedrop.schemas.drop import MANIFEST_NAME, SUCCESS_NAME
from tracedrop.schemas.exclusions import Exclusion
from tracedrop.storage.objectstore import LocalStore, open_store

SALTS = {"acme": "acme-salt", "beta": "beta-salt"}
NEXT_DAY = (NOON + timedelta(days=1)).date().isoformat()


@pytest.fixture(autouse=True)
def salts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEDROP_SALT_ACME", SALTS["acme"])
    monkeypatch.setenv("TRACEDROP_SALT_BETA", SALTS["beta"])
    monkeypatch.setenv("TRACEDROP_LOCK_WAIT_SECONDS", "1")


class World:
    """A landing zone with acme and beta traffic of five users on DT, a registry and a drops folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.landing = str(root / "landing")
        self.drops = str(root / "drops")
        self.registry = root / "partners.yaml"
        self.registry.write_text(partners_yaml(self.drops))
        self.builder = LandingBuilder.with_default_experiments()
        self.usage: dict[str, list[str]] = {}  # user -> usage ids
        for n in range(1, 6):
            user = f"user-{n}"
            self.usage[user] = [
                self.builder.request(NOON + timedelta(minutes=n), version=ACME_V1, user=user, session=f"ses_a{n}"),
                self.builder.request(
                    NOON + timedelta(minutes=n), model="preview/beta-chat", version=BETA_V1, user=user
                ),
            ]
        self.write()

    @property
    def store(self) -> LocalStore:
        return LocalStore(self.landing)

    def write(self) -> None:
        self.builder.write(self.store)

    def export(self, dt: str = DT, *extra: str) -> object:
        args = ["export", "--landing", self.landing, "--partners", str(self.registry), "--date", dt, *extra]
        return CliRunner().invoke(app, args)

    def consent_apply(self) -> object:
        return CliRunner().invoke(
            app, ["consent", "apply", "--landing", self.landing, "--partners", str(self.registry)]
        )

    def withdraw(self, user: str) -> None:
        self.builder.opt_out("user", user, NOON + timedelta(days=5))
        self.write()

    def edit_registry(self, edit) -> None:
        data = yaml.safe_load(self.registry.read_text())
        edit(data["partners"])
        self.registry.write_text(yaml.safe_dump(data))


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def partition_rows(root: str | Path, finished_only: bool = False) -> dict[str, list[dict]]:
    """Rows of every partition under a drops root (only those with _SUCCESS when ``finished_only``)."""
    found: dict[str, list[dict]] = {}
    for path in sorted(Path(root).rglob("*.parquet")):
        if finished_only and not (path.parent / SUCCESS_NAME).exists():
            continue
        found.setdefault(str(path.parent), []).extend(pq.read_table(path).to_pylist())
    return found


def request_ids(world: World, user: str) -> set[str]:
    """The drop request ids of a user's acme and beta requests."""
    acme, beta = world.usage[user]
    return {pseudonym(SALTS["acme"].encode(), acme), pseudonym(SALTS["beta"].encode(), beta)}


def published_ids(root: str | Path, finished_only: bool = False) -> set[str]:
    return {r["request_id"] for rows in partition_rows(root, finished_only).values() for r in rows}


# --- 1. consent always lands ---------------------------------------------------------------------


def test_consent_apply_removes_a_withdrawn_subject_after_a_failed_rerun(world: World, monkeypatch) -> None:
    assert world.export().exit_code == 0
    assert request_ids(world, "user-4") <= published_ids(world.drops)
    world.withdraw("user-4")

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("tracedrop.pipelines.export.day.stage_day", disk_full)
    assert world.export().exit_code == 1  # the re-run decided without user-4, then failed
    monkeypatch.undo()

    result = world.consent_apply()
    assert result.exit_code == 0, result.output
    assert "2 row(s) removed" in result.output
    assert not request_ids(world, "user-4") & published_ids(world.drops)
    assert request_ids(world, "user-3") <= published_ids(world.drops, finished_only=True)
    acme = Path(world.drops) / f"partner=acme/experiment={ACME_EXPERIMENT}/dt={DT}"
    manifest = json.loads((acme / MANIFEST_NAME).read_text())
    assert manifest["row_count"] == 4 and (acme / SUCCESS_NAME).exists()
    assert world.consent_apply().output.strip().endswith("0 partition(s) still holding withdrawn subjects")


@pytest.mark.parametrize("change", ["left the programme", "removed from the registry", "destination moved"])
def test_consent_reaches_partitions_whatever_became_of_the_partner(world: World, change: str) -> None:
    assert world.export().exit_code == 0
    old_drops = world.drops

    def edit(partners: list[dict]) -> None:
        beta = next(p for p in partners if p["id"] == "beta")
        if change == "left the programme":
            beta["eval_program"] = False
        elif change == "removed from the registry":
            partners.remove(beta)
        else:
            beta["destination"] = str(world.root / "new-drops")

    world.edit_registry(edit)
    world.withdraw("user-2")
    assert world.consent_apply().exit_code == 0
    assert not request_ids(world, "user-2") & published_ids(old_drops)
    assert {pseudonym(b"beta-salt", world.usage["user-3"][1])} <= published_ids(old_drops, finished_only=True)


def test_a_relative_destination_is_recorded_absolute_and_found_from_another_directory(
    world: World, monkeypatch
) -> None:
    (world.root / "ops").mkdir()
    (world.root / "elsewhere").mkdir()
    world.edit_registry(lambda partners: [p.update(destination="drops") for p in partners])
    monkeypatch.chdir(world.root / "ops")
    assert world.export().exit_code == 0
    assert request_ids(world, "user-1") <= published_ids(world.root / "ops/drops")
    world.withdraw("user-1")
    monkeypatch.chdir(world.root / "elsewhere")
    assert world.consent_apply().exit_code == 0
    assert not request_ids(world, "user-1") & published_ids(world.root / "ops/drops")
    assert not (world.root / "elsewhere/drops").exists()


def test_consent_reaches_a_first_publish_that_failed_part_way(world: World, monkeypatch) -> None:
    original = LocalStore.put

    def manifest_fails(self, key, data):
        if key == MANIFEST_NAME:
            raise OSError("connection reset")
        return original(self, key, data)

    monkeypatch.setattr(LocalStore, "put", manifest_fails)
    assert world.export().exit_code == 1
    monkeypatch.setattr(LocalStore, "put", original)
    assert request_ids(world, "user-5") <= published_ids(world.drops)  # parts written, no _SUCCESS
    assert published_ids(world.drops, finished_only=True) == set()
    world.withdraw("user-5")
    assert world.consent_apply().exit_code == 0
    assert not request_ids(world, "user-5") & published_ids(world.drops)


def test_the_consent_ledger_says_when_a_subject_left_each_partition(world: World) -> None:
    assert world.export().exit_code == 0
    world.withdraw("user-4")
    assert world.consent_apply().exit_code == 0
    result = CliRunner().invoke(app, ["consent", "ledger", "--landing", world.landing, "--value", "user-4"])
    assert result.exit_code == 0
    assert result.output.count("consent apply") == 2  # one line per partition (acme and beta)
    assert "acme" in result.output and "beta" in result.output


def test_an_export_rerun_after_a_withdrawal_republishes_without_the_subject_and_logs_it(world: World) -> None:
    assert world.export().exit_code == 0
    world.withdraw("user-4")
    assert world.export().exit_code == 0
    assert not request_ids(world, "user-4") & published_ids(world.drops)
    result = CliRunner().invoke(app, ["consent", "ledger", "--landing", world.landing, "--value", "user-4"])
    assert result.output.count("export re-publish") == 2


# --- 2. a malformed consent line fails closed ------------------------------------------------------


def test_a_malformed_consent_line_fails_the_export_before_anything_is_published(world: World) -> None:
    world.store.put("consent/opt_outs.jsonl", b'{"subject": "user", "value": "user-1", "recorded_at": \n')
    result = world.export()
    assert result.exit_code == 2
    assert "consent/opt_outs.jsonl:1: invalid_json" in result.output
    assert not Path(world.drops).exists()
    with pytest.raises(day.PreflightFailed, match=r"opt_outs\.jsonl:1"):  # the Dagster job stops there too
        day.ingest(settings_for(world), DT, "run-x")
    assert not any(world.store.list("_tracedrop/runs"))
    apply = world.consent_apply()
    assert apply.exit_code == 2 and "consent/opt_outs.jsonl:1" in apply.output


# --- 3. one partner's failure is its own ------------------------------------------------------------


def test_a_missing_salt_fails_only_that_partner_and_the_day_stays_owed(world: World, monkeypatch) -> None:
    monkeypatch.delenv("TRACEDROP_SALT_BETA")
    result = world.export()
    assert result.exit_code == 1
    assert "TRACEDROP_SALT_BETA" in result.output
    assert (Path(world.drops) / f"partner=acme/experiment={ACME_EXPERIMENT}/dt={DT}" / SUCCESS_NAME).exists()
    assert not (Path(world.drops) / "partner=beta").exists()
    record = load_day_record(world.store, DT)
    assert (record.partners["acme"].state, record.partners["beta"].state) == ("published", "owed")
    assert [dt for dt, _ in days_due(world.store, ["acme", "beta"], 7, 14, 7)] == [DT]
    monkeypatch.setenv("TRACEDROP_SALT_BETA", SALTS["beta"])
    assert world.export().exit_code == 0
    assert list(days_due(world.store, ["acme", "beta"], 7, 14, 7)) == []


def test_an_unreachable_destination_fails_only_that_partner(world: World) -> None:
    (world.root / "not-a-directory").write_text("a file where beta's destination should be")
    world.edit_registry(
        lambda partners: [
            p.update(destination=str(world.root / "not-a-directory")) for p in partners if p["id"] == "beta"
        ]
    )
    result = world.export()
    assert result.exit_code == 1 and "partner beta" in result.output
    assert request_ids(world, "user-1") & published_ids(world.drops, finished_only=True)


def test_a_check_failing_for_one_partners_partition_does_not_hold_back_the_other(world: World, monkeypatch) -> None:
    monkeypatch.setattr(
        "tracedrop.pipelines.export.day.strict_scanner",
        lambda: lambda texts, ids: ["row 0: key"] if any("beta" in (t or "") for t in texts.to_list()) else [],
    )
    world.builder.request(NOON, model="preview/beta-chat", version=BETA_V1, prompt="beta secret-ish text")
    world.write()
    result = world.export()
    assert result.exit_code == 1
    finished = partition_rows(world.drops, finished_only=True)
    assert [Path(k).parts[-3] for k in finished] == ["partner=acme"]


# --- 4. never publish what did not pass ---------------------------------------------------------------


def settings_for(world: World) -> ExportSettings:
    return ExportSettings(landing_url=world.landing, partners_path=str(world.registry), lock_wait_seconds=1)


def test_publish_refuses_staged_bytes_that_changed_after_the_checks(world: World) -> None:
    settings = settings_for(world)
    for step in (day.ingest, day.decide_day, day.stage, day.run_checks):
        step(settings, DT, "run-a")
    area = RunArea(DT, "run-a")
    staged = next(info.key for info in world.store.list(area.staging_prefix) if "/partner=acme/" in info.key)
    table = pq.read_table(io.BytesIO(world.store.get(staged)))
    buffer = io.BytesIO()
    pq.write_table(table.slice(0, 1), buffer)  # another writer replaced the file the checks passed
    world.store.put(staged, buffer.getvalue())
    with pytest.raises(day.PublishFailed, match="not the bytes the blocking checks passed"):
        day.publish(settings, DT, "run-a")


def test_two_runs_of_a_day_keep_separate_areas_and_a_second_publisher_waits_then_names_the_holder(
    world: World,
) -> None:
    settings = settings_for(world)
    for run in ("run-a", "run-b"):
        for step in (day.ingest, day.decide_day, day.stage, day.run_checks):
            step(settings, DT, run)
    assert RunArea(DT, "run-a").prefix != RunArea(DT, "run-b").prefix
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with day_lock(world.store, DT, "run-a"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        with pytest.raises(Exception, match=f"dt={DT} is being published by run run-a"):
            day.publish(settings, DT, "run-b")
    finally:
        release.set()
        holder.join()
    assert not world.store.exists(lock_key(DT))
    assert day.publish(settings, DT, "run-b")["partitions"] == 2


def test_dagster_never_runs_two_runs_of_the_same_day_at_once() -> None:
    config = yaml.safe_load(INSTANCE_CONFIG.read_text())
    (limit,) = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limit == {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    assert config["telemetry"] == {"enabled": False}


# --- 5. doubt excludes ------------------------------------------------------------------------------


def decisions(world: World) -> dict[str, list[str | None]]:
    (area,) = {
        info.key.split("/run=")[1].split("/")[0] for info in world.store.list("_tracedrop/runs") if "run=" in info.key
    }
    frame = day.load_decisions(world.store, RunArea(DT, area))
    found: dict[str, list[str | None]] = {}
    for row in frame.iter_rows(named=True):
        found.setdefault(row["id"], []).append(row["reason"])
    return found


def test_a_quarantined_line_naming_a_usage_id_or_a_session_excludes_what_it_could_affect(world: World) -> None:
    usage_id = world.usage["user-1"][0]
    world.builder.raw_line(f"experiment_requests/dt={DT}/part-0.jsonl", f'{{"usage_id": "{usage_id}", "created_at": 5')
    world.builder.raw_line(f"usage/dt={DT}/part-0.jsonl", '{"created_at": "broken", "session_id": "ses_a2"}')
    earlier = (NOON - timedelta(days=1)).date().isoformat()
    world.builder.raw_line(f"usage/dt={earlier}/part-0.jsonl", '{"session_id": "ses_a3", "input_tokens": "x"}')
    world.write()
    assert world.export().exit_code == 0
    decided = decisions(world)
    assert decided[usage_id] == [Exclusion.QUARANTINED_REQUEST_LINE]
    assert decided[world.usage["user-2"][0]] == [Exclusion.QUARANTINED_SESSION_LINE]
    assert decided[world.usage["user-3"][0]] == [Exclusion.QUARANTINED_SESSION_LINE]  # from the lookback
    assert decided[world.usage["user-4"][0]] == [None]


def test_a_usage_line_delivered_twice_is_exported_once_and_differing_copies_not_at_all(world: World) -> None:
    lines = world.builder.lines[f"usage/dt={DT}/part-0.jsonl"]
    same, differing = world.usage["user-1"][0], world.usage["user-2"][0]
    for line in list(lines):
        row = json.loads(line)
        if row["id"] == same:
            world.builder.raw_line(f"usage/dt={DT}/late.jsonl", line)
        if row["id"] == differing:
            world.builder.raw_line(f"usage/dt={DT}/late.jsonl", json.dumps({**row, "output_tokens": 999}))
    world.write()
    assert world.export().exit_code == 0
    decided = decisions(world)
    assert sorted(decided[same], key=str) == sorted([None, Exclusion.DUPLICATE_DELIVERY], key=str)
    assert decided[differing] == [Exclusion.CONFLICTING_DUPLICATE] * 2
    assert len(published_ids(world.drops) & request_ids(world, "user-1")) == 2  # acme once, beta once


def test_a_line_in_the_wrong_dt_partition_is_quarantined_never_exported(world: World) -> None:
    stray = world.builder.request(NOON + timedelta(days=1), version=ACME_V1, user="user-9")
    lines = world.builder.lines
    lines[f"usage/dt={DT}/part-0.jsonl"] += lines.pop(f"usage/dt={NEXT_DAY}/part-0.jsonl")
    world.write()
    assert world.export().exit_code == 0
    assert stray not in decisions(world)
    quarantine = pl.read_parquet(list(Path(world.landing).rglob("quarantine/usage/bucket=*/*.parquet")))
    assert quarantine.get_column("reason").to_list() == ["wrong_partition"]
    assert not {pseudonym(b"acme-salt", stray)} & published_ids(world.drops)


def test_a_late_file_reruns_every_published_day_whose_lookback_covers_it(world: World) -> None:
    world.builder.request(NOON + timedelta(days=1), version=ACME_V1, user="user-1", session="ses_a1")
    world.write()
    assert world.export(DT).exit_code == 0
    assert world.export(NEXT_DAY).exit_code == 0
    assert list(days_due(world.store, ["acme", "beta"], 7, 14, 7)) == []
    world.store.put(f"usage/dt={DT}/late.jsonl", b"")
    assert [dt for dt, _ in days_due(world.store, ["acme", "beta"], 7, 14, 7)] == [DT, NEXT_DAY]


def test_a_failed_sensor_launched_run_is_retried(world: World) -> None:
    assert world.export().exit_code == 0
    world.store.put(f"usage/dt={DT}/late.jsonl", b"")
    instance = dg.DagsterInstance.ephemeral()
    resources = {"tracedrop": TracedropResource(landing_url=world.landing, partners_path=str(world.registry))}
    (first,) = late_landing_files(dg.build_sensor_context(instance=instance, resources=resources))
    instance.add_run(
        dg.DagsterRun(job_name="export_day", run_id="failed-1", tags=first.tags, status=dg.DagsterRunStatus.FAILURE)
    )
    (again,) = late_landing_files(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(again, dg.RunRequest) and again.run_key != first.run_key
    assert again.tags[RESYNC_TAG] == first.tags[RESYNC_TAG] and again.partition_key == DT


def test_the_counts_reconcile_exactly_with_the_doubt_reasons(world: World) -> None:
    usage_id = world.usage["user-1"][0]
    world.builder.raw_line(f"experiment_requests/dt={DT}/part-0.jsonl", f'{{"usage_id": "{usage_id}"}}')
    world.builder.raw_line(f"usage/dt={DT}/part-0.jsonl", json.loads(json.dumps("{not json")))
    world.write()
    result = world.export()
    assert result.exit_code == 0 and "counts_reconcile" in result.output
    accounts = json.loads(next(Path(world.landing).rglob("accounts.json")).read_text())
    assert accounts["usage_lines"] == 11
    assert accounts["excluded"] == {Exclusion.QUARANTINED_REQUEST_LINE: 1}
    assert sum(accounts["exported"].values()) + 1 + accounts["quarantined"] == accounts["usage_lines"]


# --- 7. the registry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("clash", ["shared variable", "same value"])
def test_partners_whose_salts_could_join_stop_the_run_before_anything_is_written(
    world: World, monkeypatch, clash: str
) -> None:
    if clash == "shared variable":
        world.edit_registry(lambda partners: partners[1].update(subject_salt_env="TRACEDROP_SALT_ACME"))
    else:
        monkeypatch.setenv("TRACEDROP_SALT_BETA", SALTS["acme"])
    result = world.export()
    assert result.exit_code != 0
    assert "salt" in result.output and "join" in result.output
    assert not Path(world.drops).exists() and not any(world.store.list("_tracedrop/runs"))


def test_an_empty_partner_list_is_an_error(world: World) -> None:
    world.registry.write_text("partners: []\n")
    result = world.export()
    assert result.exit_code != 0 and "lists no partners" in result.output


# --- 8. publishing hygiene -----------------------------------------------------------------------------


def test_the_manifest_watermark_describes_only_the_partitions_own_rows(world: World) -> None:
    for n in range(30):
        world.builder.request(NOON + timedelta(hours=5, minutes=n), model="gpt-5", version=None)
    world.write()
    assert world.export().exit_code == 0
    acme = Path(world.drops) / f"partner=acme/experiment={ACME_EXPERIMENT}/dt={DT}"
    watermark = json.loads((acme / MANIFEST_NAME).read_text())["source_watermark"]
    assert watermark == {"rows": 5, "max_created_at": "2026-11-03T12:05:00Z"}
    beta = Path(world.drops) / f"partner=beta/experiment={BETA_EXPERIMENT}/dt={DT}"
    assert json.loads((beta / MANIFEST_NAME).read_text())["source_watermark"]["rows"] == 5
    assert open_store(world.drops).exists(f"partner=beta/experiment={BETA_EXPERIMENT}/dt={DT}/{SUCCESS_NAME}")
