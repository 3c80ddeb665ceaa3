"""The bundled proxy's configuration (CONTRACT.md §5) as pydantic models."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tracedrop.schemas.config_errors import Versioned, load_yaml_model
from tracedrop.schemas.partners import ENV_NAME_PATTERN

PROXY_CONFIG_SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Upstream(_Strict):
    """Where a request goes: the OpenAI-style base URL, the model id it knows, the env var of its key."""

    base_url: str = Field(pattern=r"^https?://")
    internal_id: str = Field(min_length=1)
    api_key_env: str | None = Field(default=None, pattern=ENV_NAME_PATTERN)
    extra_body: dict[str, Any] | None = None
    remove_from_body: tuple[str, ...] = ()

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


class Route(_Strict):
    """A plain (non-experiment) model id forwarded as configured."""

    model: str = Field(min_length=1)
    upstream: Upstream


class Version(_Strict):
    """An immutable checkpoint of a variant, in force from ``effective_at``."""

    id: UUID
    effective_at: datetime
    created_at: datetime | None = None
    upstream: Upstream

    @field_validator("effective_at", "created_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamps need an explicit UTC offset, e.g. 2026-11-01T00:00:00Z")
        return value


class Variant(_Strict):
    id: UUID
    label: str = Field(min_length=1)
    weight: int = Field(gt=0)
    versions: tuple[Version, ...] = Field(min_length=1)


class Experiment(_Strict):
    id: UUID
    public_model_id: str = Field(min_length=1)
    name: str | None = None
    status: Literal["draft", "active", "paused", "completed"]
    started_at: datetime | None = None
    ended_at: datetime | None = None
    variants: tuple[Variant, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_variants(self) -> Experiment:
        ids = [v.id for v in self.variants]
        if len(set(ids)) != len(ids):
            raise ValueError(f"experiment {self.id}: variant ids must be unique")
        return self


class Client(_Strict):
    """A known client: requests whose bearer token hashes to ``token_sha256`` belong to ``user_id``."""

    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    user_id: str = Field(min_length=1)


class ProxyConfig(_Strict, Versioned):
    """Everything the proxy routes by."""

    SUPPORTED_VERSIONS = (PROXY_CONFIG_SCHEMA_VERSION,)

    trust_forwarded_for: bool = False
    clients: tuple[Client, ...] = ()
    routes: tuple[Route, ...] = ()
    experiments: tuple[Experiment, ...] = ()

    @model_validator(mode="after")
    def _unambiguous(self) -> ProxyConfig:
        routable: dict[str, str] = {}
        for route in self.routes:
            key = route.model.lower()
            if key in routable:
                raise ValueError(f"model {route.model!r} is configured twice")
            routable[key] = "route"
        for experiment in self.experiments:
            if experiment.status not in ("active", "paused"):
                continue
            key = experiment.public_model_id.lower()
            if key in routable:
                raise ValueError(
                    f"model {experiment.public_model_id!r} has more than one active/paused experiment or route"
                )
            routable[key] = str(experiment.id)
        return self


def load_proxy_config(path: str | Path) -> ProxyConfig:
    """Read and validate a proxy config YAML file; ConfigError names file and field."""
    return load_yaml_model(path, ProxyConfig)
