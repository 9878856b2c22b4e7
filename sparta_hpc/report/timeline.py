"""What events.jsonl says happened: every task attempt from its submission (or adoption) to its end,
and where the run is now. Shared by `sparta-hpc status` and the report's stage timeline.

An attempt is keyed by its job id: a rerun driver numbers its attempts from 1 again, so
(stage, iteration, task, attempt) can repeat across drivers, a job id cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..rundir.events import (
    CONFIG_FORCED,
    DRIVER_DONE,
    DRIVER_EVENTS,
    DRIVER_FAILED,
    DRIVER_START,
    DRIVER_STOPPED,
    POLICY,
    RESOURCES_CHANGED,
    STAGE_DONE,
    STAGE_START,
    TASK_ADOPT,
    TASK_DONE,
    TASK_FAILED,
    TASK_SUBMIT,
    clock,
    read_events,
)
from ..rundir.paths import EVAL_STAGES, INITIAL, RUN_STAGES, STAGES, point_label
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


def build(events: list[dict], unreadable: int = 0) -> Timeline:
    """Attempts from task_submit/task_adopt to task_done/task_failed, in order of submission."""
    tl = Timeline(events, unreadable=unreadable)
    by_job: dict[tuple, Attempt] = {}
    for e in events:
        kind = e["event"]
        if kind == DRIVER_START:
            # a new driver: what the old one still had running is unknown from here on (local jobs
            # die with their driver; Slurm jobs may be adopted, which reopens them below)
            for a in tl.attempts:
                if a.state == "in flight":
                    a.state, a.end = "lost", e["time"]
            continue
        if kind not in (TASK_SUBMIT, TASK_ADOPT, TASK_DONE, TASK_FAILED):
            continue
        key = (e.get("iteration"), e.get("stage"), e.get("task"), str(e.get("job_id")))
        a = by_job.get(key)
        if kind == TASK_SUBMIT or (kind == TASK_ADOPT and a is None):
            a = Attempt(e.get("iteration", INITIAL), e.get("stage", "?"), e.get("task"), e.get("attempt", 1),
                        str(e.get("job_id")), e["time"], adopted=kind == TASK_ADOPT)
            by_job[key] = a
            tl.attempts.append(a)
        elif kind == TASK_ADOPT:
            a.state, a.end, a.adopted = "in flight", None, True
        elif a is not None:
            a.end = e["time"]
            if kind == TASK_DONE:
                a.state, a.seconds, a.peak_rss_mb = "done", e.get("seconds"), e.get("peak_rss_mb")
            else:
                a.state, a.log, a.error = "failed", e.get("log"), e.get("error")
    return tl


def load(path: Path) -> Timeline:
    return build(*read_events(path))


def position(events: list[dict]) -> tuple[int | None, str | None]:
    """(iteration, stage) of the latest stage event: the stage running now, or the last one that ran."""
    for e in reversed(events):
        if e["event"] in (STAGE_START, STAGE_DONE, TASK_SUBMIT, DRIVER_STOPPED) and e.get("stage"):
            return e.get("iteration"), e["stage"]
    return None, None


def driver_state(events: list[dict]) -> dict | None:
    """The latest driver_* event (start, done, failed, stopped), None before any."""
    for e in reversed(events):
        if e["event"] in DRIVER_EVENTS:
            return e
    return None


def state_words(events: list[dict], driver_alive: bool | None) -> str:
    """The run's state in a few words: finished, stopped after judge (iteration 0), running (...), ..."""
    last = driver_state(events)
    iteration, stage = position(events)
    where = f"{place(iteration, stage)}, {stage}"
    if last is None:
        return "not started"
    if last["event"] == DRIVER_DONE:
        return "finished"
    if last["event"] == DRIVER_STOPPED:
        return f"stopped after {last.get('stage')} ({place(last.get('iteration'), last.get('stage'))})"
    if last["event"] == DRIVER_FAILED:
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
        if e["event"] == STAGE_START:
            start, done = e["time"], None
        elif e["event"] == STAGE_DONE:
            done = e
    return start, done


def place(iteration: int | None, stage: str | None = None) -> str:
    """Where a stage runs: 'iteration 3', 'evaluation after iteration 3', 'initial evaluation',
    'sft (before iteration 0)'."""
    if iteration is None:
        return "not started"
    if stage in RUN_STAGES:
        return f"{stage} (before iteration 0)"
    return point_label(iteration, "evaluation after iteration {}" if stage in EVAL_STAGES else "iteration {}",
                       "initial evaluation")


def describe(e: dict) -> str:
    """One event in plain words (without its time)."""
    kind, it, stage = e["event"], e.get("iteration"), e.get("stage")
    where = f"{place(it, stage)}, {stage}" if stage else ""
    task = "" if e.get("task") is None else f" task {e['task']}"
    if kind == DRIVER_START:
        return "driver started: " + " ".join(str(a) for a in e.get("argv", []))[:160]
    if kind == DRIVER_DONE:
        return f"driver finished the run in {duration(e.get('seconds', 0))}"
    if kind == DRIVER_FAILED:
        return f"driver stopped on a failure: {e.get('error', '?')}"
    if kind == DRIVER_STOPPED:
        return f"driver stopped after {stage} of {place(it, stage)} (--stop-after)"
    if kind == STAGE_START:
        return f"{where}: started, {e.get('tasks', '?')} task(s)"
    if kind == STAGE_DONE:
        took = f" in {duration(e['seconds'])}" if e.get("seconds") is not None else ""
        return f"{where}: done{took}"
    if kind == TASK_SUBMIT:
        return f"{where}:{task} submitted (attempt {e.get('attempt', 1)}, job {e.get('job_id')})"
    if kind == TASK_ADOPT:
        return f"{where}:{task} still in Slurm as job {e.get('job_id')} ({e.get('state', '?')}): adopted"
    if kind == TASK_DONE:
        return f"{where}:{task} done in {duration(e.get('seconds', 0))} (peak {e.get('peak_rss_mb', '?')} MB)"
    if kind == TASK_FAILED:
        return f"{where}:{task} FAILED (attempt {e.get('attempt', '?')}): {e.get('error', '?')}"
    if kind == RESOURCES_CHANGED:
        return "resumed with changed cluster or eval settings (diff in events.jsonl)"
    if kind == CONFIG_FORCED:
        return "resumed with a changed config (--force-config)"
    if kind == POLICY:
        return f"single-model method aligns {e.get('member')}"
    return kind + "".join(f" {k}={v}" for k, v in e.items() if k not in ("time", "event"))


def duration(seconds: float | None) -> str:
    """'0.4 s', '42.0 s', then h:mm:ss: a scripted or tiny run's tasks take well under a second."""
    seconds = seconds or 0.0
    return f"{seconds:.1f} s" if seconds < 60 else clock(seconds)
