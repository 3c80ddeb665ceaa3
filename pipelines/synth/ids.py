"""Identifiers drawn from a seeded random generator (never from the clock or ``uuid4()``)."""

from __future__ import annotations

import random
import string
import uuid

ALNUM = string.ascii_letters + string.digits


class Ids:
    """Seeded id factory: uuids, gateway-style prefixed ids and random tokens."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def token(self, length: int, alphabet: str = ALNUM) -> str:
        return "".join(self.rng.choices(alphabet, k=length))

    def hex(self, length: int) -> str:
        return f"{self.rng.getrandbits(length * 4):0{length}x}"

    def session_id(self) -> str:
        return "ses_" + self.token(26)

    def message_id(self) -> str:
        return "msg_" + self.token(26)

    def call_id(self) -> str:
        return "call_" + self.token(24)

    def completion_id(self) -> str:
        return "chatcmpl-" + self.token(29)
