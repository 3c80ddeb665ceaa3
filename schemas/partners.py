"""The partner registry of CONTRACT.md §2 as a pydantic model."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlparse
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tracedrop.schemas.config_errors import ConfigError, Versioned, load_yaml_model
from tracedrop.schemas.settings import secret

PARTNER_REGISTRY_SCHEMA_VERSION = 1
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Partner(BaseModel):
    """One model-provider partner: which experiments it owns and where its drops go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9-]+$")
    name: str = Field(min_length=1)
    experiments: tuple[UUID, ...] = ()
    eval_program: bool
    destination: str = Field(min_length=1)
    subject_salt_env: str = Field(pattern=ENV_NAME_PATTERN)
    webhook_url: str | None = None
    webhook_secret_env: str | None = Field(default=None, pattern=ENV_NAME_PATTERN)
    retention_days: int | None = Field(default=None, ge=1, le=36_500, strict=True)  # absent: drops kept forever

    @field_validator("destination")
    @classmethod
    def _destination_is_url(cls, value: str) -> str:
        """An s3:// URL as given; a local path or file:// URL as an absolute path (resolved at load time,
        so records of where partitions went never depend on a later working directory)."""
        if value.startswith("s3://"):
            return value.rstrip("/")
        if re.match(r"^[a-z][a-z0-9+.-]*://", value) and not value.startswith("file://"):
            raise ValueError("destination must be a local path, a file:// URL or an s3://bucket/prefix URL")
        path = unquote(urlparse(value).path) if value.startswith("file://") else value
        return str(Path(path).expanduser().absolute())

    @property
    def experiment_ids(self) -> tuple[str, ...]:
        """Owned experiment ids as lowercase canonical uuid text."""
        return tuple(str(e) for e in self.experiments)

    def salt(self, environ: dict[str, str] | None = None) -> bytes:
        """The partner's pseudonymisation secret from its environment variable; error if unset."""
        value = secret(self.subject_salt_env, environ)
        if not value:
            raise ConfigError(
                f"partner {self.id!r}: environment variable {self.subject_salt_env} (subject_salt_env) "
                "is not set; it must hold the partner's pseudonymisation secret"
            )
        return value.encode("utf-8")


class PartnerRegistry(Versioned):
    """All partners; an experiment belongs to at most one partner."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    SUPPORTED_VERSIONS = (PARTNER_REGISTRY_SCHEMA_VERSION,)

    partners: tuple[Partner, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> PartnerRegistry:
        if not self.partners:
            raise ValueError("the registry lists no partners: add at least one (an empty registry exports nothing)")
        seen_ids: set[str] = set()
        owner: dict[str, str] = {}
        salt_env: dict[str, str] = {}
        for partner in self.partners:
            if partner.subject_salt_env in salt_env:
                raise ValueError(
                    f"partners {salt_env[partner.subject_salt_env]!r} and {partner.id!r} share subject_salt_env "
                    f"{partner.subject_salt_env}: each partner needs its own salt, or their pseudonyms would join"
                )
            salt_env[partner.subject_salt_env] = partner.id
            if partner.id in seen_ids:
                raise ValueError(f"partner id {partner.id!r} appears more than once")
            seen_ids.add(partner.id)
            for experiment in partner.experiment_ids:
                if experiment in owner:
                    raise ValueError(
                        f"experiment {experiment} is claimed by both {owner[experiment]!r} and {partner.id!r}"
                    )
                owner[experiment] = partner.id
        return self

    def check_distinct_salts(self, environ: dict[str, str] | None = None) -> None:
        """ConfigError when two partners' salts (those that are set) have the same value at run time."""
        seen: dict[str, Partner] = {}
        for partner in self.partners:
            value = secret(partner.subject_salt_env, environ)
            if not value:
                continue
            if value in seen:
                first = seen[value]
                raise ConfigError(
                    f"partners {first.id!r} ({first.subject_salt_env}) and {partner.id!r} ({partner.subject_salt_env}) "
                    "have the same salt value: their pseudonyms would join across partners; give each its own secret"
                )
            seen[value] = partner

    def get(self, partner_id: str) -> Partner:
        """The partner with this id, or ConfigError listing the known ids."""
        for partner in self.partners:
            if partner.id == partner_id:
                return partner
        known = ", ".join(p.id for p in self.partners) or "none"
        raise ConfigError(f"unknown partner {partner_id!r} (the registry has: {known})")

    def owner_of(self, experiment_id: str) -> Partner | None:
        """The partner that owns ``experiment_id`` (any case), if any."""
        wanted = experiment_id.lower()
        for partner in self.partners:
            if wanted in partner.experiment_ids:
                return partner
        return None


def load_partner_registry(path: str | Path) -> PartnerRegistry:
    """Read and validate a partner registry YAML file; ConfigError names file and field."""
    return load_yaml_model(path, PartnerRegistry)
