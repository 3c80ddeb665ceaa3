"""Wipe one experiment's prompt and response bodies, in the landing zone and in every drop published of it.

1. Landing: each ``experiment_requests`` line of the experiment (its ``variant_version_id`` resolves to
   it in the snapshot) gets ``request_body_sha256 = "__deleted__"``, and the usage line of each such
   request ``response_body_sha256 = null`` (the usage schema has no sentinel; null is "no response
   stored"). Only that value changes: every other byte of the line and every other line stay as they
   were, and each file is replaced atomically (a gzip file is re-compressed). Every edit is worked out
   before anything is written, so a line that cannot be rewritten stops the wipe with nothing changed.
2. Drops: every published partition of the experiment (from the publication records, so every
   destination it went to) is re-published under the day's lock with all its rows; the wiped rows'
   ``request_body`` becomes ``__deleted__``, ``response_body`` null and ``redactions`` empty, while
   ids, attribution, counts and tokens stay. The partner gets a notice with reason ``wipe``.
3. Internal: staged Parquet of the experiment left in run areas (it holds bodies) is deleted.
4. The wipe is recorded under ``_tracedrop/wipes/``. The blobs themselves are left to ``tracedrop gc``
   (another experiment's line may name the same blob).
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from tracedrop.pipelines.delivery.hooks import Published, after_publish
from tracedrop.pipelines.delivery.jsonl_log import append_jsonl, read_jsonl
from tracedrop.pipelines.delivery.notices import Reason, Sender
from tracedrop.pipelines.export.consent import OpenStore, _parquet_bytes
from tracedrop.pipelines.export.internal_area import INTERNAL_ROOT
from tracedrop.pipelines.export.lock import day_lock
from tracedrop.pipelines.export.publications import PublicationRecord, all_records, begin, complete, load_lineage
from tracedrop.pipelines.export.publish import Part, read_manifest, replace_partition, utc_now_text
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.pipelines.export.snapshot import load_snapshot
from tracedrop.pipelines.export.wiped import save_wiped_ids
from tracedrop.pipelines.landing import landing_files
from tracedrop.schemas.config_errors import ConfigError
from tracedrop.schemas.drop import SUCCESS_NAME
from tracedrop.schemas.landing import EXPERIMENT_REQUESTS, PROMPT_DELETED, USAGE
from tracedrop.schemas.partners import PartnerRegistry
from tracedrop.storage.objectstore import ObjectStore, open_store, read_parquet

HASH = re.compile(r"[0-9a-fA-F]{64}")
PROMPT_REFERENCE = re.compile(rb'("request_body_sha256"\s*:\s*)"[0-9a-fA-F]{64}"')
RESPONSE_REFERENCE = re.compile(rb'("response_body_sha256"\s*:\s*)"[0-9a-fA-F]{64}"')
DAY = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/")
CARRIED_MANIFEST_KEYS = ("dt", "schema_version", "redactor_version", "rules_hash")


class WipeError(RuntimeError):
    """A landing line names the experiment's body in a form that cannot be rewritten on its own."""


def wipes_prefix() -> str:
    """One record per wipe: which experiment, when, what it rewrote and re-published."""
    return f"{INTERNAL_ROOT}/wipes"


@dataclass(frozen=True)
class LandingEdit:
    key: str
    data: bytes  # the file's new content
    lines: int  # lines rewritten


@dataclass
class WipePlan:
    experiment_id: str
    edits: list[LandingEdit] = field(default_factory=list)
    usage_ids: set[str] = field(default_factory=set)  # every request of the experiment in the landing zone
    days: list[str] = field(default_factory=list)
    partitions: list[PublicationRecord] = field(default_factory=list)
    staged: list[str] = field(default_factory=list)  # internal staged Parquet of the experiment


@dataclass
class WipeReport:
    republished: list[tuple[str, int]] = field(default_factory=list)  # partition URL, rows whose bodies went
    errors: list[str] = field(default_factory=list)
    delivery: dict[str, Any] = field(default_factory=dict)


