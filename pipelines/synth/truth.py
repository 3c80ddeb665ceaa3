"""The ground truth: each usage row's intended fate under CONTRACT.md §3, from what the generator meant.

Nothing here reads the written files: the fate follows from the :class:`Request` records (which
experiment served them, which rows and blobs were logged) and the scenario, rule by rule in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

import polars as pl

from tracedrop.pipelines.synth.clock import DAY, rfc3339, to_datetime
from tracedrop.pipelines.synth.scenario import Scenario
from tracedrop.pipelines.synth.sessions import Delivery, PromptState, Request, RequestRows
from tracedrop.schemas.exclusions import DEFAULT_SESSION_LOOKBACK_DAYS, Exclusion, Fate
from tracedrop.storage.landing_writer import POLARS_TIMESTAMP_FORMAT


@dataclass(frozen=True)
class Consent:
    """Withdrawn subjects: an opt-out covers every request of the subject, before and after it."""

    users: frozenset[str]
    machines: frozenset[str]

    def withdrawn(self, request: Request) -> bool:
        person = request.person
        return person.kilo_user_id in self.users or (
            person.machine_id is not None and person.machine_id in self.machines
        )


def _served_experiment(request: Request, scenario: Scenario) -> str | None:
    """The experiment a request counts as served by in session history (null if not exactly one row)."""
    if request.rows is not RequestRows.ONE or request.version_id is None:
        return None
    resolved = scenario.version_index.get(request.version_id)
    return resolved[1].id if resolved else None


@dataclass
class Doubt:
    """What repeated and broken lines say about requests, as the export reads them (CONTRACT.md §3, doubt)."""

    conflicting: set[str] = field(default_factory=set)  # usage ids with differing copies (or a broken one naming them)
    request_lines: set[tuple[str, str]] = field(default_factory=set)  # (usage id, dt) a broken request line names
    session_days: dict[str, set[str]] = field(default_factory=dict)  # session id -> days of broken lines naming it

    def session_in_doubt(self, session_id: str | None, dt: str, lookback_days: int) -> bool:
        day = date.fromisoformat(dt)
        return session_id is not None and any(
            timedelta(0) <= day - date.fromisoformat(q) <= timedelta(days=lookback_days)
            for q in self.session_days.get(session_id, ())
        )


def first_failing_rule(
    request: Request,
    history: list[tuple[int, str | None]],
    scenario: Scenario,
    consent: Consent,
    lookback_days: int,
    doubt: Doubt | None = None,
) -> Exclusion | None:
    """Doubt and rules 1..7 in order; ``history`` holds (created_us, served experiment) of earlier requests."""
    doubt = doubt or Doubt()
    dt = rfc3339(request.created_us)[:10]
    if request.usage_id in doubt.conflicting:
        return Exclusion.CONFLICTING_DUPLICATE
    if request.rows is not RequestRows.ONE:
        return Exclusion.NOT_ONE_EXPERIMENT_REQUEST
    if (request.usage_id, dt) in doubt.request_lines:
        return Exclusion.QUARANTINED_REQUEST_LINE
    resolved = scenario.version_index.get(request.version_id or "")
    owner = scenario.owner(resolved[1].id) if resolved else None
    if resolved is None or owner is None or not owner.eval_program:
        return Exclusion.NOT_PARTNER_EXPERIMENT
    experiment = resolved[1]
    if request.requested_model.lower() != experiment.public_model_id.lower():
        return Exclusion.MODEL_MISMATCH
    if not experiment.routing_at(to_datetime(request.created_us)):
        return Exclusion.EXPERIMENT_NOT_ROUTING
    if consent.withdrawn(request):
        return Exclusion.CONSENT_WITHDRAWN
    if request.prompt is not PromptState.STORED:
        return Exclusion.PROMPT_UNAVAILABLE
    if request.session_id is not None:
        window_start = request.created_us - lookback_days * DAY
        for at, served in history:
            if window_start <= at < request.created_us and served != experiment.id:
                return Exclusion.SESSION_CONTAMINATED
    if doubt.session_in_doubt(request.session_id, dt, lookback_days):
        return Exclusion.QUARANTINED_SESSION_LINE
    return None


def judge_session(
    requests: Iterable[Request],
    scenario: Scenario,
    consent: Consent,
    doubt: Doubt | None = None,
    lookback_days: int = DEFAULT_SESSION_LOOKBACK_DAYS,
) -> list[list[dict[str, object]]]:
    """Truth rows per request of one session (given in created_at order): one per delivered usage line."""
    rows = []
    history: list[tuple[int, str | None]] = []
    for request in requests:
        reason = first_failing_rule(request, history, scenario, consent, lookback_days, doubt)
        experiment = request.experiment if request.variant is not None else None  # None: unresolvable version
        owner = scenario.owner(experiment.id) if experiment is not None else None
        row: dict[str, object] = {
            "usage_id": request.usage_id,
            "created_at": rfc3339(request.created_us),
            "fate": (Fate.EXCLUDED if reason else Fate.EXPORTED).value,
            "reason": reason.value if reason else None,
            "partner_id": owner.id if owner else None,
            "experiment_id": experiment.id if experiment is not None else None,
            "variant_id": request.variant.id if request.variant else None,
            "variant_version_id": request.version_id,
            "feedback_rating": request.rating,
        }
        copies = [row]
        if request.delivery in (Delivery.TWICE, Delivery.CONFLICTING):
            again = Exclusion.CONFLICTING_DUPLICATE if reason is Exclusion.CONFLICTING_DUPLICATE else None
            again = again or Exclusion.DUPLICATE_DELIVERY
            copies.append({**row, "fate": Fate.EXCLUDED.value, "reason": again.value})
        rows.append(copies)
        history.append((request.created_us, _served_experiment(request, scenario)))
    return rows


def production_truth(usage: pl.DataFrame) -> pl.DataFrame:
    """Truth rows (as :func:`judge_session` spells them) of bulk production usage rows.

    They have no experiment_requests row, no copy and no broken line naming them, so rule 1 excludes
    every one of them: the first check :func:`first_failing_rule` makes after doubt.
    """
    none = pl.lit(None, dtype=pl.String)
    return usage.select(
        pl.col("id").alias("usage_id"),
        pl.col("created_at").dt.strftime(POLARS_TIMESTAMP_FORMAT),
        pl.lit(Fate.EXCLUDED.value).alias("fate"),
        pl.lit(Exclusion.NOT_ONE_EXPERIMENT_REQUEST.value).alias("reason"),
        none.alias("partner_id"),
        none.alias("experiment_id"),
        none.alias("variant_id"),
        none.alias("variant_version_id"),
        none.alias("feedback_rating"),
    )
