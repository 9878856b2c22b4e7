"""Where each run of a suite stands, read from its run directory, its driver's lock and its last submission.

    new          never submitted (no run directory, no submission)
    waiting      a baseline whose task's BEST INIT is not chosen yet (its best_init run's initial evaluation)
    queued       its driver job waits in Slurm
    running      a driver holds its lock, or its driver job runs in Slurm
    done         its driver finished every iteration
    failed       its driver stopped on a failure, died without a last word, or never started
    stopped      its driver stopped at --stop-after
    unknown      Slurm could not be asked about its driver job: nothing is submitted for it

`suite submit` submits new, failed and stopped runs (the same command resumes them) and nothing
else, so running it again is always safe. Each submission is recorded in SUITE_DIR/suite/<run>.json.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ...report import timeline
from ...report.status import probe_lock, slurm_states
from ...rundir.events import DRIVER_DONE, DRIVER_STOPPED, read_events
from ...rundir.files import atomic_write_json, read_json
from ...rundir.paths import RunPaths, point_label
from .spec import Run, Suite

SUBMITTABLE = ("new", "failed", "stopped")
# a driver job in one of these states may still run (a requeued one keeps its id and goes back to PENDING)
ALIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
         "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}


@dataclass
class RunState:
    state: str
    words: str  # the state in a few words, for status lines


def record_path(suite: Suite, run: Run) -> Path:
    return suite.dir / "suite" / f"{run.name}.json"


def log_dir(suite: Suite) -> Path:
    return suite.dir / "suite" / "logs"


def last_submission(suite: Suite, run: Run) -> dict | None:
    path = record_path(suite, run)
    try:
        return read_json(path) if path.exists() else None
    except (OSError, ValueError):
        return None  # a record being written or damaged: the run directory still says most


def record_submission(suite: Suite, run: Run, **fields) -> None:
    atomic_write_json(record_path(suite, run), {"run": run.name, "time": time.time(), "argv": run.driver_args(),
                                                **fields})


def finished(run: Run, paths: RunPaths, events: list[dict]) -> bool:
    """The driver's last word is done and every iteration is trained (not an `eval`-only walk)."""
    last = timeline.driver_state(events)
    if not last or last["event"] != DRIVER_DONE or run.cfg is None:
        return False
    return all(paths.is_done(t, "train") for t in range(run.cfg.tribe.iterations))


def read_state(suite: Suite, run: Run, slurm: dict[str, str] | None = None, slurm_error: str | None = None) -> RunState:
    """The run's state; `slurm`: {job id: state} of the recorded driver jobs (one squeue call for a suite)."""
    paths = RunPaths(run.dir)
    sub = last_submission(suite, run)
    job = sub.get("job") if sub else None
    events = read_events(paths.events)[0]
    held, _ = probe_lock(paths) if paths.lock.exists() else (False, "")
    if held:
        return RunState("running", "running: " + timeline.state_words(events, True))
    if finished(run, paths, events):
        return RunState("done", "done")
    if job is not None:
        if slurm_error:
            return RunState("unknown", f"driver job {job}: Slurm cannot be asked ({slurm_error})")
        state = (slurm or {}).get(job)
        if state in ALIVE:
            kind = "queued" if state in ("PENDING", "REQUEUED", "REQUEUE_HOLD") else "running"
            return RunState(kind, f"{kind}: driver job {job} {state}" + (
                f"; {timeline.state_words(events, None)}" if events else ""))
    if run.waits_on and run.member is None:
        return RunState("waiting", f"waiting: BEST INIT comes from {run.waits_on}'s initial evaluation")
    last = timeline.driver_state(events)
    if last is None:
        if sub is None:
            return RunState("new", "not submitted")
        where = f" (job {job}, log {sub.get('log')})" if job else ""
        return RunState("failed", f"failed: its driver never started{where}; exit {sub.get('exit', '?')}")
    if last["event"] == DRIVER_STOPPED:
        return RunState("stopped", timeline.state_words(events, False))
    words = timeline.state_words(events, False)
    if last["event"] == DRIVER_DONE:  # an `eval`-only walk, or the iterations grew since
        return RunState("failed", "failed: the driver ended before every iteration was trained")
    return RunState("failed", f"failed: {words}" + (f" (driver job {job}, log {sub.get('log')})" if job else ""))


def read_states(suite: Suite, runs: list[Run]) -> dict[str, RunState]:
    """Every run's state, asking Slurm once about every recorded driver job."""
    jobs = {}
    for run in runs:
        sub = last_submission(suite, run)
        if sub and sub.get("job"):
            jobs[run.name] = str(sub["job"])
    states, error = slurm_states(sorted(set(jobs.values()))) if jobs else ({}, None)
    return {run.name: read_state(suite, run, states, error if run.name in jobs else None) for run in runs}


def progress(run: Run) -> str:
    """'3/8 iterations trained, scored: initial, 0, 1, 2'."""
    if run.cfg is None:
        return ""
    paths = RunPaths(run.dir)
    trained = sum(paths.is_done(t, "train") for t in range(run.cfg.tribe.iterations))
    points = ", ".join(point_label(p, "{}") for p in paths.evaluated_points()) if paths.root.is_dir() else ""
    return f"{trained}/{run.cfg.tribe.iterations} iterations trained; evaluated: {points or 'none'}"
