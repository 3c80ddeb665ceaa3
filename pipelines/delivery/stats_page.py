"""A small self-contained HTML page (no scripts, no external assets) of an experiment's stats document."""

from __future__ import annotations

from html import escape
from typing import Any

COLUMNS = (
    ("requests", "requests"),
    ("turns", "turns"),
    ("subjects", "subjects"),
    ("error_rate", "error rate"),
    ("latency_p50_ms", "latency p50 ms"),
    ("latency_p95_ms", "latency p95 ms"),
    ("rated_turns", "rated turns"),
    ("thumbs_up_rate", "👍 rate"),
    ("thumbs_down_rate", "👎 rate"),
)
SUPPRESSED_NOTE = ' <span class="muted">(suppressed: small cell)</span>'
STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}"
    "caption{text-align:left;font-weight:600}.muted{color:#888}"
)


def _cell(value: Any) -> str:
    if value is None:
        return '<td class="muted">–</td>'
    if isinstance(value, float):
        return f"<td>{value:.3f}</td>" if value < 10 else f"<td>{value:,.1f}</td>"
    if isinstance(value, int):
        return f"<td>{value:,}</td>"
    if isinstance(value, dict):
        text = ", ".join(f"{k}: {'<' + 'k' if v is None else v}" for k, v in value.items())
        return f"<td>{escape(text)}</td>"
    return f"<td>{escape(str(value))}</td>"


def _table(caption: str, label: Any, groups: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{escape(title)}</th>" for _, title in COLUMNS)
    body = []
    for group in groups:
        name = escape(label(group)) + (SUPPRESSED_NOTE if group["suppressed"] else "")
        cells = "".join(_cell(group[key]) for key, _ in COLUMNS)
        body.append(f"<tr><td>{name}</td>{cells}{_cell(group['subjects_by_allocation'])}{_cell(group['tokens'])}</tr>")
    return (
        f"<table><caption>{escape(caption)}</caption><tr><th>group</th>{head}<th>subjects by allocation</th>"
        f"<th>tokens</th></tr>{''.join(body)}</table>"
    )


def _timeline(entries: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{escape(e['variant_label'])}</td><td>{escape(e['checkpoint'])}</td>"
        f"<td>{escape(e['variant_version_id'])}</td>{_cell(e['first_hour'])}{_cell(e['last_hour'])}"
        f"<td>{escape(', '.join(e['days']))}</td></tr>"
        for e in entries
    )
    return (
        "<table><caption>Checkpoint timeline</caption><tr><th>slot</th><th>checkpoint</th><th>version</th>"
        f"<th>first hour</th><th>last hour</th><th>days</th></tr>{rows}</table>"
    )


def render_stats_page(document: dict[str, Any]) -> str:
    """The page: per checkpoint, per variant slot, and the checkpoint timeline."""
    title = f"{document['partner_id']} · experiment {document['experiment_id']}"
    k = document["min_subjects"]
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f"<p>Days: {escape(', '.join(document['days']) or 'none')}. Generated {escape(document['generated_at'])}. "
        f"Aggregates only; a group with fewer than {k} subjects is suppressed (–), and slot figures leave out "
        "suppressed checkpoints.</p>"
        + _table(
            "Per checkpoint (variant_version_id)",
            lambda g: f"{g['variant_label']} · {g['checkpoint']}",
            document["by_checkpoint"],
        )
        + _table("Per variant slot", lambda g: g["variant_label"], document["by_variant"])
        + _timeline(document["timeline"])
        + "</body></html>\n"
    )
