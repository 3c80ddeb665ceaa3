"""The results directory of a replay (see docs/replay.md): written by the runner, read by compare.

``results/`` and ``errors/`` are append-only: every flush writes a new small Parquet file, so a
killed run loses at most the results since its last flush and never a saved one.  Resume is a set
difference between the plan's keys and the keys saved here.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tracedrop.storage.objectstore import ObjectStore, open_store

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
ROWS_FILE = "rows.parquet"
PLAN_FILE = "plan.parquet"
RESULTS_DIR = "results"
ERRORS_DIR = "errors"

RESULT_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("row_id", pa.string()),
        ("arm", pa.string()),
        ("sample", pa.int64()),
        ("request_hash", pa.string()),
        ("config_hash", pa.string()),
        ("status_code", pa.int64()),
        ("response_body", pa.string()),
        ("output_text", pa.string()),
        ("tool_calls", pa.string()),
        ("finish_reason", pa.string()),
        ("latency_ms", pa.float64()),
        ("ttft_ms", pa.float64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("system_fingerprint", pa.string()),
        ("attempts", pa.int64()),
        ("retry_wait_ms", pa.float64()),
        ("finished_at", pa.timestamp("us", tz="UTC")),
    ]
)
ERROR_SCHEMA = RESULT_SCHEMA.append(pa.field("error", pa.string()))


@dataclass
class ReplayResults:
    """A results directory read back: the run, its rows and plan, and what happened to each key."""

    run: dict[str, Any]
    rows: pl.DataFrame
    plan: pl.DataFrame
    results: pl.DataFrame  # successful, one per planned key (latest wins)
    errors: pl.DataFrame  # final failures of planned keys that have no result (latest wins)
    missing: pl.DataFrame  # planned keys with no result (errors included), as plan rows


def _frame(store: ObjectStore, folder: str, schema: pa.Schema, columns: list[str] | None = None) -> pl.DataFrame:
    tables = [
        pq.read_table(io.BytesIO(store.get(info.key)), columns=columns)
        for info in store.list(folder)
        if info.key.endswith(".parquet")
    ]
    empty = schema.empty_table() if columns is None else schema.empty_table().select(columns)
    frame = pl.from_arrow(pa.concat_tables([empty, *tables]) if tables else empty)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _latest(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per key: the last finished (file order breaks ties)."""
    return frame.with_row_index("_order").sort("finished_at", "_order").unique("key", keep="last").drop("_order")


def saved_keys(out: str | Path) -> tuple[set[str], set[str]]:
    """(keys with a result, keys whose latest outcome is an error): what a resume skips."""
    store = open_store(out)
    done = set(_frame(store, RESULTS_DIR, RESULT_SCHEMA, ["key"])["key"].to_list())
    errors = _frame(store, ERRORS_DIR, ERROR_SCHEMA, ["key"])["key"].to_list()
    return done, set(errors) - done


def write_run(out: str | Path, run: dict[str, Any], rows: pl.DataFrame, plan: pl.DataFrame) -> None:
    """Write (or replace) run.json, rows.parquet and plan.parquet; results and errors stay."""
    store = open_store(out)
    for name, frame in ((ROWS_FILE, rows), (PLAN_FILE, plan)):
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd")
        store.put(name, buffer.getvalue())
    store.put(RUN_FILE, json.dumps({"schema_version": SCHEMA_VERSION, **run}, indent=2).encode())


def load_results(out: str | Path) -> ReplayResults:
    """Read a results directory; results and errors are restricted to the current plan's keys."""
    store = open_store(out)
    run = json.loads(store.get(RUN_FILE))
    rows = pl.read_parquet(io.BytesIO(store.get(ROWS_FILE)))
    plan = pl.read_parquet(io.BytesIO(store.get(PLAN_FILE)))
    planned = plan["key"].implode()
    results = _latest(_frame(store, RESULTS_DIR, RESULT_SCHEMA).filter(pl.col("key").is_in(planned)))
    errors = _latest(_frame(store, ERRORS_DIR, ERROR_SCHEMA).filter(pl.col("key").is_in(planned)))
    errors = errors.filter(~pl.col("key").is_in(results["key"].implode()))
    missing = plan.filter(~pl.col("key").is_in(results["key"].implode()))
    return ReplayResults(run, rows, plan, results, errors, missing)


class ResultsWriter:
    """Buffers outcomes and appends them as new Parquet files: results and errors apart.

    ``guard`` (e.g. the run's :meth:`tracedrop.replay.results_lock.Lease.check`) is called before every write and
    raises when the run may no longer write there.
    """

    def __init__(self, out: str | Path, guard: Callable[[], None] | None = None) -> None:
        self.store = open_store(out)
        self._guard = guard
        self._results: list[dict[str, Any]] = []
        self._errors: list[dict[str, Any]] = []
        self._files = 0

    @property
    def pending(self) -> int:
        return len(self._results) + len(self._errors)

    def add(self, record: dict[str, Any]) -> None:
        """A result, or an error when ``record["error"]`` is set; ``finished_at`` is stamped now."""
        record = {**record, "finished_at": datetime.now(UTC)}
        (self._errors if record.get("error") else self._results).append(record)

    def add_all(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.add(record)

    def flush(self) -> None:
        """Write what is buffered: one new file per kind (results before errors)."""
        for folder, schema, buffered in (
            (RESULTS_DIR, RESULT_SCHEMA, self._results),
            (ERRORS_DIR, ERROR_SCHEMA, self._errors),
        ):
            if not buffered:
                continue
            if self._guard is not None:
                self._guard()
            table = pa.Table.from_pylist(buffered, schema=schema)
            sink = io.BytesIO()
            pq.write_table(table, sink, compression="zstd")
            self._files += 1
            self.store.put(
                f"{folder}/part-{time.time_ns():020d}-{os.getpid()}-{self._files:06d}.parquet", sink.getvalue()
            )
            buffered.clear()
