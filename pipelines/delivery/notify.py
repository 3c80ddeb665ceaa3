"""Deliver notices: one per change of a partition, every attempt logged, dead letters re-sent later.

A publish whose manifest content equals the partition's last notice makes no notice (a re-run of an
unchanged day notifies nobody twice, and the partition's key stays what the partner has); a changed one
makes a new notice, which supersedes any dead letter of the partition. The secret comes from the
partner's ``webhook_secret_env`` variable and is never logged or stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tracedrop.pipelines.delivery.dead_letters import (
    DeadLetter,
    load_dead_letters,
    remove_dead_letter,
    save_dead_letter,
    supersede_dead_letter,
)
from tracedrop.pipelines.delivery.delivery_log import DEAD_LETTER, append_log, dead_letter_entry, log_entries
from tracedrop.pipelines.delivery.notices import DELIVERED, Notice, Reason, Sender, build_notice
from tracedrop.pipelines.export.internal_area import last_notice_key
from tracedrop.pipelines.export.publish import utc_now_text
from tracedrop.schemas.config_errors import ConfigError
from tracedrop.schemas.drop import MANIFEST_NAME, SUCCESS_NAME
from tracedrop.schemas.partners import Partner, PartnerRegistry
from tracedrop.schemas.settings import secret
from tracedrop.storage.objectstore import ObjectStore, open_store

UNCHANGED = "unchanged"  # the partition's content is what its last notice announced: nothing to send


@dataclass(frozen=True)
class Outcome:
    """What became of one notice."""

    partner_id: str
    idempotency_key: str
    status: str
    error: str = ""


def webhook_secret(partner: Partner, environ: dict[str, str] | None = None) -> bytes:
    """The partner's signing secret; ConfigError naming the variable when it is not set."""
    name = partner.webhook_secret_env
    value = secret(name, environ) if name else ""
    if not value:
        where = f"environment variable {name} (webhook_secret_env) is not set" if name else "no webhook_secret_env"
        raise ConfigError(f"partner {partner.id!r}: {where}; notices are signed with it")
    return value.encode()


def deliver(store: ObjectStore, notice: Notice, partner: Partner, sender: Sender, via: str) -> Outcome:
    """Send one notice to the partner's webhook; every attempt is logged, a failure becomes a dead letter."""
    url = partner.webhook_url or ""
    try:
        attempts = sender.send(notice, url, webhook_secret(partner))
        error = attempts[-1].error
    except ConfigError as exc:
        attempts, error = [], str(exc)
    entries = log_entries(notice, attempts, url, via)
    if attempts and attempts[-1].outcome == DELIVERED:
        append_log(store, entries)
        remove_dead_letter(store, notice)
        return Outcome(partner.id, notice.idempotency_key, DELIVERED)
    now = utc_now_text()
    append_log(store, [*entries, dead_letter_entry(notice, len(attempts), error, url, via, now)])
    save_dead_letter(store, DeadLetter(notice, url, error, len(attempts), now))
    return Outcome(partner.id, notice.idempotency_key, DEAD_LETTER, error)


def notify_published(
    store: ObjectStore, partner: Partner, partition_url: str, reason: Reason, sender: Sender, via: str
) -> Outcome | None:
    """Notify the partner of a finished partition (None when it has no webhook or the partition is unfinished)."""
    if not partner.webhook_url:
        return None
    target = open_store(partition_url)
    if not target.exists(SUCCESS_NAME):
        return None
    manifest = target.get(MANIFEST_NAME)
    document = json.loads(manifest)
    state_key = last_notice_key(partner.id, document["experiment_id"], document["dt"])
    last = json.loads(store.get(state_key)) if store.exists(state_key) else {}
    notice = build_notice(manifest, reason, last.get("idempotency_key", ""))
    if last.get("content_sha256") == notice.content_sha256:
        return Outcome(partner.id, last["idempotency_key"], UNCHANGED)
    state = {"idempotency_key": notice.idempotency_key, "content_sha256": notice.content_sha256, "at": utc_now_text()}
    store.put(state_key, json.dumps({**state, "reason": notice.reason}, sort_keys=True).encode())
    supersede_dead_letter(store, notice)
    return deliver(store, notice, partner, sender, via)


def resend_dead_letters(store: ObjectStore, registry: PartnerRegistry, sender: Sender) -> list[Outcome]:
    """Re-send every dead letter to its partner's current webhook; a delivered one leaves the dead letters."""
    outcomes = []
    for letter in load_dead_letters(store):
        partner = next((p for p in registry.partners if p.id == letter.notice.partner_id), None)
        if partner is None or not partner.webhook_url:
            error = f"partner {letter.notice.partner_id!r} has no webhook_url in the registry"
            outcomes.append(Outcome(letter.notice.partner_id, letter.notice.idempotency_key, DEAD_LETTER, error))
            continue
        outcomes.append(deliver(store, letter.notice, partner, sender, "resend"))
    return outcomes
