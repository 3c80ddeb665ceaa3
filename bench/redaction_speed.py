"""Redaction throughput in MB/s per core: tracedrop's redactor vs detect-secrets vs a plain `re` loop.

All three read the same synthetic coding-agent request bodies (fixed seed). Polars is pinned to one
thread so the figure is per core; the baselines get a slice of the same text (they are much
slower) and are reported in MB/s, so sizes do not skew the ratios.

    .venv/bin/python bench/redaction_speed.py [--mb 48] [--cpu-time]

`--cpu-time` times with the process's CPU clock instead of the wall clock: on a machine shared with
other jobs the wall clock also counts time spent waiting for a core.
"""

import os

os.environ["POLARS_MAX_THREADS"] = "1"  # before polars is imported: measure one core

import argparse
import sys
import tempfile
import time
from collections.abc import Callable

import polars as pl
from detect_secrets import SecretsCollection
from detect_secrets.settings import default_settings
from rich.console import Console
from rich.table import Table

from tracedrop.pipelines.redaction import Redactor, load_default_rules
from tracedrop.pipelines.redaction.synthetic import request_bodies


def _mb(texts: list[str]) -> float:
    return sum(len(text.encode()) for text in texts) / 1e6


CLOCK: list[Callable[[], float]] = [time.perf_counter]


def _timed(run: Callable[[], object], repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = CLOCK[0]()
        run()
        best = min(best, CLOCK[0]() - start)
    return best


def python_re_loop(texts: list[str]) -> list[str]:
    """The straightforward baseline: every rule's regex with Python `re.sub`, row by row."""
    rules = [(rule.regex, f"<REDACTED:{rule.type}>") for rule in load_default_rules().rules]
    out = []
    for text in texts:
        for regex, placeholder in rules:
            text = regex.sub(lambda m, p=placeholder: m.group(0)[: m.start("secret") - m.start()] + p, text)
        out.append(text)
    return out


def detect_secrets_scan(texts: list[str]) -> int:
    """detect-secrets' default plugins and filters over the same text, written as files (its usual input)."""
    found = 0
    with tempfile.TemporaryDirectory() as tmp, default_settings():
        for i, text in enumerate(texts):
            path = os.path.join(tmp, f"body-{i}.json")
            with open(path, "w") as handle:
                handle.write(text)
            secrets = SecretsCollection()
            secrets.scan_file(path)
            found += sum(len(s) for _, s in secrets.data.items())
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=48.0, help="MB of text for tracedrop (baselines get less)")
    parser.add_argument("--cpu-time", action="store_true", help="time with the CPU clock (shared machines)")
    args = parser.parse_args()
    if args.cpu_time:
        CLOCK[0] = time.process_time
    texts = request_bodies(int(args.mb * 1e6), seed=20261126)
    series = pl.Series(texts, dtype=pl.String)
    redactor = Redactor(key=b"speed-bench")
    redactor.redact(series.head(4))  # warm up regex compilation

    results = {"tracedrop (polars, 1 thread)": (_mb(texts), _timed(lambda: redactor.redact(series), repeats=2))}
    re_slice = texts[: max(1, len(texts) // 12)]
    results["python re loop (same rules)"] = (_mb(re_slice), _timed(lambda: python_re_loop(re_slice)))
    ds_slice = texts[: max(1, len(texts) // 48)]
    results["detect-secrets 1.5.0 (defaults)"] = (_mb(ds_slice), _timed(lambda: detect_secrets_scan(ds_slice)))

    ours = results["tracedrop (polars, 1 thread)"]
    ours_rate = ours[0] / ours[1]
    clock = "CPU" if args.cpu_time else "wall"
    rules = len(redactor.rules.rules)
    table = Table(title=f"redaction speed ({clock} clock), {rules} rules, redactor {redactor.version}")
    for column in ("engine", "MB", "seconds", "MB/s per core", "tracedrop is x faster"):
        table.add_column(column, justify="left" if column == "engine" else "right")
    for name, (mb, seconds) in results.items():
        rate = mb / seconds
        table.add_row(name, f"{mb:.1f}", f"{seconds:.2f}", f"{rate:.1f}", f"{ours_rate / rate:.1f}")
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
