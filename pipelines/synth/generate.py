"""Orchestration: plan each day's sessions, build them, and stream rows, blobs and ground truth out.

``generate(store, config, progress)`` is the Python API; the same seed and arguments always write
the same bytes (ids, times and texts come from seeded generators, never the clock or ``hash()``).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from tracedrop.pipelines.export.doubt import named_value
from tracedrop.pipelines.synth.clock import day_of, day_start_us, rfc3339, to_us
from tracedrop.pipelines.synth.content import AgentContent, Pools
from tracedrop.pipelines.synth.ids import Ids
from tracedrop.pipelines.synth.malformed import Malformer
from tracedrop.pipelines.synth.population import build_population
from tracedrop.pipelines.synth.production import people_frame, production_day
from tracedrop.pipelines.synth.rows import experiment_request_rows, feedback_row, planted_row, usage_row
from tracedrop.pipelines.synth.scenario import build_scenario, snapshot_rows
from tracedrop.pipelines.synth.sessions import (
    Delivery,
    PromptState,
    Request,
    SessionBuilder,
    SessionOutput,
    SessionPlan,
)
from tracedrop.pipelines.synth.traffic import EXPERIMENT_SHARE, PLANTED_PER_REQUESTS, Traffic, background_share
from tracedrop.pipelines.synth.truth import Consent, Doubt, judge_session, production_truth
from tracedrop.pipelines.synth.writer import DEFAULT_ROLL_BYTES, BlobWriter, Corrupt, DayFiles
from tracedrop.schemas.exclusions import Exclusion
from tracedrop.schemas.landing import (
    EXPERIMENT_REQUESTS,
    FEEDBACK,
    OPT_OUTS,
    PROMPTS_PREFIX,
    RECORD_TYPES,
    RESPONSES_PREFIX,
    USAGE,
    RecordType,
    partition_dir,
)
from tracedrop.storage.landing_writer import capped_blob, jsonl, usage_frame_jsonl
from tracedrop.storage.objectstore import ObjectStore

DEFAULT_START = date(2026, 11, 1)
SYNTH_ROOT = "_synth"
SUMMARY_KEY = f"{SYNTH_ROOT}/summary.json"
TRUTH, PLANTED = "truth", "planted"
MALFORMED_RATE = 0.001
PLANTED_PREVIEW_ROWS = round(PLANTED_PER_REQUESTS * EXPERIMENT_SHARE)  # preview rows per planted set, with a share


class SynthError(RuntimeError):
    """The generator cannot run with these arguments or into this location."""


@dataclass(frozen=True)
class SynthConfig:
    days: int = 3
    requests_per_day: int = 2000
    seed: int = 7
    start: date = DEFAULT_START
    gzip: bool = False
    roll_bytes: int = DEFAULT_ROLL_BYTES
    malformed_rate: float = MALFORMED_RATE
    preview_share: float | None = None  # share of usage rows that are preview traffic; None: the session mix
    history_days: int = 0  # days before ``start`` with sessions only: no bulk production rows, no blobs

    def __post_init__(self) -> None:
        if self.days < 1 or self.requests_per_day < 1:
            raise SynthError("days and requests per day must be at least 1")
        if self.preview_share is not None and not 0 < self.preview_share <= 1:
            raise SynthError(
                f"--preview-share must be more than 0 and at most 1 (a share of usage rows), got {self.preview_share}"
            )
        if self.history_days < 0:
            raise SynthError(f"--history-days must be 0 or more, got {self.history_days}")

    @property
    def preview_rows(self) -> int | None:
        """Usage rows of preview traffic wanted a day (None: whatever the session mix gives)."""
        return None if self.preview_share is None else max(1, round(self.preview_share * self.requests_per_day))

    @property
    def session_requests(self) -> int:
        """Requests a day the session builder makes (the rest are bulk production rows)."""
        wanted = self.preview_rows
        if wanted is None:
            return self.requests_per_day
        return min(self.requests_per_day, math.ceil(wanted / EXPERIMENT_SHARE))

    @property
    def first_day(self) -> date:
        return self.start - timedelta(days=self.history_days)

    @property
    def total_days(self) -> int:
        return self.history_days + self.days


@dataclass(frozen=True)
class SynthProgress:
    day: str
    day_index: int
    days: int
    requests: int  # requests generated so far, all days
    target: int  # days × requests per day
    bytes_written: int  # prompt and response blob bytes so far


Progress = Callable[[SynthProgress], None]


def truth_dir(dt: str) -> str:
    return f"{SYNTH_ROOT}/truth/dt={dt}"


def planted_dir(dt: str) -> str:
    return f"{SYNTH_ROOT}/planted/dt={dt}"


def prepare_location(store: ObjectStore) -> None:
    """Refuse a non-empty location unless it holds an earlier synth run, which is then removed."""
    keys = [info.key for info in store.list()]
    if not keys:
        return
    if SUMMARY_KEY not in keys:
        raise SynthError(f"{store.url} is not empty and is not an earlier synth output; choose an empty location")
    store.delete(keys)


def _without_id(row: dict[str, Any], dt: str) -> bytes:
    """A usage line that lost its id: quarantined, it still names its session."""
    return orjson.dumps({k: v for k, v in row.items() if k != "id"})


def _with_a_wrong_type(row: dict[str, Any], dt: str) -> bytes:
    """An experiment_requests line with a wrong type: quarantined, it still names its usage id."""
    return orjson.dumps({**row, "variant_version_id": 12345})


def _lost(plan: SessionPlan) -> SessionPlan:
    """A history day's session: no blob is written, so each prompt it logs is lost (rule 6, as its truth
    says); it opens with no stock message, whose body another day may store under the same hash."""
    return replace(plan, prompt=plan.prompt or PromptState.LOST, opener=False)


class _Run:
    """The state of one generation: writers, counters and the fixed parts of the scenario."""

    def __init__(self, store: ObjectStore, config: SynthConfig) -> None:
        self.store = store
        self.config = config
        first = config.first_day
        self.scenario = build_scenario(datetime(first.year, first.month, first.day, tzinfo=UTC), config.total_days)
        self.population = build_population(random.Random(f"{config.seed}:population"), config.session_requests // 8)
        pop = self.population
        assert pop.opted_out_user.user_id and pop.opted_out_machine_user.machine_id
        self.consent = Consent(
            frozenset({pop.opted_out_user.user_id}), frozenset({pop.opted_out_machine_user.machine_id})
        )
        self.people = people_frame(self.population) if config.preview_share is not None else None
        pools = Pools.build(random.Random(f"{config.seed}:content"))
        self.builder = SessionBuilder(AgentContent(pools), self.scenario.end_us)
        self.traffic = Traffic(self.scenario, pop)
        self.files = DayFiles(store, config.gzip, config.roll_bytes)
        self.blobs = BlobWriter(store)
        self.malformers = {
            rt.name: Malformer(rt, random.Random(f"{config.seed}:malformed:{rt.name}"), config.malformed_rate)
            for rt in (USAGE, EXPERIMENT_REQUESTS, FEEDBACK)
        }
        self.exported: Counter[tuple[str, str, str]] = Counter()  # (partner, experiment, dt)
        self.excluded: Counter[tuple[str, str]] = Counter()  # (reason, dt)
        self.planted: Counter[str] = Counter()
        self.requests = 0
        self.doubt = Doubt()

    def write_snapshots(self) -> None:
        for name, rows in snapshot_rows(self.scenario).items():
            self._put_jsonl(RECORD_TYPES[name].location, rows)
        self._put_jsonl(OPT_OUTS.location, self.population.opt_out_rows(rfc3339(to_us(self.scenario.opt_out_at))))

    def _put_jsonl(self, key: str, rows: list[dict[str, Any]]) -> None:
        self.store.put(key, jsonl(rows))

    def _row(
        self, record_type: RecordType, dt: str, row: dict[str, Any], corrupt: Corrupt | None = None
    ) -> bytes | None:
        """Write a row, maybe with a broken copy (the malformer's, or ``corrupt``'s); return the broken line."""
        return self.files.write(
            record_type.name,
            partition_dir(record_type, dt),
            dt,
            row,
            corrupt or self.malformers[record_type.name].maybe,
        )

    def _note_broken_usage(self, broken: bytes | None, dt: str) -> None:
        """What a quarantined usage line still names casts doubt, exactly as the export reads it."""
        if broken is None:
            return
        usage_id, session_id = named_value(broken, "id"), named_value(broken, "session_id")
        if usage_id:
            self.doubt.conflicting.add(usage_id)
        if session_id:
            self.doubt.session_days.setdefault(session_id, set()).add(dt)

    def _write_usage(self, request: Request, dt: str, row: dict[str, Any]) -> None:
        corrupt = None
        if request.delivery is Delivery.BROKEN_SESSION_LINE:
            corrupt = _without_id
        self._note_broken_usage(self._row(USAGE, dt, row, corrupt), dt)
        if request.delivery is Delivery.TWICE:
            self.files.write(USAGE.name, partition_dir(USAGE, dt), dt, row)
        elif request.delivery is Delivery.CONFLICTING:
            self.files.write(
                USAGE.name, partition_dir(USAGE, dt), dt, {**row, "output_tokens": row["output_tokens"] + 1}
            )
            self.doubt.conflicting.add(request.usage_id)

    def _write_experiment_requests(self, request: Request) -> None:
        corrupt = None
        if request.delivery is Delivery.BROKEN_REQUEST_LINE:
            corrupt = _with_a_wrong_type
        for row in experiment_request_rows(request):
            dt = row["created_at"][:10]
            broken = self._row(EXPERIMENT_REQUESTS, dt, row, corrupt)
            usage_id = named_value(broken, "usage_id") if broken else None
            if usage_id:
                self.doubt.request_lines.add((usage_id, dt))

    def emit(self, output: SessionOutput, blobs: bool = True) -> tuple[int, int]:
        """Write a session's requests, blobs (unless ``blobs`` is False), truth and feedback.

        Returns (requests, experiment requests).
        """
        experiment_requests = 0
        for request in output.requests:
            dt = day_of(request.created_us)
            response_sha = None
            if request.response is not None and blobs:
                response = capped_blob(RESPONSES_PREFIX, request.response)
                response_sha = response.sha256
                self.blobs.put(RESPONSES_PREFIX, response_sha, response.data)
            if request.body is not None:
                assert request.body_sha is not None
                self.blobs.put(PROMPTS_PREFIX, request.body_sha, request.body)
            self._write_usage(request, dt, usage_row(request, response_sha))
            self._write_experiment_requests(request)
            experiment_requests += request.experiment is not None
        judged = judge_session(output.requests, self.scenario, self.consent, self.doubt)
        for request, copies in zip(output.requests, judged, strict=True):
            dt = day_of(request.created_us)
            for truth in copies:
                self.files.write_single(TRUTH, truth_dir(dt), dt, TRUTH, truth)
                if truth["reason"] is None:
                    self.exported[(str(truth["partner_id"]), str(truth["experiment_id"]), dt)] += 1
                else:
                    self.excluded[(str(truth["reason"]), dt)] += 1
            for item in request.plants if blobs else ():
                self.files.write_single(PLANTED, planted_dir(dt), dt, PLANTED, planted_row(request, item))
                self.planted[item.kind] += 1
        for event in output.feedback:
            row = feedback_row(event)
            self._row(FEEDBACK, row["timestamp"][:10], row)
        self.requests += len(output.requests)
        return len(output.requests), experiment_requests

    def day(self, index: int, day: date, progress: Progress | None) -> None:
        """One day: the planted sessions, background sessions, then (with a preview share) bulk production."""
        config = self.config
        rng = random.Random(f"{config.seed}:day:{day.isoformat()}")
        ids = Ids(rng)
        start = day_start_us(day)
        target = config.requests_per_day
        preview = config.preview_rows
        planted_sets = target // PLANTED_PER_REQUESTS if preview is None else round(preview / PLANTED_PREVIEW_ROWS)
        plans = [
            plan
            for rep in range(max(1, planted_sets))
            for plan in self.traffic.planted(start, rng, first_of_run=index == config.history_days and rep == 0)
        ]
        history = index < config.history_days
        if history:
            plans = [_lost(plan) for plan in plans]
        done = experiment = 0
        for plan in plans:
            n, e = self.emit(self.builder.build(plan, rng, ids), blobs=not history)
            done, experiment = done + n, experiment + e
        share = background_share(target, done, experiment) if preview is None else 1.0

        def more() -> bool:
            return done < target if preview is None else done < target and experiment < preview

        while more():
            plan = self.traffic.background(start, rng, share)
            plan = _lost(plan) if history else plan
            n, e = self.emit(self.builder.build(plan, rng, ids), blobs=not history)
            done, experiment = done + n, experiment + e
            self._progress(day, index, progress)
        if preview is not None and not history and done < target:
            self._production(day, target - done, progress, index)
        self.files.close_through(day.isoformat())

    def _progress(self, day: date, index: int, progress: Progress | None) -> None:
        if progress is not None:
            blob_bytes = sum(s.bytes for s in self.blobs.stats.values())
            target = self.config.requests_per_day * self.config.total_days
            progress(SynthProgress(day.isoformat(), index, self.config.total_days, self.requests, target, blob_bytes))

    def _production(self, day: date, rows: int, progress: Progress | None, index: int) -> None:
        """Bulk production usage rows (and their truth) in whole objects, a chunk at a time."""
        assert self.people is not None
        dt = day.isoformat()
        chunks = production_day(self.config.seed, dt, rows, day_start_us(day), self.people)
        for part, usage in enumerate(chunks):
            name = f"production-{part:05d}"
            data = usage_frame_jsonl(usage)
            directory = partition_dir(USAGE, dt)
            self.files.write_object(USAGE.name, directory, dt, name, data, usage.height, self.config.gzip)
            truth = production_truth(usage).write_ndjson().encode()
            self.files.write_object(TRUTH, truth_dir(dt), dt, name, truth, usage.height, False)
            self.excluded[(Exclusion.NOT_ONE_EXPERIMENT_REQUEST.value, dt)] += usage.height
            self.requests += usage.height
            self._progress(day, index, progress)

    def summary(self) -> dict[str, Any]:
        stats = self.files.stats
        landing = (USAGE.name, EXPERIMENT_REQUESTS.name, FEEDBACK.name)
        return {
            "synth_version": 1,
            "config": {**asdict(self.config), "start": self.config.start.isoformat()},
            "window": {"start": rfc3339(self.scenario.start_us), "end": rfc3339(self.scenario.end_us)},
            "rows": _nest(Counter({k: v for k, v in stats.rows.items() if k[0] in landing})),
            "malformed": _nest(stats.malformed),
            "files": dict(sorted(stats.files.items())),
            "bytes": dict(sorted(stats.bytes.items())),
            "blobs": {prefix: asdict(s) for prefix, s in sorted(self.blobs.stats.items())},
            "expected": {
                "exported": _nest(_sum_by(self.exported, (0, 2))),
                "exported_by_experiment": _nest(self.exported),
                "excluded": _nest(self.excluded),
                "quarantined": _nest(stats.malformed),
            },
            "planted": dict(sorted(self.planted.items())),
        }


def _sum_by(counter: Counter[tuple[str, ...]], keep: tuple[int, ...]) -> Counter[tuple[str, ...]]:
    out: Counter[tuple[str, ...]] = Counter()
    for key, value in counter.items():
        out[tuple(key[i] for i in keep)] += value
    return out


def _nest(counter: Counter[Any]) -> dict[str, Any]:
    """``{(a, b): n}`` → ``{a: {b: n}}`` with sorted keys (any depth)."""
    out: dict[str, Any] = {}
    for key, value in sorted(counter.items()):
        node = out
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = value
    return out


def generate(store: ObjectStore, config: SynthConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Write the landing zone and ``_synth/`` (truth, planted values, summary); return the summary."""
    prepare_location(store)
    run = _Run(store, config)
    try:
        run.write_snapshots()
        for index in range(config.total_days):
            run.day(index, config.first_day + timedelta(days=index), progress)
        run.files.close_through()
    finally:
        run.blobs.close()
    summary = run.summary()
    store.put(SUMMARY_KEY, orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return summary
