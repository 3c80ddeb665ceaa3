"""Property: whatever happens in between (exports, opt-outs, failed exports, partners changing), once
`consent apply` succeeds no withdrawn subject's row is left in any published partition."""

from __future__ import annotations

import tempfile
from contextlib import ExitStack, suppress
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.landing_builder import ACME_V1, BETA_V1, DT, NOON, LandingBuilder, partners_yaml
from tracedrop.pipelines.export import day
from tracedrop.pipelines.export.consent import apply_consent, load_opt_outs
from tracedrop.pipelines.export.pseudonyms import pseudonym
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.schemas.drop import MANIFEST_NAME
from tracedrop.storage.objectstore import LocalStore

USERS = [f"user-{n}" for n in range(1, 5)]
SALTS = {"TRACEDROP_SALT_ACME": "acme-salt", "TRACEDROP_SALT_BETA": "beta-salt"}

export = st.just(("export", None))
opt_out = st.tuples(st.just("opt_out"), st.sampled_from(USERS))
failed_export = st.tuples(st.just("failed_export"), st.sampled_from(["stage", "publish"]))
partner_change = st.tuples(st.just("partner_change"), st.sampled_from(["leaves", "moves", "removed", "returns"]))
consent = st.just(("consent_apply", None))
histories = st.lists(st.one_of(export, opt_out, failed_export, partner_change, consent), min_size=1, max_size=7)


class Scenario:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = LocalStore(root / "landing")
        self.registry = root / "partners.yaml"
        self.registry.write_text(partners_yaml(str(root / "drops")))
        self.builder = LandingBuilder.with_default_experiments()
        self.request_ids: dict[str, set[str]] = {}
        for n, user in enumerate(USERS):
            acme = self.builder.request(NOON + timedelta(minutes=n), version=ACME_V1, user=user, session=f"s{n}")
            beta = self.builder.request(
                NOON + timedelta(minutes=n), model="preview/beta-chat", version=BETA_V1, user=user
            )
            self.request_ids[user] = {pseudonym(b"acme-salt", acme), pseudonym(b"beta-salt", beta)}
        self.builder.write(self.store)
        self.withdrawn: set[str] = set()

    @property
    def settings(self) -> ExportSettings:
        return ExportSettings(landing_url=str(self.store.root), partners_path=str(self.registry), lock_wait_seconds=1)

    def export(self, failure: str | None = None) -> None:
        with ExitStack() as stack:
            if failure == "stage":
                disk_full = OSError("disk full")
                stack.enter_context(mock.patch("tracedrop.pipelines.export.day.stage_day", side_effect=disk_full))
            elif failure == "publish":
                original = LocalStore.put

                def put(store: LocalStore, key: str, data: bytes):
                    if key == MANIFEST_NAME and "partner=beta" in store.url:
                        raise OSError("connection reset")
                    return original(store, key, data)

                stack.enter_context(mock.patch.object(LocalStore, "put", put))
            with suppress(day.PublishFailed, OSError):  # a failed export is part of the story
                day.run_all(self.settings, DT)

    def change_beta(self, how: str) -> None:
        data = yaml.safe_load(partners_yaml(str(self.root / "drops")))
        beta = data["partners"][1]
        if how == "leaves":
            beta["eval_program"] = False
        elif how == "moves":
            beta["destination"] = str(self.root / "drops-moved")
        elif how == "removed":
            data["partners"].pop()
        self.registry.write_text(yaml.safe_dump(data))

    def opt_out(self, user: str) -> None:
        self.builder.opt_out("user", user, NOON + timedelta(days=1))
        self.builder.write(self.store)
        self.withdrawn.add(user)

    def finished_rows(self) -> set[str]:
        """request ids in every partition that has _SUCCESS, under any destination."""
        found = set()
        for path in self.root.rglob("*.parquet"):
            if "landing" not in path.parts and (path.parent / "_SUCCESS").exists():
                found |= set(pq.read_table(path).column("request_id").to_pylist())
        return found


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories)
def test_after_consent_apply_succeeds_no_withdrawn_row_is_in_a_finished_partition(
    history: list[tuple[str, str | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SALTS.items():
        monkeypatch.setenv(name, value)
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Scenario(Path(tmp))
        for action, arg in history:
            if action == "export":
                scenario.export()
            elif action == "failed_export":
                scenario.export(failure=arg)
            elif action == "opt_out":
                scenario.opt_out(str(arg))
            elif action == "partner_change":
                scenario.change_beta(str(arg))
            else:
                apply_consent(scenario.store, load_opt_outs(scenario.store), lock_wait_seconds=1)
        report = apply_consent(scenario.store, load_opt_outs(scenario.store), lock_wait_seconds=1)
        assert not report.failures and not report.remaining
        withdrawn = {rid for user in scenario.withdrawn for rid in scenario.request_ids[user]}
        assert not withdrawn & scenario.finished_rows()
