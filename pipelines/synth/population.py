"""Who sends requests: signed-in users, anonymous clients (``anon:<ip>``), their machines and IPs, and
the subjects that withdraw consent half-way through the window."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tracedrop.pipelines.synth.ids import Ids
from tracedrop.schemas.landing import OPT_OUTS
from tracedrop.storage.landing_writer import line

ANON_SHARE = 0.1
ANON_WITHOUT_MACHINE_SHARE = 0.4


@dataclass(frozen=True)
class Person:
    """One client: ``user_id`` is None when anonymous (then ``kilo_user_id`` is ``anon:<ip>``)."""

    user_id: str | None
    machine_id: str | None
    ip: str
    organization_id: str | None = None

    @property
    def kilo_user_id(self) -> str:
        return self.user_id if self.user_id is not None else f"anon:{self.ip}"


@dataclass(frozen=True)
class Population:
    """Everyone, plus the persons whose consent is withdrawn (by user id and by machine id)."""

    people: tuple[Person, ...]
    opted_out_user: Person  # withdraws as subject ``user``
    opted_out_machine_user: Person  # signed in, on a machine that withdraws as subject ``machine``
    opted_out_machine_anon: Person  # anonymous, on that same machine
    anon_ip_only: Person  # anonymous without a machine id: allocated by IP

    def pick(self, rng: random.Random) -> Person:
        return self.people[rng.randrange(len(self.people))]

    def opt_out_rows(self, recorded_at: str) -> list[dict[str, Any]]:
        """``consent/opt_outs.jsonl`` rows."""
        assert self.opted_out_user.user_id and self.opted_out_machine_user.machine_id
        return [
            line(OPT_OUTS, {"subject": "user", "value": self.opted_out_user.user_id, "recorded_at": recorded_at}),
            line(
                OPT_OUTS,
                {"subject": "machine", "value": self.opted_out_machine_user.machine_id, "recorded_at": recorded_at},
            ),
        ]


PUBLIC_FIRST_OCTETS = (23, 45, 67, 81, 98, 104, 141, 178, 185, 203)


def _ip(rng: random.Random) -> str:
    first = rng.choice(PUBLIC_FIRST_OCTETS)
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def build_population(rng: random.Random, size: int) -> Population:
    """``size`` persons (at least 40); the special persons are extra and never picked at random."""
    ids = Ids(rng)
    orgs = [f"org_{ids.token(12)}" for _ in range(max(3, size // 25))]
    people = []
    for _ in range(max(40, size)):
        anonymous = rng.random() < ANON_SHARE
        has_machine = not (anonymous and rng.random() < ANON_WITHOUT_MACHINE_SHARE)
        people.append(
            Person(
                user_id=None if anonymous else ids.uuid4(),
                machine_id=ids.hex(32) if has_machine else None,
                ip=_ip(rng),
                organization_id=rng.choice(orgs) if not anonymous and rng.random() < 0.3 else None,
            )
        )
    shared_machine = ids.hex(32)
    return Population(
        people=tuple(people),
        opted_out_user=Person(ids.uuid4(), ids.hex(32), _ip(rng)),
        opted_out_machine_user=Person(ids.uuid4(), shared_machine, _ip(rng)),
        opted_out_machine_anon=Person(None, shared_machine, _ip(rng)),
        anon_ip_only=Person(None, None, _ip(rng)),
    )
