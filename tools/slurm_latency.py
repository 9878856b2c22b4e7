"""Per stage of a Slurm run: how many jobs, and how long each waited from submission to start.

    python tools/slurm_latency.py RUN_DIR

Reads the driver's task_submit events (RUN/events.jsonl) and each job's Start
time from `sacct`; a long wait means the stage's resources queue, not that
the pipeline is slow.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from datetime import datetime
from pathlib import Path


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    events = [json.loads(x) for x in (Path(sys.argv[1]) / "events.jsonl").read_text().splitlines() if x.strip()]
    submits = [e for e in events if e["event"] == "task_submit"]
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-D", "--format=JobID,Start", "-j",
                          ",".join(sorted({e["job_id"] for e in submits}))],
                         capture_output=True, text=True, check=True).stdout
    starts: dict[str, float] = {}
    for line in out.splitlines():
        job, start = line.split("|")
        if start not in ("Unknown", "None", ""):
            # with -D a requeued job has several rows: its first start counts
            starts.setdefault(job, datetime.fromisoformat(start).timestamp())
    print(f"{'stage':10s} {'jobs':>5s} {'submit->start median s':>24s} {'max s':>7s}")
    for stage in ("generate", "judge", "gather", "aggregate", "train"):
        waits = [max(0.0, starts[e["job_id"]] - e["time"]) for e in submits if e["stage"] == stage and e["job_id"] in starts]
        if waits:
            print(f"{stage:10s} {len(waits):5d} {statistics.median(waits):24.1f} {max(waits):7.1f}")


if __name__ == "__main__":
    main()
