"""The fixed scenario: partners' experiments (variants, versions, a hot-swap) and production models.

Experiment ids are fixed so that the shipped demo registry (``partners.yaml``) owns them; times are
placed relative to the generated window so that every status and routing edge falls inside it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path

from tracedrop.pipelines.synth.clock import to_us
from tracedrop.schemas.bucketing import version_in_force
from tracedrop.schemas.landing import MODEL_EXPERIMENT, MODEL_EXPERIMENT_VARIANT, MODEL_EXPERIMENT_VARIANT_VERSION
from tracedrop.schemas.partners import Partner, PartnerRegistry, load_partner_registry
from tracedrop.storage.landing_writer import line

PARTNERS_YAML = Path(__file__).with_name("partners.yaml")

ACME_CODER = "3f1c2a9e-8b7d-4c6e-9a1b-2d3e4f5a6b7c"  # active, 3 variants, hot-swap mid-window
ACME_FAST = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"  # paused a third into the window
ACME_NEXT = "6c7d8e9f-0a1b-4c2d-9e3f-4a5b6c7d8e9f"  # draft, yet receives internal traffic
BETA_LARGE = "7b2d4c6e-1a3f-4b5d-8e9f-0a1b2c3d4e5f"  # active, starts 6 h into the window
BETA_MINI = "8e9f0a1b-2c3d-4e5f-a6b7-c8d9e0f1a2b3"  # completed half-way through the window
GAMMA_CODER = "9a0b1c2d-3e4f-4a5b-b6c7-d8e9f0a1b2c3"  # owned by a partner outside the eval program

_ID_NAMESPACE = uuid.UUID("6f0d7a52-3c1e-4b8e-9d7a-5e2f1c0b9a88")


def fixed_id(name: str) -> str:
    """A stable uuid for a named scenario object (variant or version)."""
    return str(uuid.uuid5(_ID_NAMESPACE, name))


@dataclass(frozen=True)
class Version:
    id: str
    variant_id: str
    internal_id: str
    base_url: str
    effective_at: datetime


@dataclass(frozen=True)
class Variant:
    id: str
    experiment_id: str
    label: str
    weight: int
    versions: tuple[Version, ...]

    def version_at(self, when: datetime) -> Version:
        """The version in force at ``when`` (every scenario version is effective before any traffic)."""
        version = version_in_force(self.versions, when)
        if version is None:
            raise AssertionError(f"variant {self.id} has no version in force at {when.isoformat()}")
        return version


@dataclass(frozen=True)
class Experiment:
    id: str
    public_model_id: str
    name: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    updated_at: datetime
    variants: tuple[Variant, ...]
    traffic_until: datetime | None = None  # the gateway stops routing (paused) at this moment

    def routing_at(self, when: datetime) -> bool:
        """Rule 4: not draft, and ``started_at <= when < coalesce(ended_at, +inf)``."""
        if self.status == "draft" or self.started_at is None or when < self.started_at:
            return False
        return self.ended_at is None or when < self.ended_at

    def serves_at(self, when: datetime) -> bool:
        """Whether the gateway would still route a new session to this experiment."""
        return self.traffic_until is None or when < self.traffic_until


@dataclass(frozen=True)
class ProductionModel:
    public_id: str
    provider: str
    reported: str
    weight: int


PRODUCTION_MODELS = (
    ProductionModel("anthropic/claude-sonnet-4.5", "anthropic", "claude-sonnet-4-5-20250929", 34),
    ProductionModel("openai/gpt-5", "openai", "gpt-5-2025-08-07", 18),
    ProductionModel("google/gemini-2.5-pro", "google", "gemini-2.5-pro", 12),
    ProductionModel("x-ai/grok-code-fast-1", "xai", "grok-code-fast-1", 14),
    ProductionModel("qwen/qwen3-coder", "alibaba", "qwen3-coder-480b-a35b-instruct", 9),
    ProductionModel("kilo/auto", "anthropic", "claude-haiku-4-5-20251001", 13),
)


@dataclass(frozen=True)
class Scenario:
    """Experiments, the registry that owns them, the production models and the key moments."""

    start: datetime
    end: datetime
    experiments: dict[str, Experiment]
    registry: PartnerRegistry
    opt_out_at: datetime

    @property
    def start_us(self) -> int:
        return to_us(self.start)

    @property
    def end_us(self) -> int:
        return to_us(self.end)

    def owner(self, experiment_id: str) -> Partner | None:
        return self.registry.owner_of(experiment_id)

    @cached_property
    def version_index(self) -> dict[str, tuple[Variant, Experiment]]:
        """Version id → (variant, experiment), as the pipeline resolves it through the snapshot."""
        return {
            version.id: (variant, experiment)
            for experiment in self.experiments.values()
            for variant in experiment.variants
            for version in variant.versions
        }


def _variant(
    experiment_id: str, slug: str, label: str, weight: int, checkpoints: list[tuple[str, datetime]]
) -> Variant:
    variant_id = fixed_id(f"{slug}/{label}")
    host = slug.split("-")[0]
    versions = tuple(
        Version(fixed_id(f"{slug}/{label}/{internal}"), variant_id, internal, f"https://api.{host}.example/v1", at)
        for internal, at in checkpoints
    )
    return Variant(variant_id, experiment_id, label, weight, versions)


def build_scenario(start: datetime, days: int, registry_path: Path = PARTNERS_YAML) -> Scenario:
    """The scenario for a window of ``days`` days from ``start`` (midnight UTC)."""
    end = start + timedelta(days=days)
    window = end - start
    early = start - timedelta(days=14)
    hot_swap = start + window / 2 + timedelta(hours=3)

    paused_at = start + window / 3
    completed_at = start + window / 2
    created = early - timedelta(days=7)
    experiments = [
        Experiment(
            ACME_CODER,
            "preview/acme-coder",
            "Acme Coder RC bake-off",
            "active",
            early,
            None,
            created,
            hot_swap,
            variants=(
                _variant(ACME_CODER, "acme-coder", "control", 5, [("acme-coder-rc1", early)]),
                _variant(
                    ACME_CODER, "acme-coder", "candidate", 3, [("acme-coder-rc2", early), ("acme-coder-rc3", hot_swap)]
                ),
                _variant(ACME_CODER, "acme-coder", "long-context", 2, [("acme-coder-rc2-128k", early)]),
            ),
        ),
        Experiment(
            ACME_FAST,
            "preview/acme-fast",
            "Acme Fast latency test",
            "paused",
            early,
            None,
            created,
            paused_at,
            variants=(
                _variant(ACME_FAST, "acme-fast", "baseline", 1, [("acme-fast-v1", early)]),
                _variant(ACME_FAST, "acme-fast", "distilled", 2, [("acme-fast-v2-distill", early)]),
            ),
            traffic_until=paused_at,
        ),
        Experiment(
            ACME_NEXT,
            "preview/acme-next",
            "Acme Next (not launched)",
            "draft",
            None,
            None,
            created,
            created,
            variants=(_variant(ACME_NEXT, "acme-next", "only", 1, [("acme-next-alpha", early)]),),
        ),
        Experiment(
            BETA_LARGE,
            "preview/beta-large",
            "Beta Large eval",
            "active",
            start + timedelta(hours=6),
            None,
            created,
            created,
            variants=(
                _variant(BETA_LARGE, "beta-large", "a", 3, [("beta-large-0915", early)]),
                _variant(BETA_LARGE, "beta-large", "b", 1, [("beta-large-1002", early)]),
            ),
        ),
        Experiment(
            BETA_MINI,
            "preview/beta-mini",
            "Beta Mini eval",
            "completed",
            early,
            completed_at,
            created,
            completed_at,
            variants=(
                _variant(BETA_MINI, "beta-mini", "small", 2, [("beta-mini-3b", early)]),
                _variant(BETA_MINI, "beta-mini", "tiny", 1, [("beta-mini-1b", early)]),
            ),
        ),
        Experiment(
            GAMMA_CODER,
            "preview/gamma-coder",
            "Gamma Coder trial",
            "active",
            early,
            None,
            created,
            created,
            variants=(
                _variant(GAMMA_CODER, "gamma-coder", "g1", 2, [("gamma-coder-g1", early)]),
                _variant(GAMMA_CODER, "gamma-coder", "g2", 1, [("gamma-coder-g2", early)]),
            ),
        ),
    ]
    return Scenario(
        start=start,
        end=end,
        experiments={e.id: e for e in experiments},
        registry=load_partner_registry(registry_path),
        opt_out_at=start + window / 2 + timedelta(minutes=17),
    )


def snapshot_rows(scenario: Scenario) -> dict[str, list[dict[str, object]]]:
    """The ``experiments/`` snapshot as rows per record type name (never a key)."""
    experiments, variants, versions = [], [], []
    for e in scenario.experiments.values():
        experiments.append(
            line(
                MODEL_EXPERIMENT,
                {
                    "id": e.id,
                    "public_model_id": e.public_model_id,
                    "name": e.name,
                    "status": e.status,
                    "started_at": e.started_at,
                    "ended_at": e.ended_at,
                    "created_at": e.created_at,
                    "updated_at": e.updated_at,
                    "is_archived": False,
                },
            )
        )
        for v in e.variants:
            variant = {"id": v.id, "experiment_id": e.id, "label": v.label, "weight": v.weight}
            variants.append(line(MODEL_EXPERIMENT_VARIANT, variant))
            for ver in v.versions:
                versions.append(
                    line(
                        MODEL_EXPERIMENT_VARIANT_VERSION,
                        {
                            "id": ver.id,
                            "variant_id": v.id,
                            "internal_id": ver.internal_id,
                            "base_url": ver.base_url,
                            "effective_at": ver.effective_at,
                            "created_at": ver.effective_at,
                        },
                    )
                )
    return {
        MODEL_EXPERIMENT.name: experiments,
        MODEL_EXPERIMENT_VARIANT.name: variants,
        MODEL_EXPERIMENT_VARIANT_VERSION.name: versions,
    }
