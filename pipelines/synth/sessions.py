"""Sessions made of turns made of steps: each step is one gateway request.

A :class:`SessionPlan` says who talks to which model(s) and which anomalies to plant; the
:class:`SessionBuilder` turns it into :class:`Request` records (with their bodies, responses and
intended experiment-requests rows) and the turn's feedback events.  Every step of a turn shares the
turn's ``client_request_id``; each step's body carries the whole history so far.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum

from tracedrop.pipelines.synth.clock import MINUTE, SECOND, rfc3339, to_datetime
from tracedrop.pipelines.synth.content import AgentContent, Conversation, completion, huge_log
from tracedrop.pipelines.synth.ids import Ids
from tracedrop.pipelines.synth.plants import Plant, PlantedItem, PlantFactory, random_plant
from tracedrop.pipelines.synth.population import Person
from tracedrop.pipelines.synth.scenario import Experiment, ProductionModel, Variant
from tracedrop.schemas.bucketing import allocation_subject, choose_variant
from tracedrop.schemas.landing import BLOB_CAP_BYTES, PROMPTS_PREFIX
from tracedrop.storage.landing_writer import capped_blob

PLANT_RATE = 0.03  # per tool step; plants stay in the history, so ~5% of bodies carry a secret
RANDOM_PROMPT_LOSS = 0.002  # per unique body: storage failed / wiped / blob lost
RETRY_RATE = 0.02
FEEDBACK_RATE = 0.12


class RequestRows(Enum):
    """How many experiment_requests rows the gateway logged for a request (rule 1)."""

    NONE = "none"  # production traffic
    ONE = "one"
    MISSING = "missing"  # experiment traffic whose row was lost
    DUPLICATE = "duplicate"  # the row was logged twice
    SHIFTED = "shifted"  # the row's created_at differs from the usage row's


class Delivery(Enum):
    """How the extractor delivered a request's usage line, and what broken lines came with it."""

    ONCE = "once"
    TWICE = "twice"  # the same line delivered again, identical
    CONFLICTING = "conflicting"  # delivered again with a different value (the export excludes both)
    BROKEN_REQUEST_LINE = "broken_request_line"  # plus a malformed experiment_requests line naming it
    BROKEN_SESSION_LINE = "broken_session_line"  # plus a malformed usage line naming only its session


class PromptState(Enum):
    """What became of the request body (rule 6)."""

    STORED = "stored"
    FAILED = "failed"  # request_body_sha256 = __failed__
    DELETED = "deleted"  # request_body_sha256 = __deleted__
    LOST = "lost"  # a real hash whose blob was never written


@dataclass(frozen=True)
class Segment:
    """Consecutive turns on one model id: production (``production``) or a preview id (``experiment``)."""

    requested_model: str
    turns: int
    experiment: Experiment | None = None
    production: ProductionModel | None = None


@dataclass(frozen=True)
class SessionPlan:
    person: Person
    start_us: int
    segments: tuple[Segment, ...]
    mode: str = "code"
    has_session_id: bool = True
    steps_per_turn: int | None = None  # None: random
    rows: RequestRows = RequestRows.ONE  # for the session's experiment requests
    prompt: PromptState | None = None  # forced for every experiment request; None: mostly stored
    unknown_version: bool = False  # the logged version id resolves to nothing
    delivery: Delivery = Delivery.ONCE  # for the session's first request
    opener: bool = False  # the first turn is the stock /init message (identical bodies dedup)
    huge: bool = False  # one request whose body exceeds the 4 MiB cap
    showcase: tuple[PlantFactory, ...] = ()  # one tool step per factory, in order


@dataclass
class Request:
    """One gateway request as intended: the usage row, its experiment row(s) and its blobs."""

    usage_id: str
    created_us: int
    person: Person
    session_id: str | None
    turn_id: str
    requested_model: str
    production: ProductionModel | None
    experiment: Experiment | None
    variant: Variant | None
    version_id: str | None
    reported_model: str
    subject_kind: str | None
    rows: RequestRows
    prompt: PromptState | None
    body: bytes | None  # the stored (capped) body, or None
    body_sha: str | None
    truncated: bool
    response: bytes | None
    plants: tuple[PlantedItem, ...]
    input_tokens: int
    output_tokens: int
    cache_hit_tokens: int
    latency_ms: int
    status_code: int
    streamed: bool
    cancelled: bool
    rating: str | None = None
    delivery: Delivery = Delivery.ONCE


