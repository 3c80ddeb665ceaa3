"""A small landing zone written case by case, for tests that state each export rule on its own."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tracedrop.schemas.landing import (
    EXPERIMENT_PROVIDER,
    EXPERIMENT_REQUESTS,
    FEEDBACK,
    FEEDBACK_EVENT,
    MODEL_EXPERIMENT,
    MODEL_EXPERIMENT_VARIANT,
    MODEL_EXPERIMENT_VARIANT_VERSION,
    OPT_OUTS,
    PROMPTS_PREFIX,
    RESPONSES_PREFIX,
    USAGE,
    partition_dir,
)
from tracedrop.storage.landing_writer import blob, jsonl, line
from tracedrop.storage.objectstore import ObjectStore

ACME_EXPERIMENT = "3f1c2a9e-8b7d-4c6e-9a1b-2d3e4f5a6b7c"
ACME_CONTROL = "11111111-1111-4111-8111-111111111111"
ACME_CANDIDATE = "22222222-2222-4222-8222-222222222222"
ACME_V1 = "0a000000-0000-4000-8000-000000000001"
ACME_V2 = "0a000000-0000-4000-8000-000000000002"
BETA_EXPERIMENT = "7b2d4c6e-1a3f-4b5d-8e9f-0a1b2c3d4e5f"
BETA_VARIANT = "33333333-3333-4333-8333-333333333333"
BETA_V1 = "0b000000-0000-4000-8000-000000000001"
DRAFT_EXPERIMENT = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
DRAFT_VARIANT = "44444444-4444-4444-8444-444444444444"
DRAFT_V1 = "0c000000-0000-4000-8000-000000000001"

START = datetime.fromisoformat("2026-11-01T00:00:00+00:00")
DT = "2026-11-03"  # the day most export tests export
NOON = START + timedelta(days=2, hours=12)  # midday of DT


def chat_body(text: str, model: str = "acme-rc1") -> str:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": text}]})


@dataclass
class LandingBuilder:
    """Collects experiments and requests, then writes them as landing-zone files."""

    experiments: list[dict] = field(default_factory=list)
    variants: list[dict] = field(default_factory=list)
    versions: list[dict] = field(default_factory=list)
    lines: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    blobs: dict[str, bytes] = field(default_factory=dict)
    opt_outs: list[dict] = field(default_factory=list)
    counter: int = 0

    @classmethod
    def with_default_experiments(cls) -> LandingBuilder:
        """acme (active, two variants, a hot-swap), beta (another partner's) and a draft experiment."""
        builder = cls()
        builder.experiment(ACME_EXPERIMENT, "preview/acme-coder", "active", START)
        builder.variant(ACME_CONTROL, ACME_EXPERIMENT, "control", 2)
        builder.variant(ACME_CANDIDATE, ACME_EXPERIMENT, "candidate", 1)
        builder.version(ACME_V1, ACME_CONTROL, "acme-rc1", START)
        builder.version(ACME_V2, ACME_CANDIDATE, "acme-rc2", START)
        builder.experiment(BETA_EXPERIMENT, "preview/beta-chat", "active", START)
        builder.variant(BETA_VARIANT, BETA_EXPERIMENT, "only", 1)
        builder.version(BETA_V1, BETA_VARIANT, "beta-7b", START)
        builder.experiment(DRAFT_EXPERIMENT, "preview/draft-model", "draft", None)
        builder.variant(DRAFT_VARIANT, DRAFT_EXPERIMENT, "only", 1)
        builder.version(DRAFT_V1, DRAFT_VARIANT, "draft-1", START)
        return builder

    def experiment(
        self, id: str, public_model_id: str, status: str, started: datetime | None, ended: datetime | None = None
    ) -> None:
        self.experiments.append(
            line(
                MODEL_EXPERIMENT,
                {
                    "id": id,
                    "public_model_id": public_model_id,
                    "name": public_model_id,
                    "status": status,
                    "started_at": started,
                    "ended_at": ended,
                    "created_at": START - timedelta(days=10),
                    "updated_at": START - timedelta(days=10),
                    "is_archived": False,
                },
            )
        )

    def variant(self, id: str, experiment_id: str, label: str, weight: int) -> None:
        fields = {"id": id, "experiment_id": experiment_id, "label": label, "weight": weight}
        self.variants.append(line(MODEL_EXPERIMENT_VARIANT, fields))

    def version(self, id: str, variant_id: str, internal_id: str, effective_at: datetime, **upstream: object) -> None:
        """A version; ``upstream`` adds keys to its upstream object (such as a credential the reader must drop)."""
        fields = {
            "id": id,
            "variant_id": variant_id,
            "internal_id": internal_id,
            "base_url": "http://upstream.internal/v1",
            "effective_at": effective_at,
            "created_at": effective_at,
        }
        self.versions.append(line(MODEL_EXPERIMENT_VARIANT_VERSION, fields, extra={"upstream": upstream}))

    def blob(self, prefix: str, text: str) -> str:
        """Store ``text`` as it is (over the cap too: the export must cut it) and return its sha256."""
        stored = blob(prefix, text.encode())
        self.blobs[stored.key] = stored.data
        return stored.sha256

    def request(
        self,
        at: datetime,
        *,
        model: str = "preview/acme-coder",
        version: str | None = ACME_V1,
        user: str = "user-1",
        machine: str | None = None,
        ip: str = "203.0.113.9",
        org: str | None = "org-9",
        session: str | None = None,
        turn: str | None = None,
        prompt: str | None = None,
        prompt_hash: str | None = None,
        response: str | None = "ok",
        request_rows: int = 1,
        subject: str = "user",
    ) -> str:
        """One gateway request (usage row, and experiment_requests rows when ``version`` is given)."""
        self.counter += 1
        usage_id = str(uuid.UUID(int=self.counter, version=4))
        dt = at.date().isoformat()
        response_hash = (
            self.blob(RESPONSES_PREFIX, json.dumps({"choices": [{"message": {"content": response}}]}))
            if response
            else None
        )
        usage = {
            "id": usage_id,
            "created_at": at,
            "kilo_user_id": user,
            "requested_model": model,
            "model": "internal",
            "provider": EXPERIMENT_PROVIDER if version else "openrouter",
            "input_tokens": 10,
            "output_tokens": 3,
            "cache_write_tokens": 0,
            "cache_hit_tokens": 0,
            "cost": 17,
            "has_error": False,
            "status_code": 200,
            "latency": 120.0,
            "streamed": False,
            "cancelled": False,
            "session_id": session,
            "machine_id": machine,
            "client_ip": ip,
            "organization_id": org,
            "response_body_sha256": response_hash,
        }
        self.lines[f"{partition_dir(USAGE, dt)}/part-0.jsonl"].append(_text(line(USAGE, usage)))
        if version:
            digest = prompt_hash or self.blob(PROMPTS_PREFIX, chat_body(prompt or f"request {self.counter}"))
            row = {
                "usage_id": usage_id,
                "created_at": at,
                "variant_version_id": version,
                "allocation_subject": subject,
                "client_request_id": turn,
                "request_kind": "chat_completions",
                "request_body_sha256": digest,
                "was_truncated": False,
            }
            for _ in range(request_rows):
                key = f"{partition_dir(EXPERIMENT_REQUESTS, dt)}/part-0.jsonl"
                self.lines[key].append(_text(line(EXPERIMENT_REQUESTS, row)))
        return usage_id

    def feedback(self, at: datetime, turn: str, rating: str) -> None:
        event = {
            "event": FEEDBACK_EVENT,
            "timestamp": at,
            "rating": rating,
            "parent_message_id": turn,
            "message_id": "m",
            "session_id": "s",
        }
        key = f"{partition_dir(FEEDBACK, at.date().isoformat())}/part-0.jsonl"
        self.lines[key].append(_text(line(FEEDBACK, event)))

    def opt_out(self, subject: str, value: str, at: datetime) -> None:
        self.opt_outs.append(line(OPT_OUTS, {"subject": subject, "value": value, "recorded_at": at}))

    def raw_line(self, key: str, text: str) -> None:
        self.lines[key].append(text)

    def write(self, store: ObjectStore) -> None:
        """Write everything collected (the snapshot and opt-outs are rewritten whole)."""
        snapshot = {
            MODEL_EXPERIMENT.location: self.experiments,
            MODEL_EXPERIMENT_VARIANT.location: self.variants,
            MODEL_EXPERIMENT_VARIANT_VERSION.location: self.versions,
            OPT_OUTS.location: self.opt_outs,
        }
        for key, rows in snapshot.items():
            store.put(key, jsonl(rows))
        for key, lines in self.lines.items():
            store.put(key, "".join(line + "\n" for line in lines).encode())
        for key, data in self.blobs.items():
            store.put_if_absent(key, data)


def _text(row: dict) -> str:
    return jsonl([row]).decode().rstrip("\n")


def partners_yaml(destination: str, beta_eval: bool = True) -> str:
    return f"""
partners:
  - id: acme
    name: Acme Models
    experiments: [{ACME_EXPERIMENT}, {DRAFT_EXPERIMENT}]
    eval_program: true
    destination: {destination}
    subject_salt_env: TRACEDROP_SALT_ACME
  - id: beta
    name: Beta Labs
    experiments: [{BETA_EXPERIMENT}]
    eval_program: {"true" if beta_eval else "false"}
    destination: {destination}
    subject_salt_env: TRACEDROP_SALT_BETA
"""
