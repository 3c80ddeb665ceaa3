"""Garbage collection of landing blobs: delete ``prompts/`` and ``responses/`` blobs no landing line refers to.

A blob is referenced when any ``usage`` or ``experiment_requests`` file (any day, JSONL or gzip, valid
line or not) names its hash as ``request_body_sha256`` or ``response_body_sha256``: a hash counts for
both prefixes, so the sweep only ever errs towards keeping. Safe against writers running meanwhile:

1. the blobs are listed first, with their write times, at the sweep's start;
2. the references are read after that listing, so a line written before a blob was listed is seen;
3. a blob written less than the grace period before the start is never deleted (its line may not be
   written yet);
4. just before deleting, every reference file that is new or changed since step 2 is read again, and an
   orphan a new line names is kept;
5. after deleting, the same check once more: a blob deleted while a writer was naming it (a writer
   that found it existing and did not rewrite it, in the moments between step 4 and the delete) is
   reported as lost, never silently.
"""

from __future__ import annotations

import contextlib
import gzip
import re
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import uuid4

from tracedrop.pipelines.delivery.jsonl_log import append_jsonl
from tracedrop.pipelines.export.internal_area import INTERNAL_ROOT
from tracedrop.pipelines.export.publish import utc_now_text
from tracedrop.schemas.landing import EXPERIMENT_REQUESTS, PROMPTS_PREFIX, RESPONSES_PREFIX, USAGE
from tracedrop.storage.objectstore import ObjectInfo, ObjectNotFound, ObjectStore

REFERENCE = re.compile(rb'"(?:request|response)_body_sha256"\s*:\s*"([0-9a-fA-F]{64})"')
BLOB_KEY = re.compile(rf"^(?:{PROMPTS_PREFIX}|{RESPONSES_PREFIX})/([0-9a-f]{{64}})$")
REFERENCE_DIRS = (USAGE.location, EXPERIMENT_REQUESTS.location)
DEFAULT_GRACE_MINUTES = 60.0
CLOCK_SLACK_SECONDS = 2.0  # S3 write times have whole seconds: a file this close to the start is read again
READ_THREADS = 8
LISTED, REFERENCED, RECHECKED = "listed", "referenced", "rechecked"  # the phases a hook is called after

Hook = Callable[[str], None]


def gc_log_prefix() -> str:
    """Every blob the collector deleted: when, which, how many bytes."""
    return f"{INTERNAL_ROOT}/gc/log"


@dataclass
class Sweep:
    """What one sweep found, and (with ``apply``) did."""

    started_at: float
    blobs: int = 0
    referenced: int = 0  # distinct hashes the landing lines name
    orphans: list[ObjectInfo] = field(default_factory=list)  # unreferenced and older than the grace period
    too_young: list[ObjectInfo] = field(default_factory=list)  # unreferenced but within the grace period: kept
    rescued: list[str] = field(default_factory=list)  # orphans a line written during the sweep named: kept
    deleted: list[ObjectInfo] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # deleted while a writer was naming them

    @property
    def orphan_bytes(self) -> int:
        return sum(o.size for o in self.orphans)


def _digest(info: ObjectInfo) -> str:
    match = BLOB_KEY.match(info.key)
    assert match is not None
    return match.group(1)


def _blobs(store: ObjectStore) -> list[ObjectInfo]:
    return [
        info for prefix in (PROMPTS_PREFIX, RESPONSES_PREFIX) for info in store.list(prefix) if BLOB_KEY.match(info.key)
    ]


def reference_files(store: ObjectStore) -> dict[str, ObjectInfo]:
    """Every file under ``usage/`` and ``experiment_requests/``, by key."""
    return {info.key: info for location in REFERENCE_DIRS for info in store.list(location)}


def _hashes(store: ObjectStore, key: str) -> set[str]:
    try:
        data = store.get(key)
    except ObjectNotFound:
        return set()  # removed since it was listed: it names nothing any more
    if key.endswith(".gz"):
        with contextlib.suppress(OSError, EOFError, zlib.error):  # not gzip after all: searched as it is
            data = gzip.decompress(data)
    return {h.decode().lower() for h in REFERENCE.findall(data)}


def references(store: ObjectStore, keys: Iterable[str]) -> set[str]:
    """Every blob hash the files name."""
    with ThreadPoolExecutor(READ_THREADS) as pool:
        return set().union(*pool.map(lambda key: _hashes(store, key), list(keys)))


def _changed(store: ObjectStore, seen: dict[str, ObjectInfo], started_at: float) -> dict[str, ObjectInfo]:
    """Reference files that are new, changed, or written around or after the sweep's start."""
    now = reference_files(store)
    return {
        key: info
        for key, info in now.items()
        if key not in seen
        or info.size != seen[key].size
        or info.modified != seen[key].modified
        or info.modified >= started_at - CLOCK_SLACK_SECONDS
    }


def sweep(
    store: ObjectStore,
    grace_minutes: float = DEFAULT_GRACE_MINUTES,
    apply: bool = False,
    hook: Hook | None = None,
    clock: Callable[[], float] = time.time,
) -> Sweep:
    """Find the orphan blobs (and with ``apply`` delete them); ``hook`` runs after each phase (tests)."""
    hook = hook or (lambda phase: None)
    result = Sweep(clock())
    blobs = _blobs(store)
    result.blobs = len(blobs)
    hook(LISTED)
    files = reference_files(store)
    named = references(store, files)
    result.referenced = len(named)
    hook(REFERENCED)
    cutoff = result.started_at - grace_minutes * 60
    for blob in blobs:
        if _digest(blob) not in named:
            (result.orphans if blob.modified < cutoff else result.too_young).append(blob)
    if not apply or not result.orphans:
        return result
    changed = _changed(store, files, result.started_at)
    named |= references(store, changed)
    files.update(changed)
    result.rescued = [o.key for o in result.orphans if _digest(o) in named]
    doomed = [o for o in result.orphans if _digest(o) not in named]
    hook(RECHECKED)
    store.delete([o.key for o in doomed])
    result.deleted = doomed
    _log(store, doomed)
    after = references(store, _changed(store, files, result.started_at))
    result.lost = [o.key for o in doomed if _digest(o) in after]
    return result


def _log(store: ObjectStore, deleted: list[ObjectInfo]) -> None:
    run_id, at = f"gc-{uuid4()}", utc_now_text()
    append_jsonl(
        store,
        gc_log_prefix(),
        [{"at": at, "key": o.key, "bytes": o.size, "written_at": _iso(o.modified), "run_id": run_id} for o in deleted],
    )


def _iso(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat().replace("+00:00", "Z")


def describe(info: ObjectInfo) -> str:
    return f"{info.key} ({info.size:,} bytes, written {_iso(info.modified)})"
