"""The run's event log (RUN/events.jsonl) and the progress a person reads on the console."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


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
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


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
