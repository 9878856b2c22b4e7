"""What events.jsonl says happened: every task attempt from its submission (or adoption) to its end,
and where the run is now. Shared by `sparta-hpc status` and the report's stage timeline.

An attempt is keyed by its job id: a rerun driver numbers its attempts from 1 again, so
(stage, iteration, task, attempt) can repeat across drivers, a job id cannot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..rundir.events import clock
from ..rundir.paths import EVAL_STAGES, INITIAL, RUN_STAGES, STAGES

DRIVER_END = ("driver_done", "driver_failed", "driver_stopped")
STAGE_ORDER = RUN_STAGES + STAGES + EVAL_STAGES  # within one iteration number: iteration, then its evaluation


@dataclass
class Attempt:
    iteration: int
    stage: str
    task: int | None
    attempt: int
    job_id: str
    start: float  # submitted, or adopted by a rerun driver
    end: float | None = None
    state: str = "in flight"  # done | failed | in flight | lost (its driver ended without hearing back)
    seconds: float | None = None  # the task's own wall time (task_done)
    peak_rss_mb: float | None = None
    log: str | None = None
    error: str | None = None
    adopted: bool = False


@dataclass
class Timeline:
    events: list[dict]
    attempts: list[Attempt] = field(default_factory=list)
    unreadable: int = 0  # lines that are not JSON (a line being written as we read)


def read_events(path: Path) -> tuple[list[dict], int]:
    """The events, skipping lines that do not parse (counted): the driver may be appending as we read."""
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


def build(events: list[dict], unreadable: int = 0) -> Timeline:
    """Attempts from task_submit/task_adopt to task_done/task_failed, in order of submission."""
    tl = Timeline(events, unreadable=unreadable)
    by_job: dict[tuple, Attempt] = {}
    for e in events:
        kind = e["event"]
        if kind == "driver_start":
            # a new driver: what the old one still had running is unknown from here on (local jobs
            # die with their driver; Slurm jobs may be adopted, which reopens them below)
            for a in tl.attempts:
                if a.state == "in flight":
                    a.state, a.end = "lost", e["time"]
            continue
        if kind not in ("task_submit", "task_adopt", "task_done", "task_failed"):
            continue
        key = (e.get("iteration"), e.get("stage"), e.get("task"), str(e.get("job_id")))
        a = by_job.get(key)
        if kind == "task_submit" or (kind == "task_adopt" and a is None):
            a = Attempt(e.get("iteration", INITIAL), e.get("stage", "?"), e.get("task"), e.get("attempt", 1),
                        str(e.get("job_id")), e["time"], adopted=kind == "task_adopt")
            by_job[key] = a
            tl.attempts.append(a)
        elif kind == "task_adopt":
            a.state, a.end, a.adopted = "in flight", None, True
        elif a is not None:
            a.end = e["time"]
            if kind == "task_done":
                a.state, a.seconds, a.peak_rss_mb = "done", e.get("seconds"), e.get("peak_rss_mb")
            else:
                a.state, a.log, a.error = "failed", e.get("log"), e.get("error")
    return tl


def load(path: Path) -> Timeline:
    return build(*read_events(path))


def position(events: list[dict]) -> tuple[int | None, str | None]:
    """(iteration, stage) of the latest stage event: the stage running now, or the last one that ran."""
    for e in reversed(events):
        if e["event"] in ("stage_start", "stage_done", "task_submit", "driver_stopped") and e.get("stage"):
            return e.get("iteration"), e["stage"]
    return None, None


def driver_state(events: list[dict]) -> dict | None:
    """The latest driver_* event (start, done, failed, stopped), None before any."""
    for e in reversed(events):
        if e["event"].startswith("driver_"):
            return e
    return None


def state_words(events: list[dict], driver_alive: bool | None) -> str:
    """The run's state in a few words: finished, stopped after judge (iteration 0), running (...), ..."""
    last = driver_state(events)
    iteration, stage = position(events)
    where = f"{point_label(iteration, stage)}, {stage}"
    if last is None:
        return "not started"
    if last["event"] == "driver_done":
        return "finished"
    if last["event"] == "driver_stopped":
        return f"stopped after {last.get('stage')} ({point_label(last.get('iteration'), last.get('stage'))})"
    if last["event"] == "driver_failed":
        return f"failed ({where})"
    if driver_alive:
        return f"running ({where})"
    return f"interrupted ({where}; no driver holds driver.lock)" if driver_alive is False else f"unknown ({where})"


def stage_bounds(events: list[dict], iteration: int, stage: str) -> tuple[float | None, dict | None]:
    """(time of the latest stage_start, the stage_done after it) of one stage of one iteration."""
    start, done = None, None
    for e in events:
        if e.get("stage") != stage or e.get("iteration") != iteration:
            continue
        if e["event"] == "stage_start":
            start, done = e["time"], None
        elif e["event"] == "stage_done":
            done = e
    return start, done


def point_label(iteration: int | None, stage: str | None = None) -> str:
    """'iteration 3', 'evaluation after iteration 3', 'initial evaluation', 'sft (before iteration 0)'."""
    if iteration is None:
        return "not started"
    if stage in RUN_STAGES:
        return f"{stage} (before iteration 0)"
    if iteration == INITIAL:
        return "initial evaluation"
    if stage in EVAL_STAGES:
        return f"evaluation after iteration {iteration}"
    return f"iteration {iteration}"


def describe(e: dict) -> str:
    """One event in plain words (without its time)."""
    kind, it, stage = e["event"], e.get("iteration"), e.get("stage")
    where = f"{point_label(it, stage)}, {stage}" if stage else ""
    task = "" if e.get("task") is None else f" task {e['task']}"
    if kind == "driver_start":
        return "driver started: " + " ".join(str(a) for a in e.get("argv", []))[:160]
    if kind == "driver_done":
        return f"driver finished the run in {duration(e.get('seconds', 0))}"
    if kind == "driver_failed":
        return f"driver stopped on a failure: {e.get('error', '?')}"
    if kind == "driver_stopped":
        return f"driver stopped after {stage} of {point_label(it, stage)} (--stop-after)"
    if kind == "stage_start":
        return f"{where}: started, {e.get('tasks', '?')} task(s)"
    if kind == "stage_done":
        took = f" in {duration(e['seconds'])}" if e.get("seconds") is not None else ""
        return f"{where}: done{took}"
    if kind == "task_submit":
        return f"{where}:{task} submitted (attempt {e.get('attempt', 1)}, job {e.get('job_id')})"
    if kind == "task_adopt":
        return f"{where}:{task} still in Slurm as job {e.get('job_id')} ({e.get('state', '?')}): adopted"
    if kind == "task_done":
        return f"{where}:{task} done in {duration(e.get('seconds', 0))} (peak {e.get('peak_rss_mb', '?')} MB)"
    if kind == "task_failed":
        return f"{where}:{task} FAILED (attempt {e.get('attempt', '?')}): {e.get('error', '?')}"
    if kind == "resources_changed":
        return "resumed with changed cluster or eval settings (diff in events.jsonl)"
    if kind == "config_forced":
        return "resumed with a changed config (--force-config)"
    if kind == "policy":
        return f"single-model method aligns {e.get('member')}"
    return kind + "".join(f" {k}={v}" for k, v in e.items() if k not in ("time", "event"))


def duration(seconds: float | None) -> str:
    """'0.4 s', '42.0 s', then h:mm:ss: a scripted or tiny run's tasks take well under a second."""
    seconds = seconds or 0.0
    return f"{seconds:.1f} s" if seconds < 60 else clock(seconds)
