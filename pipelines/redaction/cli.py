"""`tracedrop redact FILE|-`: show what the redactor does to a text, with a summary by type."""

import secrets
import sys
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from tracedrop.pipelines.redaction.redactor import Redactor


def redact_command(path: str) -> int:
    """Print FILE (or stdin for `-`) redacted to stdout, and a table of redactions by type to stderr; 2 if unreadable.

    Keyed hashes use a random key per run: consistent within the output, unlinkable to drops.
    """
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        reason = f"cannot be read ({exc.strerror}); give a readable file or - for standard input"
        print(f"tracedrop redact: {path}: {reason}", file=sys.stderr)
        return 2
    redactor = Redactor(key=secrets.token_bytes(32))
    result = redactor.redact(pl.Series([text], dtype=pl.String))
    sys.stdout.write(result.texts[0])
    table = Table(title=f"redactions (redactor {redactor.version})")
    table.add_column("type")
    table.add_column("count", justify="right")
    for rule_type, count in sorted(result.totals.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(rule_type, str(count))
    table.add_row("total", str(sum(result.totals.values())), style="bold")
    Console(stderr=True).print(table)
    return 0
