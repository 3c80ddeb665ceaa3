"""Why a usage row is not exported: the seven rules of CONTRACT.md §3, in order, as stable codes."""

from __future__ import annotations

from enum import StrEnum


class Exclusion(StrEnum):
    """The first failing export rule of a usage row (the values appear in reports and manifests)."""

    NOT_ONE_EXPERIMENT_REQUEST = "not_one_experiment_request"  # rule 1
    NOT_PARTNER_EXPERIMENT = "not_partner_experiment"  # rule 2
    MODEL_MISMATCH = "model_mismatch"  # rule 3
    EXPERIMENT_NOT_ROUTING = "experiment_not_routing"  # rule 4
    CONSENT_WITHDRAWN = "consent_withdrawn"  # rule 5
    PROMPT_UNAVAILABLE = "prompt_unavailable"  # rule 6
    SESSION_CONTAMINATED = "session_contaminated"  # rule 7


EXCLUSIONS_IN_ORDER: tuple[Exclusion, ...] = tuple(Exclusion)

# How far back rule 7 looks for earlier requests of the same session.
DEFAULT_SESSION_LOOKBACK_DAYS = 7


class Fate(StrEnum):
    """Where every ingested usage row ends: exactly one of these."""

    EXPORTED = "exported"
    EXCLUDED = "excluded"
    QUARANTINED = "quarantined"
