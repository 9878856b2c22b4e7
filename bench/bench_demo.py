"""`make demo`'s two commands on this machine: what it prints at the end, and where its time goes.

    .venv/bin/python bench/bench_demo.py [--keep DIR]

Runs the driver on configs/demo.yaml (the tiny tribe, one iteration, an evaluation before and after)
and `sparta-hpc report`, as `make demo` does, in a fresh run directory; prints the driver's closing
tables, the report's path, the wall time of every stage from the run's events.jsonl and the whole
demo's. Output: bench/results/bench_demo.txt (the figure the README quotes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import recorded  # bench/record.py: a script's own folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run(*args: str) -> tuple[str, str]:
    """A command's (stdout, stderr: its log); its failure ends the benchmark with their tails."""
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc.stdout, proc.stderr


def stage_seconds(run_dir: Path) -> list[tuple[str, str, float]]:
    """(point, stage, wall seconds) of every finished stage, in the order they ran."""
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    out = []
    for e in events:
        if e["event"] == "stage_done" and "seconds" in e:  # plan runs in the driver: no task, no time
            point = "initial" if e.get("iteration", -1) in (-1, None) else f"iter {e['iteration']}"
            out.append((point, e["stage"], e["seconds"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    with recorded("bench_demo"), tempfile.TemporaryDirectory(prefix="sparta-demo-") as tmp:
        run_dir = (args.keep or Path(tmp)) / "demo"
        start = time.time()
        summary, log = run("-m", "sparta_hpc.cli", "run", "configs/demo.yaml", f"run.dir={run_dir}")
        _, report = run("-m", "sparta_hpc.cli", "report", str(run_dir))
        wall = time.time() - start
        print(next(line for line in log.splitlines() if "sparta_hpc: finished in" in line))
        print(summary.rstrip())  # the driver's closing tables (its stdout): BEST INIT vs the selected model
        print(next(line for line in report.splitlines() if "index.html" in line))
        print(f"\nconfigs/demo.yaml, {os.cpu_count()} cores: {wall:.0f} s in all (driver and report)")
        print(f"{'point':8} {'stage':10} {'wall s':>7}")
        for point, stage, seconds in stage_seconds(run_dir):
            print(f"{point:8} {stage:10} {seconds:7.1f}")


if __name__ == "__main__":
    main()
