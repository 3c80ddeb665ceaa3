"""Benchmark ``tracedrop synth``: generate a ~N GB landing zone and report MB/s, rows/s and peak memory.

    .venv/bin/python bench/synth.py --gb 1.0 [--gzip] [--out DIR]

A small calibration run estimates bytes per request, so the main run picks ``--requests-per-day``
to land near the requested size.  The baseline is the same number of bytes written as plain files
(the disk's ceiling on this machine), printed side by side with the generator's rate.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from tracedrop.pipelines.synth.generate import SynthConfig, generate
from tracedrop.storage.objectstore import open_store

CALIBRATION_REQUESTS = 3000
BENCH_DAYS = 4


def tree_bytes(root: Path) -> tuple[int, int]:
    """Total bytes and number of files under ``root``."""
    total = count = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            total += (Path(dirpath) / name).stat().st_size
            count += 1
    return total, count


def baseline_write(root: Path, total: int, files: int) -> float:
    """Seconds to write ``total`` bytes as ``files`` plain files of equal size (fsync'd, like the store)."""
    size = max(1, total // max(1, files))
    chunk = os.urandom(min(size, 1 << 20)) * (size // min(size, 1 << 20) + 1)
    root.mkdir(parents=True)
    started = time.perf_counter()
    for index in range(files):
        with open(root / f"{index:08d}", "wb") as handle:
            handle.write(chunk[:size])
            handle.flush()
            os.fsync(handle.fileno())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=1.0, help="target landing-zone size in GB (default 1.0)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--out", help="directory to write (default: a temporary directory, removed after)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        work = Path(args.out or tmp)
        calibration = work / "calibration"
        summary = generate(
            open_store(calibration), SynthConfig(days=1, requests_per_day=CALIBRATION_REQUESTS, seed=args.seed)
        )
        truncated = 4 * 1024 * 1024  # the run's one oversized body is not per-request volume
        per_request = (tree_bytes(calibration)[0] - truncated) / sum(summary["rows"]["usage"].values())
        requests_per_day = max(1000, int(args.gb * 1e9 / per_request / BENCH_DAYS))

        out = work / "landing"
        config = SynthConfig(days=BENCH_DAYS, requests_per_day=requests_per_day, seed=args.seed, gzip=args.gzip)
        started = time.perf_counter()
        summary = generate(open_store(out), config)
        elapsed = time.perf_counter() - started
        total, files = tree_bytes(out)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows = sum(n for days in summary["rows"].values() for n in days.values())
        usage_rows = sum(summary["rows"]["usage"].values())
        baseline = baseline_write(work / "baseline", total, files)

    blobs = summary["blobs"]
    flags = " --gzip" if args.gzip else ""
    print(f"synth --days {BENCH_DAYS} --requests-per-day {requests_per_day} --seed {args.seed}{flags}")
    print(f"  written        {total / 1e9:8.2f} GB in {files:,} objects ({elapsed:.1f} s)")
    print(
        f"  throughput     {total / 1e6 / elapsed:8.1f} MB/s   (baseline plain fsync'd writes: "
        f"{total / 1e6 / baseline:.1f} MB/s, ratio {baseline / elapsed:.2f})"
    )
    print(f"  rows           {rows / elapsed:8,.0f} lines/s ({usage_rows / elapsed:,.0f} usage rows/s, {rows:,} lines)")
    print(
        f"  prompts        {blobs['prompts']['written']:,} written, {blobs['prompts']['deduplicated']:,} deduplicated"
    )
    print(f"  peak RSS       {peak_mb:8.0f} MB")


if __name__ == "__main__":
    main()