@dataclass(frozen=True)
class FeedbackEvent:
    timestamp_us: int
    rating: str
    turn_id: str
    message_id: str
    session_id: str | None
    model: str


@dataclass
class SessionOutput:
    requests: list[Request] = field(default_factory=list)
    feedback: list[FeedbackEvent] = field(default_factory=list)


@dataclass
class _Step:
    """What a step sends: the body (None for production sessions without content) and its prompt fate."""

    body: bytes | None
    sha: str | None
    truncated: bool
    prompt: PromptState | None


def _delivered(out: SessionOutput, plan: SessionPlan) -> SessionOutput:
    """The plan's delivery applies to the session's first request."""
    if out.requests:
        out.requests[0].delivery = plan.delivery
    return out


class SessionBuilder:
    """Turns session plans into requests; stops a session at the end of the window."""

    def __init__(self, content: AgentContent, end_us: int) -> None:
        self.content = content
        self.end_us = end_us

    def build(self, plan: SessionPlan, rng: random.Random, ids: Ids) -> SessionOutput:
        out = SessionOutput()
        needs_content = any(s.experiment is not None for s in plan.segments)
        conversation = Conversation.start(plan.mode) if needs_content else None
        session_id = ids.session_id() if plan.has_session_id else None
        project = f"{rng.choice(('api', 'web', 'cli', 'infra'))}-{ids.token(6).lower()}"
        showcase = list(plan.showcase)
        t = plan.start_us
        for s_index, segment in enumerate(plan.segments):
            for turn in range(segment.turns):
                first = s_index == 0 and turn == 0
                t += 0 if first else rng.randint(20 * SECOND, 8 * MINUTE)
                turn_id = ids.message_id()
                if conversation is not None:
                    if plan.huge:
                        conversation = _huge_conversation(plan.mode, segment.requested_model)
                    elif first and plan.opener:
                        conversation.add(self.content.opener())
                    else:
                        conversation.add(self.content.user_message(rng, project, rfc3339(t)))
                steps = len(showcase) + 1 if showcase else plan.steps_per_turn or _steps(rng)
                turn_requests: list[Request] = []
                for k in range(steps):
                    t += rng.randint(200_000, 4 * SECOND)
                    if t >= self.end_us:
                        out.requests.extend(turn_requests)
                        return _delivered(out, plan)
                    final = k == steps - 1
                    plant = _next_plant(rng, ids, showcase) if not final else None
                    if final:
                        message, tool_message = self.content.answer(rng), None
                    else:
                        message, tool_message = self.content.tool_step(rng, ids, plant)
                    step = _step(plan, segment, conversation, rng, unique=not (first and plan.opener and k == 0))
                    for attempt in _attempts(rng):
                        request = self._request(plan, segment, session_id, turn_id, t, step, message, attempt, rng, ids)
                        request.plants = tuple(conversation.plants) if conversation and request.body else ()
                        turn_requests.append(request)
                        t += request.latency_ms * 1000 + (rng.randint(SECOND, 20 * SECOND) if attempt else 0)
                    if conversation is not None:
                        conversation.add(message)
                        if tool_message is not None:
                            conversation.add(tool_message, plant)
                events = _feedback(rng, ids, t, turn_id, session_id, segment.requested_model, self.end_us)
                rating = _latest_rating(events)
                for request in turn_requests:
                    request.rating = rating
                out.requests.extend(turn_requests)
                out.feedback.extend(events)
        return _delivered(out, plan)

    def _request(
        self,
        plan: SessionPlan,
        segment: Segment,
        session_id: str | None,
        turn_id: str,
        t: int,
        step: _Step,
        message: dict[str, object],
        failed_attempt: bool,
        rng: random.Random,
        ids: Ids,
    ) -> Request:
        experiment = segment.experiment
        variant = version_id = subject_kind = None
        if experiment is not None:
            person = plan.person
            subject = allocation_subject(person.user_id, person.machine_id, person.ip)
            assert subject is not None, "every synthetic person has an IP"
            subject_kind = subject[0]
            variant = choose_variant(experiment.id, subject[0], subject[1], experiment.variants)
            version = variant.version_at(to_datetime(t))
            version_id = ids.uuid4() if plan.unknown_version else version.id
            reported = version.internal_id
        else:
            assert segment.production is not None
            reported = segment.production.reported
        input_tokens = len(step.body) // 4 if step.body else rng.randint(2_000, 60_000)
        output_tokens = 0 if failed_attempt else rng.randint(20, 1_200)
        response = None
        if experiment is not None and not failed_attempt:
            response = completion(ids, segment.requested_model, message, input_tokens, output_tokens, t // SECOND)
        return Request(
            usage_id=ids.uuid4(),
            created_us=t,
            person=plan.person,
            session_id=session_id,
            turn_id=turn_id,
            requested_model=segment.requested_model,
            production=segment.production,
            experiment=experiment,
            variant=None if plan.unknown_version else variant,
            version_id=version_id,
            reported_model=reported,
            subject_kind=subject_kind,
            rows=plan.rows if experiment is not None else RequestRows.NONE,
            prompt=step.prompt if experiment is not None else None,
            body=step.body if step.prompt is PromptState.STORED else None,
            body_sha=step.sha,
            truncated=step.truncated,
            response=response,
            plants=(),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_hit_tokens=int(input_tokens * rng.uniform(0.5, 0.95)) if rng.random() < 0.7 else 0,
            latency_ms=rng.randint(400, 3_000) if failed_attempt else rng.randint(800, 25_000),
            status_code=rng.choice((429, 500, 503)) if failed_attempt else 200,
            streamed=rng.random() < 0.9,
            cancelled=not failed_attempt and rng.random() < 0.01,
        )


def _steps(rng: random.Random) -> int:
    steps = 1
    while steps < 8 and rng.random() < 0.6:
        steps += 1
    return steps


def _next_plant(rng: random.Random, ids: Ids, showcase: list[PlantFactory]) -> Plant | None:
    if showcase:
        return showcase.pop(0)(ids)
    return random_plant(rng, ids) if rng.random() < PLANT_RATE else None


def _attempts(rng: random.Random) -> tuple[bool, ...]:
    """``(True, False)`` when the first attempt fails and the client retries the same body."""
    return (True, False) if rng.random() < RETRY_RATE else (False,)


def _step(
    plan: SessionPlan, segment: Segment, conversation: Conversation | None, rng: random.Random, unique: bool
) -> _Step:
    """The body a step sends and what becomes of it; only unique bodies can lose their prompt."""
    if conversation is None or segment.experiment is None:
        return _Step(None, None, False, None)
    body = capped_blob(PROMPTS_PREFIX, conversation.body(segment.requested_model))
    prompt = plan.prompt or PromptState.STORED
    if plan.prompt is None and unique and rng.random() < 3 * RANDOM_PROMPT_LOSS:
        prompt = rng.choice((PromptState.FAILED, PromptState.DELETED, PromptState.LOST))
    return _Step(body.data, body.sha256, body.truncated, prompt)


def _huge_conversation(mode: str, model: str) -> Conversation:
    """A conversation whose body overflows the cap with the cut falling inside a multi-byte character."""
    for pad in range(4):
        conversation = Conversation.start(mode)
        log = huge_log(BLOB_CAP_BYTES + 256 * 1024, pad)
        conversation.add({"role": "user", "content": f"<task>\nThe importer crashes; the full log:\n{log}</task>"})
        if conversation.body(model)[BLOB_CAP_BYTES] & 0xC0 == 0x80:
            return conversation
    raise AssertionError("no padding puts the cap inside a multi-byte character")


def _feedback(
    rng: random.Random, ids: Ids, after_us: int, turn_id: str, session_id: str | None, model: str, end_us: int
) -> list[FeedbackEvent]:
    """Thumbs for a turn: sometimes one event, sometimes changed or cleared later (latest wins)."""
    if rng.random() >= FEEDBACK_RATE:
        return []
    events = []
    t = after_us
    for index in range(rng.choices((1, 2, 3), weights=(70, 20, 10))[0]):
        t += rng.randint(5 * SECOND, 30 * MINUTE)
        if t >= end_us:
            break
        rating = rng.choice(("up", "down")) if index == 0 else rng.choice(("up", "down", "cleared"))
        events.append(FeedbackEvent(t, rating, turn_id, ids.message_id(), session_id, model))
    return events


def _latest_rating(events: list[FeedbackEvent]) -> str | None:
    if not events:
        return None
    latest = max(events, key=lambda e: e.timestamp_us).rating
    return None if latest == "cleared" else latest
