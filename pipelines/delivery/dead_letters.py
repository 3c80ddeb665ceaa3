"""Dead letters: notices that were not delivered after the last try, kept until a re-send succeeds.

At most one per partition, under ``_tracedrop/delivery/dead_letters/partner=P/experiment=E/dt=D.json``:
the notice (its exact body, so a re-send carries the same key), the URL it was sent to, the last error
and how many attempts were made. A newer notice of the partition supersedes it (the partner is told the
current state, never an older one after a newer). Secrets are never stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tracedrop.pipelines.delivery.notices import Notice
from tracedrop.pipelines.export.internal_area import dead_letter_key, dead_letters_prefix
from tracedrop.storage.objectstore import ObjectStore


@dataclass(frozen=True)
class DeadLetter:
    notice: Notice
    url: str
    error: str
    attempts: int
    dead_at: str


def save_dead_letter(store: ObjectStore, letter: DeadLetter) -> None:
    document = {
        "notice": letter.notice.to_json(),
        "url": letter.url,
        "error": letter.error,
        "attempts": letter.attempts,
        "dead_at": letter.dead_at,
    }
    store.put(_key(letter.notice), json.dumps(document, indent=2, sort_keys=True).encode())


def load_dead_letters(store: ObjectStore) -> list[DeadLetter]:
    """Every dead letter, oldest first."""
    letters = []
    for info in store.list(dead_letters_prefix()):
        document = json.loads(store.get(info.key))
        letters.append(
            DeadLetter(
                Notice.from_json(document["notice"]),
                document["url"],
                document["error"],
                document["attempts"],
                document["dead_at"],
            )
        )
    return sorted(letters, key=lambda letter: (letter.dead_at, letter.notice.idempotency_key))


def remove_dead_letter(store: ObjectStore, notice: Notice) -> None:
    """Remove the partition's dead letter if it is this notice."""
    key = _key(notice)
    if store.exists(key) and json.loads(store.get(key))["notice"]["idempotency_key"] == notice.idempotency_key:
        store.delete([key])


def supersede_dead_letter(store: ObjectStore, notice: Notice) -> None:
    """A newer notice of the partition replaces whatever older one was waiting."""
    store.delete([_key(notice)])


def _key(notice: Notice) -> str:
    return dead_letter_key(notice.partner_id, notice.experiment_id, notice.dt)
