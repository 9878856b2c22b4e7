"""Submitting a stage's tasks through submitit, waiting, retrying and reporting progress.

The local executor (the default) runs each task as a process on this machine,
`cluster.local_parallel` at a time; `debug` runs them in the driver's own
process (breakpoints work). A failed task is resubmitted, for its own
shards only, up to `cluster.max_retries` times; then the stage stops with a
message naming the task and its log file. Rerunning the driver resumes.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from .config import Config
from .events import EventLog, Progress
from .paths import RunPaths
from .tasks import run_task

log = logging.getLogger("sparta_hpc")

POLL_SECONDS = 1.0


class StageFailed(RuntimeError):
    """A task kept failing; the message names the stage, the task and its log."""


@dataclass
class Attempt:
    task: int | None
    number: int
    job: object  # submitit.Job


def make_executor(cfg: Config, paths: RunPaths, stage: str):
    import submitit

    folder = paths.logs / stage / "%j"
    if cfg.cluster.executor == "debug":
        return submitit.DebugExecutor(folder=folder)
    executor = submitit.LocalExecutor(folder=folder)
    # local jobs have no time limit of their own; the default would kill a task after 2 minutes
    executor.update_parameters(timeout_min=7 * 24 * 60)
    return executor


def run_stage(cfg: Config, paths: RunPaths, events: EventLog, stage: str, iteration: int,
              tasks: list[int | None]) -> None:
    """Run `tasks` of `stage` (None: the stage's single task) until all succeed or one runs out of retries."""
    if not tasks:
        return
    executor = make_executor(cfg, paths, stage)
    label = f"[iter {iteration}] {stage}"
    parallel = cfg.cluster.local_parallel if cfg.cluster.executor == "local" else len(tasks)
    driver_pid = os.getpid() if cfg.cluster.executor == "local" else None
    waiting = list(tasks)
    running: list[Attempt] = []
    attempts = {t: 0 for t in tasks}
    done, retried = 0, 0
    progress = Progress(label, len(tasks))
    events.write("stage_start", stage=stage, iteration=iteration, tasks=len(tasks))
    start = time.time()
    while waiting or running:
        while waiting and len(running) < parallel:
            task = waiting.pop(0)
            attempts[task] += 1
            job = executor.submit(run_task, str(paths.root), stage, iteration, task, driver_pid)
            running.append(Attempt(task, attempts[task], job))
            events.write("task_submit", stage=stage, iteration=iteration, task=task, attempt=attempts[task],
                         job_id=str(job.job_id))
        time.sleep(0 if cfg.cluster.executor == "debug" else POLL_SECONDS)
        for attempt in [a for a in running if a.job.done()]:
            running.remove(attempt)
            error = attempt.job.exception()
            if error is None:
                done += 1
                events.write("task_done", stage=stage, iteration=iteration, task=attempt.task,
                             job_id=str(attempt.job.job_id), **attempt.job.result())
                continue
            log_file = attempt.job.paths.stderr
            events.write("task_failed", stage=stage, iteration=iteration, task=attempt.task,
                         attempt=attempt.number, job_id=str(attempt.job.job_id), log=str(log_file),
                         error=str(error).strip().splitlines()[-1][:500] if str(error).strip() else repr(error))
            if attempt.number <= cfg.cluster.max_retries:
                log.warning("%s: task %s failed (attempt %d), retrying; log: %s", label, attempt.task,
                            attempt.number, log_file)
                waiting.append(attempt.task)
                retried += 1
                continue
            for other in running:
                other.job.cancel(check=False)
            raise StageFailed(
                f"{stage} (iteration {iteration}) task {attempt.task} failed {attempt.number} times; "
                f"see its log {log_file}. Fix the cause and run the same command again to resume.")
        progress.update(done, len(running), retried)
    events.write("stage_done", stage=stage, iteration=iteration, tasks=len(tasks),
                 seconds=round(time.time() - start, 2))