def _parse(line: bytes) -> dict | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _wiped_line(line: bytes, row: dict | None, pattern: re.Pattern, value: bytes, name: str, where: str) -> bytes:
    """``line`` with the body reference ``name`` replaced by ``value`` and not one other byte changed."""
    if row is None:  # unreadable (quarantined by the export): its reference is replaced all the same
        return pattern.sub(lambda m: m.group(1) + value, line)
    current = row.get(name)
    if not (isinstance(current, str) and HASH.fullmatch(current)):
        return line  # wiped already, or no body stored
    new = pattern.sub(lambda m: m.group(1) + value, line)
    if _parse(new) != {**row, name: json.loads(value)}:
        raise WipeError(f"{where}: {name} is written in a form the wipe cannot replace on its own; fix the line")
    return new


def _read_text(store: ObjectStore, key: str) -> bytes:
    data = store.get(key)
    return gzip.decompress(data) if key.endswith(".gz") else data


def _edit(store: ObjectStore, key: str, rewrite: Any) -> LandingEdit | None:
    """Apply ``rewrite(line, number)`` to each line of a landing file; None when no line changed."""
    lines = _read_text(store, key).splitlines(keepends=True)
    new = [rewrite(line, number) for number, line in enumerate(lines, 1)]
    changed = sum(a != b for a, b in zip(lines, new, strict=True))
    if not changed:
        return None
    data = b"".join(new)
    return LandingEdit(key, gzip.compress(data, mtime=0) if key.endswith(".gz") else data, changed)


def plan_wipe(store: ObjectStore, experiment_id: str) -> WipePlan:
    """Everything the wipe would change; ConfigError when the snapshot does not know the experiment."""
    snapshot = load_snapshot(store)
    wanted = experiment_id.strip().lower()
    known = snapshot.experiments.get_column("experiment_id").to_list()
    if wanted not in known:
        raise ConfigError(
            f"unknown experiment {experiment_id!r}: the landing zone's snapshot has {', '.join(sorted(known))}"
        )
    versions = set(snapshot.versions.filter(pl.col("experiment_id") == wanted).get_column("variant_version_id"))
    plan = WipePlan(wanted)
    days: set[str] = set()

    def request_line(key: str) -> Any:
        def rewrite(line: bytes, number: int) -> bytes:
            row = _parse(line)
            if row is None:
                mine = any(v.encode() in line for v in versions)
            else:
                mine = str(row.get("variant_version_id", "")).lower() in versions
                if mine:
                    plan.usage_ids.add(str(row.get("usage_id", "")).lower())
            if not mine:
                return line
            days.update(DAY.findall(f"/{key}"))
            where = f"{store.url}/{key}:{number}"
            return _wiped_line(
                line, row, PROMPT_REFERENCE, json.dumps(PROMPT_DELETED).encode(), "request_body_sha256", where
            )

        return rewrite

    for info in landing_files(store, EXPERIMENT_REQUESTS):
        if (edit := _edit(store, info.key, request_line(info.key))) is not None:
            plan.edits.append(edit)

    def usage_line(key: str) -> Any:
        def rewrite(line: bytes, number: int) -> bytes:
            row = _parse(line)
            if row is None or str(row.get("id", "")).lower() not in plan.usage_ids:
                return line
            return _wiped_line(
                line, row, RESPONSE_REFERENCE, b"null", "response_body_sha256", f"{store.url}/{key}:{number}"
            )

        return rewrite

    plan.days = sorted(days)
    for dt in plan.days:
        for info in landing_files(store, USAGE, dt):
            if (edit := _edit(store, info.key, usage_line(info.key))) is not None:
                plan.edits.append(edit)
    for record in all_records(store):
        if record.experiment_id == wanted:
            lineage = load_lineage(store, record)
            if lineage.filter(pl.col("usage_id").is_in(list(plan.usage_ids))).height:
                plan.partitions.append(record)
    plan.staged = [
        info.key
        for info in store.list(f"{INTERNAL_ROOT}/runs")
        if "/staging/partner=" in info.key and f"/experiment={wanted}/" in info.key
    ]
    return plan


