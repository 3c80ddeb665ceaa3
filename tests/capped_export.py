"""Run a day's ingest and decide in this process under a hard cap on resident memory (a test's child).

    python tests/capped_export.py LANDING WARMUP_LANDING PARTNERS DT MEMORY_LIMIT_MB CAP_MB RUN_ID

First the same steps run on a tiny day (WARMUP_LANDING), so what any run loads once (modules, thread
pools) is in the baseline. Then the peak-RSS mark is reset (``/proc/self/clear_refs``), and a watchdog
thread kills the process (exit 3) the moment its resident set grows more than CAP_MB over the
baseline, while the day is exported with ``memory_limit_mb=MEMORY_LIMIT_MB``. The kernel's exact peak
(``VmHWM``) minus the baseline is printed as JSON with the run's figures.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracedrop.pipelines.export import day
from tracedrop.pipelines.export.settings import ExportSettings

MB = 1024 * 1024


def status_bytes(field: str) -> int:
    """A size from /proc/self/status (``VmRSS``, ``VmHWM``) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def watchdog(limit: int) -> None:
    """Kill the process as soon as its resident set exceeds ``limit`` bytes."""
    while True:
        rss = status_bytes("VmRSS")
        if rss > limit:
            sys.stderr.write(f"resident set {rss / MB:.1f} MB exceeded the cap of {limit / MB:.1f} MB\n")
            os._exit(3)
        time.sleep(0.002)


def main() -> None:
    landing, warmup, partners, dt, memory_mb, cap_mb, run_id = sys.argv[1:8]
    for url, run, limit in ((warmup, "warmup", 2048), (landing, run_id, int(memory_mb))):
        if run == run_id:
            Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
            base = status_bytes("VmRSS")
            threading.Thread(target=watchdog, args=(base + int(cap_mb) * MB,), daemon=True).start()
        settings = ExportSettings(landing_url=url, partners_path=partners, memory_limit_mb=limit, workers=1)
        ingest = day.ingest(settings, dt, run)
        decide = day.decide_day(settings, dt, run)
    growth = status_bytes("VmHWM") - base
    print(json.dumps({"growth_mb": growth / MB, "buckets": ingest["buckets"], "rows": decide["rows_in"]}))


if __name__ == "__main__":
    main()
