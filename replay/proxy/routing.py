"""Model id → upstream, exactly as CONTRACT.md §5 routes; precomputed once per config (re)load.

Allocation itself (seed, bucket, variant walk, version in force, subject precedence) is
:mod:`tracedrop.schemas.bucketing`; this module only arranges the config so a request costs a dict lookup,
one SHA-256 and a bisect.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from tracedrop.replay.proxy import errors
from tracedrop.replay.proxy.identity import Caller
from tracedrop.schemas.bucketing import choose_variant, version_in_force
from tracedrop.schemas.landing import EXPERIMENT_PROVIDER
from tracedrop.schemas.proxy_config import Experiment, ProxyConfig, Upstream, Variant

log = logging.getLogger(__name__)

ROUTE_PROVIDER = "route"
CHAT_COMPLETIONS_PATH = "/chat/completions"


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """Where and how to send one request: URL, headers with the key, and the body transforms."""

    route: str  # the configured model id it serves (a route's model or an experiment's public id)
    base_url: str
    chat_url: str
    internal_id: str
    headers: Mapping[str, str] = field(repr=False)  # carries the key: never log it
    extra_body: Mapping[str, Any] | None
    remove_from_body: tuple[str, ...]

    def transform(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body the upstream gets: ``extra_body`` merged (top level), removals applied, model set."""
        out = dict(body)
        if self.extra_body:
            out.update(self.extra_body)
        for name in self.remove_from_body:
            out.pop(name, None)
        out["model"] = self.internal_id
        return out


@dataclass(frozen=True, slots=True)
class Decision:
    """The routing outcome of one request."""

    upstream: UpstreamTarget
    provider: str
    variant_version_id: str | None = None
    allocation_subject: str | None = None


@dataclass(frozen=True, slots=True)
class _Slot:
    """A variant as :func:`choose_variant` sees it, plus its versions' change points."""

    id: UUID
    weight: int
    change_points: tuple[datetime, ...]
    in_force: tuple[tuple[str, UpstreamTarget], ...]  # (version id, target) from each change point on

    def version_at(self, now: datetime) -> tuple[str, UpstreamTarget] | None:
        index = bisect_right(self.change_points, now) - 1
        return self.in_force[index] if index >= 0 else None


@dataclass(frozen=True, slots=True)
class _ExperimentRoute:
    id: UUID
    paused: bool
    slots: tuple[_Slot, ...]


def _target(upstream: Upstream, env: Mapping[str, str], route: str) -> UpstreamTarget:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if upstream.api_key_env:
        key = env.get(upstream.api_key_env)
        if key:
            headers["authorization"] = f"Bearer {key}"
        else:
            log.warning("environment variable %s is not set; its upstream gets no key", upstream.api_key_env)
    return UpstreamTarget(
        route=route,
        base_url=upstream.base_url,
        chat_url=upstream.base_url + CHAT_COMPLETIONS_PATH,
        internal_id=upstream.internal_id,
        headers=headers,
        extra_body=upstream.extra_body,
        remove_from_body=upstream.remove_from_body,
    )


def _slot(variant: Variant, env: Mapping[str, str], route: str) -> _Slot:
    """Evaluate :func:`version_in_force` at every ``effective_at``: it is constant in between."""
    points = sorted({v.effective_at for v in variant.versions})
    targets = {v.id: _target(v.upstream, env, route) for v in variant.versions}
    in_force = []
    for point in points:
        version = version_in_force(variant.versions, point)
        assert version is not None  # the version that takes effect at ``point`` qualifies
        in_force.append((str(version.id), targets[version.id]))
    return _Slot(id=variant.id, weight=variant.weight, change_points=tuple(points), in_force=tuple(in_force))


def _experiment_route(experiment: Experiment, env: Mapping[str, str]) -> _ExperimentRoute:
    return _ExperimentRoute(
        id=experiment.id,
        paused=experiment.status == "paused",
        slots=tuple(_slot(variant, env, experiment.public_model_id) for variant in experiment.variants),
    )


def _refuses_data_collection(body: Mapping[str, Any]) -> bool:
    provider = body.get("provider")
    if not isinstance(provider, dict):
        return False
    return provider.get("data_collection") == "deny" or provider.get("zdr") is True


class RoutingTable:
    """Everything a request needs from the config, looked up by lower-cased model id."""

    def __init__(self, config: ProxyConfig, env: Mapping[str, str]) -> None:
        self.trust_forwarded_for = config.trust_forwarded_for
        self.users_by_token_sha256 = {client.token_sha256: client.user_id for client in config.clients}
        self.routes = {
            route.model.lower(): Decision(_target(route.upstream, env, route.model), ROUTE_PROVIDER)
            for route in config.routes
        }
        self.experiments = {
            e.public_model_id.lower(): _experiment_route(e, env)
            for e in config.experiments
            if e.status in ("active", "paused")
        }
        listed = [route.model for route in config.routes]
        listed += [e.public_model_id for e in config.experiments if e.status == "active"]
        self.models_body = orjson.dumps(
            {
                "object": "list",
                "data": [{"id": m, "object": "model", "created": 0, "owned_by": "tracedrop"} for m in sorted(listed)],
            }
        )

    def resolve(self, model: str, body: Mapping[str, Any], caller: Caller, now: datetime) -> Decision:
        """Route one request or raise the :class:`errors.ProxyError` the client gets."""
        key = model.lower()
        route = self.routes.get(key)
        if route is not None:
            return route
        experiment = self.experiments.get(key)
        if experiment is None or experiment.paused:
            raise errors.model_not_found(model)
        subject = caller.subject()
        if subject is None:
            raise errors.temporarily_unavailable()
        if _refuses_data_collection(body):
            raise errors.data_collection_required()
        kind, value = subject
        slot = choose_variant(experiment.id, kind, value, experiment.slots)
        version = slot.version_at(now)
        if version is None:  # every version of the variant is still future-dated
            raise errors.temporarily_unavailable()
        version_id, target = version
        return Decision(target, EXPERIMENT_PROVIDER, version_id, kind)
