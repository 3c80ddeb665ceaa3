"""Allocation agrees bit for bit with CONTRACT.md §5: fixed vectors and an independent re-implementation.

The expected values below were computed from the specification text alone (hashlib + struct),
not by calling :mod:`tracedrop.schemas.bucketing`.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracedrop.schemas.bucketing import allocation_seed, allocation_subject, bucket, choose_variant, version_in_force

EXPERIMENT = "3f1c2a9e-8b7d-4c6e-9a1b-2d3e4f5a6b7c"


@dataclass(frozen=True)
class V:
    id: str
    weight: int = 1


@dataclass(frozen=True)
class Ver:
    id: str
    effective_at: datetime


# Listed out of uuid order on purpose; walk order is B (5), C (2), A (3): cumulative 5, 7, 10.
VARIANT_A = V("ffffffff-0000-4000-8000-000000000000", 3)
VARIANT_B = V("00000000-0000-4000-8000-000000000001", 5)
VARIANT_C = V("80000000-0000-4000-8000-000000000000", 2)
UNEQUAL = [VARIANT_A, VARIANT_B, VARIANT_C]

# (subject, value, first 4 bytes of SHA-256(seed) in hex, bucket mod 10, variant served)
VECTORS = [
    ("user", "user-1", "ac4c5ca9", 9, VARIANT_A),
    ("machine", "Ünïcødé-机器-🚀", "13a28141", 5, VARIANT_C),
    ("ip", "203.0.113.7", "9a991c45", 9, VARIANT_A),
    ("user", "ユーザー", "91d81699", 1, VARIANT_B),
    ("machine", "m-42", "f1dad954", 0, VARIANT_B),
]


def reference_variant(experiment_id: str, subject: str, value: str, variants: list[V]) -> V:
    """CONTRACT.md §5 written out independently of the implementation."""
    seed = "model_exp_" + str(UUID(experiment_id)) + "_" + subject + "_" + value
    (first_word,) = struct.unpack(">I", hashlib.sha256(seed.encode("utf-8")).digest()[:4])
    point = first_word % sum(v.weight for v in variants)
    running = 0
    for variant in sorted(variants, key=lambda v: UUID(v.id).bytes):
        running += variant.weight
        if running > point:
            return variant
    raise AssertionError


@pytest.mark.parametrize(("subject", "value", "prefix", "point", "expected"), VECTORS)
def test_fixed_vectors(subject: str, value: str, prefix: str, point: int, expected: V) -> None:
    seed = allocation_seed(EXPERIMENT, subject, value)
    assert seed == f"model_exp_{EXPERIMENT}_{subject}_{value}"
    assert bucket(seed, 1 << 32) == int(prefix, 16)
    assert bucket(seed, 10) == point
    assert choose_variant(EXPERIMENT, subject, value, UNEQUAL) == expected


def test_the_seed_uses_the_lowercase_canonical_uuid() -> None:
    upper = EXPERIMENT.upper()
    assert allocation_seed(upper, "user", "u") == allocation_seed(UUID(EXPERIMENT), "user", "u")
    assert allocation_seed(upper, "user", "u") == f"model_exp_{EXPERIMENT}_user_u"


def test_variant_order_is_uuid_byte_order_not_config_order() -> None:
    for subject, value, *_ in VECTORS:
        assert choose_variant(EXPERIMENT, subject, value, UNEQUAL) == choose_variant(
            EXPERIMENT, subject, value, list(reversed(UNEQUAL))
        )


@given(
    subject=st.sampled_from(["user", "machine", "ip"]),
    value=st.text(min_size=1, max_size=40),
    drawn=st.lists(
        st.tuples(st.uuids(), st.integers(min_value=1, max_value=1000)),
        min_size=1,
        max_size=6,
        unique_by=lambda pair: pair[0],
    ),
    experiment=st.uuids(),
)
def test_matches_the_reference_for_any_subject_and_weights(
    subject: str, value: str, drawn: list[tuple[UUID, int]], experiment: UUID
) -> None:
    variants = [V(str(uuid), weight) for uuid, weight in drawn]
    expected = reference_variant(str(experiment), subject, value, variants)
    assert choose_variant(experiment, subject, value, variants) == expected


T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_version_in_force_is_the_latest_effective_one_with_ties_to_the_larger_id() -> None:
    old = Ver("0a000000-0000-4000-8000-000000000001", T0)
    tie_small = Ver("0a000000-0000-4000-8000-000000000002", T0 + timedelta(days=1))
    tie_large = Ver("0b000000-0000-4000-8000-000000000000", T0 + timedelta(days=1))
    future = Ver("0c000000-0000-4000-8000-000000000000", T0 + timedelta(days=9))
    versions = [future, tie_large, old, tie_small]
    assert version_in_force(versions, T0 - timedelta(seconds=1)) is None
    assert version_in_force(versions, T0) == old
    assert version_in_force(versions, T0 + timedelta(days=1)) == tie_large
    assert version_in_force(versions, T0 + timedelta(days=9)) == future


def test_subject_precedence_user_then_machine_then_ip() -> None:
    assert allocation_subject("u-1", "m-1", "10.0.0.1") == ("user", "u-1")
    assert allocation_subject(None, "m-1", "10.0.0.1") == ("machine", "m-1")
    assert allocation_subject("", "  ", "10.0.0.1") == ("ip", "10.0.0.1")
    assert allocation_subject(None, None, None) is None
    assert allocation_subject("", "", "") is None


def test_machine_id_is_cut_to_500_characters_then_trimmed() -> None:
    assert allocation_subject(None, "   " + "m" * 600, None) == ("machine", "m" * 497)
    assert allocation_subject(None, "é" * 499 + " tail", None) == ("machine", "é" * 499)
    assert allocation_subject(None, " " * 500 + "late", "10.0.0.1") == ("ip", "10.0.0.1")