def wipe_bodies(table: pa.Table, request_ids: list[str]) -> tuple[pa.Table, int]:
    """The drop table with the bodies of these rows wiped, and how many rows still had a body to wipe."""
    chosen = pc.is_in(table.column("request_id"), value_set=pa.array(request_ids, type=pa.string()))
    holding = pc.or_(
        pc.not_equal(table.column("request_body"), PROMPT_DELETED), pc.is_valid(table.column("response_body"))
    )
    mask = pc.and_(chosen, holding)
    count = pc.sum(mask).as_py() or 0
    if not count:
        return table, 0
    flags = mask.to_pylist()
    columns = {
        "request_body": pc.if_else(mask, pa.scalar(PROMPT_DELETED), table.column("request_body")),
        "response_body": pc.if_else(mask, pa.scalar(None, type=pa.string()), table.column("response_body")),
        "redactions": pa.array(
            [
                [] if wiped else value
                for wiped, value in zip(flags, table.column("redactions").to_pylist(), strict=True)
            ],
            type=table.schema.field("redactions").type,
        ),
    }
    for name, column in columns.items():
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(index), column)
    return table, count


def _wipe_partition(
    store: ObjectStore, record: PublicationRecord, usage_ids: set[str], run_id: str, open_destination: OpenStore
) -> tuple[int, bool]:
    """Rewrite one partition's files without the bodies; (rows wiped, whether it is a finished partition)."""
    lineage = load_lineage(store, record)
    request_ids = lineage.filter(pl.col("usage_id").is_in(list(usage_ids))).get_column("request_id").to_list()
    target = open_destination(record.url)
    finished = target.exists(SUCCESS_NAME)
    parts, wiped = [], 0
    for info in target.list():
        if info.key.endswith(".parquet"):
            table, count = wipe_bodies(read_parquet(target, info.key), request_ids)
            wiped += count
            parts.append(Part(info.key, _parquet_bytes(table), table.num_rows))
    if not wiped:
        return 0, finished
    if not finished:  # a half-finished publish: wipe the files it left, keep it unfinished
        for part in parts:
            target.put(part.name, part.data)
        return wiped, finished
    now = utc_now_text()
    manifest = read_manifest(target) or {}
    carried = {k: manifest[k] for k in CARRIED_MANIFEST_KEYS if k in manifest}
    begin(store, record, lineage, run_id, now)
    published = replace_partition(
        target, record.partner_id, record.experiment_id, parts, {**carried, "republished_for": "wipe"}
    )
    complete(store, record, published.rows, now)
    return wiped, finished


def apply_wipe(
    store: ObjectStore,
    plan: WipePlan,
    registry: PartnerRegistry,
    settings: ExportSettings,
    run_id: str | None = None,
    open_destination: OpenStore = open_store,
    sender: Sender | None = None,
) -> WipeReport:
    """Rewrite the landing files first (no later export can bring a body back), then re-publish the drops."""
    run_id = run_id or f"wipe-{uuid4()}"
    report = WipeReport()
    if plan.edits:
        save_wiped_ids(store, run_id, plan.usage_ids)
    for edit in plan.edits:
        store.put(edit.key, edit.data)
    store.delete(plan.staged)
    published = []
    for record in plan.partitions:
        try:
            with day_lock(store, record.dt, run_id, settings.lock_wait_seconds):
                wiped, finished = _wipe_partition(store, record, plan.usage_ids, run_id, open_destination)
        except Exception as exc:  # one partition's failure is its own; a re-run of the wipe finishes it
            report.errors.append(f"{record.url}: {exc}")
            continue
        if wiped:
            report.republished.append((record.url, wiped))
            if finished:
                published.append(Published(record.partner_id, record.experiment_id, record.url, Reason.WIPE))
    report.delivery = after_publish(
        store, registry, published, settings.retry_policy, settings.stats_min_subjects, sender
    )
    entry = {
        "at": utc_now_text(),
        "experiment_id": plan.experiment_id,
        "run_id": run_id,
        "requests": len(plan.usage_ids),
        "days": plan.days,
        "landing_files": [{"key": e.key, "lines": e.lines} for e in plan.edits],
        "partitions": [{"partition": url, "rows_wiped": rows} for url, rows in report.republished],
        "staged_files_deleted": len(plan.staged),
        "errors": report.errors,
    }
    append_jsonl(store, wipes_prefix(), [entry])
    return report


def read_wipes(store: ObjectStore) -> list[dict]:
    """Every wipe recorded, oldest first."""
    return read_jsonl(store, wipes_prefix())
