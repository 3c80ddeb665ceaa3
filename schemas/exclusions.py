"""Why a usage row is not exported: the seven rules of CONTRACT.md §3, in order, as stable codes."""

from __future__ import annotations

from enum import StrEnum


class Exclusion(StrEnum):
    """Why a usage row is not exported, in the order they are tested (the first that holds is reported).

    Besides the seven rules, four reasons exclude a row on doubt (CONTRACT.md §3, "doubt excludes"):
    its identity is in doubt (another line names the same usage id), or a quarantined line could
    have changed the verdict of rule 1 or rule 7.
    """

    CONFLICTING_DUPLICATE = "conflicting_duplicate"  # another line names this usage id and differs (or was quarantined)
    DUPLICATE_DELIVERY = "duplicate_delivery"  # an identical extra copy of a line already judged
    NOT_ONE_EXPERIMENT_REQUEST = "not_one_experiment_request"  # rule 1
    QUARANTINED_REQUEST_LINE = "quarantined_request_line"  # a quarantined experiment_requests line names this usage id
    NOT_PARTNER_EXPERIMENT = "not_partner_experiment"  # rule 2
    MODEL_MISMATCH = "model_mismatch"  # rule 3
    EXPERIMENT_NOT_ROUTING = "experiment_not_routing"  # rule 4
    CONSENT_WITHDRAWN = "consent_withdrawn"  # rule 5
    PROMPT_UNAVAILABLE = "prompt_unavailable"  # rule 6
    SESSION_CONTAMINATED = "session_contaminated"  # rule 7
    QUARANTINED_SESSION_LINE = "quarantined_session_line"  # a quarantined usage line of this session in the lookback


EXCLUSIONS_IN_ORDER: tuple[Exclusion, ...] = tuple(Exclusion)

# How far back rule 7 looks for earlier requests of the same session.
DEFAULT_SESSION_LOOKBACK_DAYS = 7


class Fate(StrEnum):
    """Where every ingested usage row ends: exactly one of these."""

    EXPORTED = "exported"
    EXCLUDED = "excluded"
    QUARANTINED = "quarantined"
