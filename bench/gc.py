"""Blob garbage collection and wipe planning against the I/O floor of the same landing zone.

Side by side in one run, on a local landing zone of N usage lines over D days (a share of them preview
traffic with an experiment_requests line, a prompt blob and a response blob) plus K orphan blobs:

- floor: list every blob and read every usage / experiment_requests file once (what any collector must do);
- ``sweep`` dry run (list, read references, classify) and ``sweep --apply`` (re-check, delete the K orphans,
  check again), each as seconds and as a ratio to the floor; the apply must delete exactly the K orphans;
- ``plan_wipe`` of one experiment (every line parsed, the experiment's lines rewritten in memory) against
  the same floor.

Usage: ``.venv/bin/python bench/gc.py [--lines 200000] [--days 3] [--preview-share 0.1] [--orphans 2000]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.landing_builder import ACME_EXPERIMENT, ACME_V1, BETA_V1, LandingBuilder
from tracedrop.pipelines.delivery.blob_gc import REFERENCE_DIRS, sweep
from tracedrop.pipelines.delivery.wipe import plan_wipe
from tracedrop.schemas.landing import PROMPTS_PREFIX, RESPONSES_PREFIX
from tracedrop.storage.objectstore import LocalStore, ObjectStore

T = TypeVar("T")


def timed(work: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def build(store: ObjectStore, lines: int, days: int, share: float, orphans: int, seed: int) -> int:
    """Write the landing zone; returns the number of referenced blobs."""
    rng = random.Random(seed)
    LandingBuilder.with_default_experiments().write(store)  # the experiment snapshot
    start = datetime(2026, 11, 1, tzinfo=UTC)
    referenced = 0
    for day in range(days):
        dt = (start + timedelta(days=day)).date().isoformat()
        usage, requests = [], []
        for n in range(lines // days):
            at = (start + timedelta(days=day, seconds=n % 86400)).isoformat().replace("+00:00", "Z")
            usage_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            response = None
            if rng.random() < share:
                prompt = f'{{"messages": [{{"role": "user", "content": "request {usage_id}"}}]}}'.encode()
                response_body = f'{{"choices": [{{"message": {{"content": "answer {usage_id}"}}}}]}}'.encode()
                prompt_hash = hashlib.sha256(prompt).hexdigest()
                response = hashlib.sha256(response_body).hexdigest()
                store.put(f"{PROMPTS_PREFIX}/{prompt_hash}", prompt)
                store.put(f"{RESPONSES_PREFIX}/{response}", response_body)
                referenced += 2
                version = ACME_V1 if rng.random() < 0.5 else BETA_V1
                requests.append(
                    json.dumps(
                        {
                            "usage_id": usage_id,
                            "created_at": at,
                            "variant_version_id": version,
                            "allocation_subject": "user",
                            "client_request_id": None,
                            "request_kind": "chat_completions",
                            "request_body_sha256": prompt_hash,
                            "was_truncated": False,
                        }
                    )
                )
            usage.append(
                json.dumps(
                    {
                        "id": usage_id,
                        "created_at": at,
                        "kilo_user_id": f"user-{rng.randrange(5000)}",
                        "requested_model": "preview/acme-coder",
                        "input_tokens": 10,
                        "output_tokens": 3,
                        "cache_write_tokens": 0,
                        "cache_hit_tokens": 0,
                        "cost": 17,
                        "has_error": False,
                        "streamed": False,
                        "cancelled": False,
                        "response_body_sha256": response,
                    }
                )
            )
        store.put(f"usage/dt={dt}/part-00000.jsonl", "\n".join(usage).encode() + b"\n")
        store.put(f"experiment_requests/dt={dt}/part-00000.jsonl", "\n".join(requests).encode() + b"\n")
    for n in range(orphans):
        data = f"orphan {n}".encode()
        store.put(f"{PROMPTS_PREFIX}/{hashlib.sha256(data).hexdigest()}", data)
    return referenced


def floor(store: ObjectStore) -> int:
    """List every blob and read every reference file once; returns the bytes read."""
    for prefix in (PROMPTS_PREFIX, RESPONSES_PREFIX):
        for _ in store.list(prefix):
            pass
    return sum(len(store.get(info.key)) for location in REFERENCE_DIRS for info in store.list(location))


def best(work: Callable[[], T], repeat: int) -> tuple[T, float]:
    runs = [timed(work) for _ in range(repeat)]
    return runs[-1][0], min(seconds for _, seconds in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--preview-share", type=float, default=0.1)
    parser.add_argument("--orphans", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracedrop-bench-gc-") as tmp:
        store = LocalStore(tmp)
        referenced, build_s = timed(
            lambda: build(store, args.lines, args.days, args.preview_share, args.orphans, seed=7)
        )
        blobs = referenced + args.orphans
        print(
            f"landing zone: {args.lines:,} usage lines over {args.days} days, {blobs:,} blobs ({args.orphans:,} "
            f"orphans); built in {build_s:.1f} s"
        )
        read, floor_s = best(lambda: floor(store), args.repeat)
        print(f"floor (list blobs, read {read / 1e6:.1f} MB of lines)  {floor_s:7.3f} s")
        later = lambda: time.time() + 3600  # noqa: E731  the sweep runs an hour after the writes
        dry, dry_s = best(lambda: sweep(store, grace_minutes=1, clock=later), args.repeat)
        assert len(dry.orphans) == args.orphans, (len(dry.orphans), args.orphans)
        print(
            f"gc dry run                              {dry_s:7.3f} s  x{dry_s / floor_s:.2f} of the floor  "
            f"({blobs / dry_s:,.0f} blobs/s, {args.lines / dry_s:,.0f} usage lines/s)"
        )
        plan, plan_s = best(lambda: plan_wipe(store, ACME_EXPERIMENT), args.repeat)
        print(
            f"wipe plan (one experiment)              {plan_s:7.3f} s  x{plan_s / floor_s:.2f} of the floor  "
            f"({sum(e.lines for e in plan.edits):,} lines to rewrite)"
        )
        applied, apply_s = timed(lambda: sweep(store, grace_minutes=1, apply=True, clock=later))
        assert len(applied.deleted) == args.orphans and not applied.lost
        print(f"{f'gc --apply ({args.orphans:,} deletions)':40}{apply_s:7.3f} s  x{apply_s / floor_s:.2f} of the floor")


if __name__ == "__main__":
    main()
