"""Who is calling: the authenticated user, the machine, the client IP and the kilo headers."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from tracedrop.schemas.bucketing import allocation_subject

REQUEST_ID_HEADER = "x-kilo-request"
SESSION_HEADERS = ("x-kilo-session", "x-kilocode-taskid")
MACHINE_HEADER = "x-kilocode-machineid"
FORWARDED_FOR_HEADER = "x-forwarded-for"


@dataclass(frozen=True, slots=True)
class Caller:
    """The identity facts of one request, as headers and the socket gave them."""

    user_id: str | None
    machine_id: str | None
    client_ip: str | None
    session_id: str | None
    client_request_id: str | None

    @property
    def kilo_user_id(self) -> str:
        """The user id, or ``anon:<ip>`` for an anonymous caller."""
        return self.user_id or f"anon:{self.client_ip or ''}"

    def subject(self) -> tuple[str, str] | None:
        """The allocation subject (kind, value) by the gateway's precedence, or None."""
        return allocation_subject(self.user_id, self.machine_id, self.client_ip)


def token_user(authorization: str | None, users_by_token_sha256: Mapping[str, str]) -> str | None:
    """The user whose configured token hash matches ``Authorization: Bearer <token>``, else None."""
    if not authorization or not users_by_token_sha256:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return users_by_token_sha256.get(hashlib.sha256(token.strip().encode("utf-8")).hexdigest())


def client_ip(forwarded_for: str | None, peer: str | None, trust_forwarded_for: bool) -> str | None:
    """The first ``X-Forwarded-For`` hop when trusted and present, else the socket peer."""
    if trust_forwarded_for and forwarded_for:
        first = forwarded_for.split(",", 1)[0].strip()
        if first:
            return first
    return peer or None


def identify(
    headers: Mapping[str, str],
    peer: str | None,
    users_by_token_sha256: Mapping[str, str],
    trust_forwarded_for: bool,
) -> Caller:
    """Read a request's identity from its (lower-case keyed) headers and socket peer."""
    session_id = None
    for name in SESSION_HEADERS:
        session_id = headers.get(name) or None
        if session_id:
            break
    return Caller(
        user_id=token_user(headers.get("authorization"), users_by_token_sha256),
        machine_id=headers.get(MACHINE_HEADER) or None,
        client_ip=client_ip(headers.get(FORWARDED_FOR_HEADER), peer, trust_forwarded_for),
        session_id=session_id,
        client_request_id=headers.get(REQUEST_ID_HEADER) or None,
    )
