"""``tracedrop synth --out s3://...`` writes exactly the objects a local run writes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tracedrop.pipelines.landing import validate_landing
from tracedrop.pipelines.synth.generate import SynthConfig, generate
from tracedrop.storage.objectstore import ObjectStore, open_store

CONFIG = SynthConfig(days=1, requests_per_day=80, seed=9)


def digests(store: ObjectStore) -> dict[str, str]:
    return {info.key: hashlib.sha256(store.get(info.key)).hexdigest() for info in store.list()}


def test_store_gets_the_same_objects_as_a_local_run(store_url: str, tmp_path: Path) -> None:
    reference = open_store(tmp_path / "reference")
    generate(reference, CONFIG)
    store = open_store(store_url)
    summary = generate(store, CONFIG)
    assert digests(store) == digests(reference)
    assert validate_landing(store).total_quarantined == sum(
        n for days in summary["malformed"].values() for n in days.values()
    )
