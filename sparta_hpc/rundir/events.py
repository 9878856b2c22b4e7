"""The run's event log (RUN/events.jsonl) and the progress a person reads on the console."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

# The kinds of event (a line's "event" field). The driver's own:
DRIVER_START = "driver_start"
DRIVER_DONE = "driver_done"
DRIVER_FAILED = "driver_failed"
DRIVER_STOPPED = "driver_stopped"  # --stop-after
DRIVER_END = (DRIVER_DONE, DRIVER_FAILED, DRIVER_STOPPED)  # its last word, when it has one
DRIVER_EVENTS = (DRIVER_START, *DRIVER_END)
RESOURCES_CHANGED = "resources_changed"  # resumed with changed cluster.* or eval.*
CONFIG_FORCED = "config_forced"  # resumed with another config (--force-config)
POLICY = "policy"  # the member a single-model method aligns
DECONTAMINATED = "decontaminated"
SELECTED_TESTS = "selected_tests"
COPIED = "copied"  # an iteration copied to run.archive_dir
# a stage and its tasks (launch.py): an attempt runs from its submission (or adoption) to its end
STAGE_START = "stage_start"
STAGE_DONE = "stage_done"
TASK_SUBMIT = "task_submit"
TASK_ADOPT = "task_adopt"  # a resumed driver waits for a Slurm job an earlier one submitted
TASK_DONE = "task_done"
TASK_FAILED = "task_failed"
SUBMIT_RETRY = "submit_retry"
# a damaged file, the unit recomputed for it, and how the recomputation compares (repair.py)
DAMAGED = "damaged"
INVALIDATED = "invalidated"
RECOMPUTED = "recomputed"


def read_events(path: Path) -> tuple[list[dict], int]:
    """(the events, how many lines were skipped): a line that does not parse, or is not an event,
    is skipped and counted; the driver may be appending as we read."""
    path = Path(path)
    if not path.exists():
        return [], 0
    events, bad = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(record, dict) and "event" in record and "time" in record:
            events.append(record)
        else:
            bad += 1
    return events, bad


class EventLog:
    """Appends one JSON object per line; a line is written whole or not at all (O_APPEND)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, **fields) -> None:
        record = {"time": round(time.time(), 3), "event": event, **fields}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        return read_events(self.path)[0]


def clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """'[iter 0] generate: 3/8 tasks done, 5 in flight, elapsed 0:01:12, ETA 0:01:55', at most every
    `every` seconds; "in flight" counts submitted tasks not finished yet (pending or running)."""

    def __init__(self, label: str, total: int, every: float = 10.0):
        self.label, self.total, self.every = label, total, every
        self.start = time.time()
        self.last_print = 0.0
        self.last_done = -1

    def update(self, done: int, in_flight: int, retried: int = 0) -> None:
        now = time.time()
        if done == self.last_done and now - self.last_print < self.every:
            return
        elapsed = now - self.start
        eta = f", ETA {clock(elapsed / done * (self.total - done))}" if 0 < done < self.total else ""
        extra = f", {retried} retried" if retried else ""
        log.info("%s: %d/%d tasks done, %d in flight%s, elapsed %s%s", self.label, done, self.total, in_flight,
                 extra, clock(elapsed), eta)
        self.last_print, self.last_done = now, done
