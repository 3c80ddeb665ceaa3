"""Builds the frames of a replay results directory (see the results interface) from short row specs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl

from tracedrop.replay.store import ReplayResults, ResultsWriter, write_run

ROW_DEFAULTS: dict[str, Any] = {
    "session_id": None,
    "turn_id": None,
    "partner_id": "acme",
    "experiment_id": "exp-1",
    "dt": "2026-11-02",
    "variant_id": "v-1",
    "variant_label": "control",
    "variant_version_id": "vv-1",
    "checkpoint": "acme-rc1",
    "request_kind": "chat",
    "feedback_rating": None,
    "request_body": '{"model": "preview/acme", "messages": [{"role": "user", "content": "hi"}]}',
    "response_format_json": False,
    "original_response_body": None,
    "original_latency_ms": None,
    "original_status_code": 200,
    "original_has_error": False,
    "original_input_tokens": 10,
    "original_output_tokens": 20,
}
CALL_DEFAULTS: dict[str, Any] = {
    "sample": 0,
    "status_code": 200,
    "response_body": "{}",
    "output_text": "",
    "tool_calls": None,
    "finish_reason": "stop",
    "latency_ms": 100.0,
    "ttft_ms": None,
    "input_tokens": 10,
    "output_tokens": 20,
    "system_fingerprint": None,
    "attempts": 1,
    "retry_wait_ms": 0.0,
}
CALL_SCHEMA = {
    "row_id": pl.String,
    "arm": pl.String,
    "sample": pl.Int64,
    "status_code": pl.Int64,
    "output_text": pl.String,
    "tool_calls": pl.String,
    "finish_reason": pl.String,
    "latency_ms": pl.Float64,
    "ttft_ms": pl.Float64,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "attempts": pl.Int64,
    "retry_wait_ms": pl.Float64,
}


def key(row_id: str, arm: str, sample: int) -> str:
    """A stable key for one call (the runner's key also hashes the request and config)."""
    return hashlib.sha256(f"{row_id}|{arm}|{sample}".encode()).hexdigest()[:16]


def call_frame(calls: list[dict[str, Any]]) -> pl.DataFrame:
    """Calls with defaults filled, their key, and the interface's column types."""
    filled = [{**CALL_DEFAULTS, **call} for call in calls]
    for call in filled:
        call["key"] = key(call["row_id"], call["arm"], call["sample"])
        if isinstance(call["tool_calls"], list):
            call["tool_calls"] = json.dumps(call["tool_calls"])
    schema = {**CALL_SCHEMA, "key": pl.String, "error": pl.String}
    return pl.DataFrame(filled, schema={k: schema.get(k, pl.String) for k in filled[0]} if filled else schema)


def build(
    rows: list[dict[str, Any]],
    calls: list[dict[str, Any]],
    errors: list[dict[str, Any]] | None = None,
    missing: list[dict[str, Any]] | None = None,
) -> ReplayResults:
    """What ``load_results`` returns, from rows (``row_id`` plus any ROW_DEFAULTS overrides), result calls, error
    calls and keys planned but never finished (``{"row_id", "arm", "sample"}``)."""
    row_frame = pl.DataFrame([{**ROW_DEFAULTS, **row} for row in rows], infer_schema_length=None).with_columns(
        pl.col("feedback_rating").cast(pl.String), pl.col("session_id").cast(pl.String)
    )
    results = call_frame(calls)
    error_frame = call_frame([{**call, "status_code": 500, "error": "boom"} for call in errors or []])
    unfinished = [{**m, "key": key(m["row_id"], m["arm"], m.get("sample", 0))} for m in missing or []]
    unfinished_frame = pl.DataFrame(unfinished, schema={"row_id": pl.String, "arm": pl.String, "key": pl.String})
    plan = pl.concat(
        [f.select("key", "row_id", "arm") for f in (results, error_frame, unfinished_frame) if f.height]
    ).unique("key", maintain_order=True)
    # As load_results: missing is every planned key without a result, final errors included.
    missing_frame = plan.join(results.select("key"), on="key", how="anti")
    return ReplayResults({"samples": 1}, row_frame, plan, results, error_frame, missing_frame)


def write_results_dir(frames: ReplayResults, out: Path) -> Path:
    """Write ``frames`` as a results directory with the runner's own store (run.json, rows, plan, results/, errors/)."""
    plan = frames.plan.join(
        pl.concat([f.select("key", "sample") for f in (frames.results, frames.errors) if f.height]).unique("key"),
        on="key",
        how="left",
    ).with_columns(pl.col("sample").fill_null(0), pl.lit("r").alias("request_hash"), pl.lit("c").alias("config_hash"))
    write_run(out, {"drops": "constructed", **frames.run}, frames.rows, plan)
    writer = ResultsWriter(out)
    writer.add_all(frames.results.to_dicts())
    writer.add_all(frames.errors.to_dicts())
    writer.flush()
    return out
