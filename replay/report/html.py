"""The replay report as ONE self-contained HTML file (inline CSS and SVG; opens offline), from the summary JSON."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from tracedrop.replay.report.diff import side_by_side
from tracedrop.replay.report.svg import cdf_plot, fmt, forest_plot, histogram, wins_bars
from tracedrop.replay.report.tables import (
    AGREEMENT_HEADER,
    COMPARISON_HEADER,
    CONSISTENCY_HEADER,
    COVERAGE_HEADER,
    FEEDBACK_HEADER,
    SLICE_HEADER,
    agreement_rows,
    comparison_rows,
    consistency_rows,
    coverage_rows,
    feedback_rows,
    skipped_rows_note,
    slice_rows,
)

STYLE = """
body{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
.warn{background:#fff3cd;padding:8px;border:1px solid #e0c060}.ok{color:#2d6a2d}
.plots{display:flex;flex-wrap:wrap;gap:16px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:8px;margin-bottom:18px}
.pair pre{white-space:pre-wrap;background:#fafafa;border:1px solid #ddd;padding:8px;margin:0;font-size:12px;
max-height:320px;overflow:auto}
del{background:#fbd0d0;text-decoration:none}ins{background:#c9f0c9;text-decoration:none}
.muted{color:#666;font-size:12px}
"""


def html_table(header: Sequence[str], rows: list[list[str]]) -> str:
    """A table of already formatted, not yet escaped cells."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(summary: dict[str, Any]) -> str:
    """Summary tables, forest plots, CDFs, histograms, wins/ties/losses and the worst regressions."""
    baseline, candidates = summary["baseline"], summary["candidates"]
    missing = sum(arm["missing"] for arm in summary["coverage"].values())
    title = f"Replay: {', '.join(candidates)} vs {baseline}"
    sections = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">Generated {escape(summary["generated_at"])}. Drops: {escape(str(summary["run"]["drops"]))}.'
        f" Statistics: {escape(summary['ci_method'])}; p-values Holm-corrected across candidates and metrics "
        f"(alpha {summary['alpha']}). Samples are averaged within a row before rows are compared.</p>",
        f'<p class="warn">{missing} planned pairs are missing: they are not counted as passing.</p>'
        if missing
        else '<p class="ok">Every planned pair has a result or a final error.</p>',
        f'<p class="muted">{escape(skipped_rows_note(summary))}</p>',
        "<h2>Coverage</h2>",
        html_table(COVERAGE_HEADER, coverage_rows(summary)),
        "<h2>Paired differences (candidate − baseline, per row)</h2>",
        html_table(COMPARISON_HEADER, comparison_rows(summary)),
        "<h2>Forest plot of paired differences (95% CI)</h2>",
        '<div class="plots">' + _forests(summary) + "</div>",
        "<h2>Agreement with the baseline</h2>",
        html_table(AGREEMENT_HEADER, agreement_rows(summary)),
        *(
            ["<h2>Repeated samples</h2>", html_table(CONSISTENCY_HEADER, consistency)]
            if (consistency := consistency_rows(summary))
            else []
        ),
        "<h2>Latency and time to first token</h2>",
        '<div class="plots">' + _cdfs(summary) + "</div>",
        "<h2>Similarity to the baseline</h2>",
        '<div class="plots">' + _histograms(summary) + "</div>",
        "<h2>Wins, ties and losses per row</h2>",
        _wins(summary),
    ]
    if summary.get("judge"):
        sections += ["<h2>Pairwise judge</h2>", _judge(summary["judge"])]
    sections += [
        "<h2>Human feedback</h2>",
        '<p class="muted">Changed: not an exact match of the baseline. Broken: errored where the baseline did not, '
        "called other tools, or lost JSON validity.</p>",
        html_table(FEEDBACK_HEADER, feedback_rows(summary)),
        "<h2>Slices</h2>",
        html_table(SLICE_HEADER, slice_rows(summary)),
        "<h2>Worst regressions</h2>",
        _worst(summary),
    ]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>"
    )


def _forests(summary: dict[str, Any]) -> str:
    plots = []
    for metric in dict.fromkeys(c["metric"] for c in summary["comparisons"]):
        rows = [c for c in summary["comparisons"] if c["metric"] == metric]
        plots.append(
            forest_plot(
                rows[0]["label"],
                [c["candidate"] for c in rows],
                [(c["diff"], c["ci_low"], c["ci_high"]) for c in rows],
            )
        )
    return "".join(plots)


def _cdfs(summary: dict[str, Any]) -> str:
    d = summary["distributions"]
    return cdf_plot("Latency CDF per arm", "ms from send", d["cdf_probabilities"], d["latency_ms"]) + cdf_plot(
        "Time to first token CDF per arm (streamed calls)", "ms", d["cdf_probabilities"], d["ttft_ms"]
    )


def _histograms(summary: dict[str, Any]) -> str:
    arms = summary["arms"]
    return "".join(
        histogram(f"{candidate} vs {summary['baseline']}", counts, arms.index(candidate))
        for candidate, counts in summary["distributions"]["similarity_histogram"].items()
    )


def _wins(summary: dict[str, Any]) -> str:
    rows = [c for c in summary["comparisons"] if c["better"] is not None]
    if not rows:
        return "<p>No directional metric.</p>"
    return wins_bars(
        "Rows where the candidate is better / equal / worse than the baseline",
        [f"{c['candidate']} · {c['label']}" for c in rows],
        [(c["wins"], c["ties"], c["losses"]) for c in rows],
    )


def _judge(judge: dict[str, Any]) -> str:
    rows = [
        [candidate, str(v["pairs"]), str(v["wins"]), str(v["ties"]), str(v["losses"]), fmt(v["position_bias_rate"])]
        for candidate, v in judge["candidates"].items()
    ]
    trust = (
        f"Agreement with human thumbs on {judge['human_rated_pairs']} rated pairs: {fmt(judge['human_agreement'])}, "
        f"Cohen's kappa {fmt(judge['human_kappa'])}. Each pair is judged in both orders; a tie when they disagree."
    )
    return (
        f"<p>Judge <code>{escape(judge['model'])}</code>. Position-bias rate {fmt(judge['position_bias_rate'])}. "
        f"{escape(trust)}</p>" + html_table(("candidate", "pairs", "wins", "ties", "losses", "position bias"), rows)
    )


def _worst(summary: dict[str, Any]) -> str:
    parts = []
    for candidate, rows in summary["worst"].items():
        parts.append(
            f"<h3>{escape(candidate)}</h3>"
            f'<div class="pair"><b>{escape(summary["baseline"])} (baseline)</b><b>{escape(candidate)}</b></div>'
        )
        if not rows:
            parts.append("<p>No regression.</p>")
        for row in rows:
            old, new = side_by_side(row["baseline_text"], row["output_text"])
            what = "error" if row["error"] else f"similarity {fmt(row['similarity'])}"
            parts.append(
                f'<p class="muted">row {escape(str(row["row_id"]))} · session {escape(str(row["session_id"]))} · '
                f"{escape(str(row['variant_label']))} · {escape(str(row['request_kind']))} · "
                f"feedback {escape(str(row['feedback_rating']))} · sample {row['sample']} · {what}</p>"
                f'<div class="pair"><pre>{old}</pre><pre>{new}</pre></div>'
            )
    return "".join(parts)
