"""The replay report: HTML, summary.json and a Markdown summary, all rendered from the comparison summary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracedrop.replay.report.html import render_html
from tracedrop.replay.report.markdown import render_markdown

SUMMARY_JSON = "summary.json"
SUMMARY_MARKDOWN = "summary.md"


@dataclass(frozen=True)
class ReportFiles:
    """Where a report was written."""

    html: Path
    summary: Path
    markdown: Path


def write_report(summary: dict[str, Any], html_path: str | Path) -> ReportFiles:
    """Write the HTML file, and ``summary.json`` and ``summary.md`` beside it."""
    html = Path(html_path)
    html.parent.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(html, html.parent / SUMMARY_JSON, html.parent / SUMMARY_MARKDOWN)
    files.summary.write_text(json.dumps(summary, indent=2, allow_nan=False))
    files.markdown.write_text(render_markdown(summary))
    html.write_text(render_html(summary))
    return files
