"""The export with this tree's redaction vs another commit's (default `main`), on the same synthetic day.

    .venv/bin/python bench/redaction_export.py [--gb 1] [--ref main] [--rounds 2]

One landing zone is synthesised; the other commit's tree is extracted with `git archive`; then the two
exports (`bench/export.py`'s tracedrop runner, each in its own process, its export state removed
before each run) alternate `--rounds` times, so load from other jobs on a shared machine hits both
alike. Wall and CPU seconds (user + system) are printed per run, then the medians and the ratio
this tree / ref: CPU time is the fairer figure when the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from export import SALT_ENVS, demo_partners, synthesise  # noqa: E402

STATE_DIR = "_tracedrop"  # the export's own area in the landing zone: removed so each run starts afresh


def extract_tree(ref: str, into: Path) -> Path:
    """The tree of git `ref` of this repository, written under `into`."""
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "tree.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), ref], check=True)
    tree = into / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def export_once(tree: Path, landing: Path, partners: Path, drops: Path) -> dict[str, float]:
    """One export with the code of `tree` on a fresh export state; its wall, CPU seconds and rows."""
    shutil.rmtree(landing / STATE_DIR, ignore_errors=True)
    shutil.rmtree(drops, ignore_errors=True)
    probe = (
        "import json, os, resource, sys, time; from pathlib import Path\n"
        f"os.environ.update({SALT_ENVS!r})\n"
        f"sys.path.insert(0, {str(tree)!r}); sys.path.insert(0, {str(tree / 'bench')!r})\n"
        "import export\n"
        "start = time.perf_counter()\n"
        f"export.run_tracedrop(Path({str(landing)!r}), Path({str(partners)!r}), Path({str(drops)!r}))\n"
        "u = resource.getrusage(resource.RUSAGE_SELF)\n"
        "print(json.dumps({'wall': time.perf_counter() - start, 'cpu': u.ru_utime + u.ru_stime}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=tree, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"export with {tree} failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    rows = json.loads(lines[-2])["rows"]
    return {**json.loads(lines[-1]), "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="landing size in GB")
    parser.add_argument("--ref", default="main", help="the commit whose export is the baseline")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each export, alternating")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="redaction-export-") as tmp:
        work = Path(tmp)
        baseline = extract_tree(args.ref, work / "ref")
        landing = work / "landing"
        with console.status(f"synthesising a {args.gb} GB day ..."):
            size = synthesise(landing, args.gb)
        partners = demo_partners(work / "partners.yaml", work / "drops")
        trees = {args.ref: baseline, "this tree": ROOT}
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for round_ in range(args.rounds):
            for name, tree in trees.items():
                with console.status(f"round {round_ + 1}: export with {name} ..."):
                    result = export_once(tree, landing, partners, work / "drops")
                runs[name].append(result)
                console.print(f"round {round_ + 1} {name}: wall {result['wall']:.1f} s, CPU {result['cpu']:.1f} s")
    table = Table(title=f"Export of one {size / 1e9:.2f} GB synthetic day, median of {args.rounds} alternating runs")
    for column in ("redaction engine", "rows out", "wall s", "CPU s", "MB/s per core", "CPU vs " + args.ref):
        table.add_column(column, justify="right")
    ref_cpu = statistics.median(r["cpu"] for r in runs[args.ref])
    for name, results in runs.items():
        wall = statistics.median(r["wall"] for r in results)
        cpu = statistics.median(r["cpu"] for r in results)
        table.add_row(
            name,
            f"{results[0]['rows']:,}",
            f"{wall:.1f}",
            f"{cpu:.1f}",
            f"{size / 1e6 / cpu:.1f}",
            f"{cpu / ref_cpu:.2f}x",
        )
    console.print(table)
    console.print(f"CPU vs {args.ref}: this tree's CPU seconds over the baseline's (< 1 means this tree is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
