"""Experiment allocation exactly as the gateway does it (CONTRACT.md §5).

Everything that must agree bit for bit with the gateway lives here: the seed string, the bucket,
the variant walk and the choice of the version in force.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypeVar
from uuid import UUID

SUBJECT_KINDS = ("user", "machine", "ip")
MACHINE_ID_MAX_CHARS = 500


class WeightedVariant(Protocol):
    @property
    def id(self) -> UUID | str: ...

    @property
    def weight(self) -> int: ...


class DatedVersion(Protocol):
    @property
    def id(self) -> UUID | str: ...

    @property
    def effective_at(self) -> datetime: ...


V = TypeVar("V", bound=WeightedVariant)
T = TypeVar("T", bound=DatedVersion)


def canonical_uuid(value: UUID | str) -> str:
    """Lowercase canonical text of a uuid."""
    return str(value if isinstance(value, UUID) else UUID(str(value)))


def allocation_seed(experiment_id: UUID | str, subject: str, value: str) -> str:
    """``model_exp_<experiment uuid>_<subject>_<value>``."""
    if subject not in SUBJECT_KINDS:
        raise ValueError(f"subject must be one of {SUBJECT_KINDS}, got {subject!r}")
    return f"model_exp_{canonical_uuid(experiment_id)}_{subject}_{value}"


def bucket(seed: str, total_weight: int) -> int:
    """First 4 bytes of SHA-256(UTF-8(seed)) as an unsigned big-endian integer, modulo the weights."""
    if total_weight <= 0:
        raise ValueError("total weight must be positive")
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % total_weight


def choose_variant(experiment_id: UUID | str, subject: str, value: str, variants: Sequence[V]) -> V:
    """The variant a subject is bucketed into: walk variants in uuid order, first cumulative weight > bucket."""
    if not variants:
        raise ValueError("an experiment needs at least one variant")
    ordered = sorted(variants, key=lambda v: UUID(str(v.id)).bytes)
    point = bucket(allocation_seed(experiment_id, subject, value), sum(v.weight for v in ordered))
    cumulative = 0
    for variant in ordered:
        cumulative += variant.weight
        if cumulative > point:
            return variant
    raise AssertionError("unreachable: bucket is below the total weight")


def version_in_force(versions: Sequence[T], now: datetime) -> T | None:
    """The latest version with ``effective_at <= now``, ties broken by the larger id; None if none yet."""
    live = [v for v in versions if v.effective_at <= now]
    if not live:
        return None
    return max(live, key=lambda v: (v.effective_at, UUID(str(v.id)).bytes))


def allocation_subject(user_id: str | None, machine_id: str | None, client_ip: str | None) -> tuple[str, str] | None:
    """Subject precedence user → machine (first 500 chars, trimmed) → ip; empty values are skipped."""
    if user_id:
        return "user", user_id
    if machine_id is not None:
        machine = machine_id[:MACHINE_ID_MAX_CHARS].strip()
        if machine:
            return "machine", machine
    if client_ip:
        return "ip", client_ip
    return None
