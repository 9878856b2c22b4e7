"""Submitting a stage's tasks through submitit, waiting, retrying and reporting progress.

`slurm`: a stage's tasks go out as one job array (`cluster.<stage>` gives its
resources); the local executor (the default) runs each task as a process on
this machine, `cluster.local_parallel` at a time; `debug` runs them in the
driver's own process (breakpoints work). A failed or cancelled task is
resubmitted, for its own shards only, up to `cluster.max_retries` times; then
the stage stops with a message naming the task and its log file. Rerunning
the driver resumes.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field

from .backends.devices import GpuPool, visible_gpus
from .config.resources import PER_MODEL
from .config.resources import for_task as task_resources
from .config.resources import key as resources_key
from .config.schema import Config, Resources, config_to_yaml
from .errors import StageFailed
from .rundir.events import (
    STAGE_DONE,
    STAGE_START,
    SUBMIT_RETRY,
    TASK_ADOPT,
    TASK_DONE,
    TASK_FAILED,
    TASK_SUBMIT,
    EventLog,
    Progress,
)
from .rundir.paths import ARRAY_STAGES, RunPaths, point_label
from .rundir.plan import stage_plan
from .rundir.provenance import record_interpreter, write_config
from .tasks import StageTask

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0


@dataclass
class Submitted:
    """A task's job that this driver submitted (or adopted) and waits for. What the events say of
    every attempt, this driver's and earlier ones', is report/timeline.py's Attempt."""

    task: int | None
    number: int
    job: object  # submitit.Job
    error: BaseException | None = None
    gpus: list[str] = field(default_factory=list)  # local executor: the GPUs the task was given

    def finished(self, in_process: bool) -> bool:
        """Whether the job has ended (then `error` says how).

        A debug job runs here, in the driver's process, on the first call. Its
        `exception()` runs it once: `done()` would open submitit's post-mortem
        debugger on a failure, and a failed debug job would run again on every
        later call. The task's changes to os.environ are undone, as in its own process.
        """
        if not in_process:
            if not self.job.done():
                return False
            self.error = self.job.exception()
            return True
        environ = dict(os.environ)
        try:
            self.error = self.job.exception()
        finally:
            os.environ.clear()
            os.environ.update(environ)
        return True


def slurm_parameters(r: Resources, stage: str) -> dict:
    """submitit SlurmExecutor parameters for one stage's jobs."""
    params = dict(job_name=f"sparta-{stage}", time=r.time_min, nodes=r.nodes, ntasks_per_node=r.tasks_per_node,
                  cpus_per_task=r.cpus_per_task, mem=f"{r.mem_gb}G", array_parallelism=r.array_parallelism,
                  setup=list(r.setup), additional_parameters=dict(r.extra_sbatch),
                  # time to checkpoint before a timeout kill: requeued tasks resume
                  signal_delay_s=120)
    if r.gpus_per_node:
        params["gpus_per_node"] = r.gpus_per_node
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(r, key):
            params[key] = getattr(r, key)
    return params


def make_executor(cfg: Config, paths: RunPaths, stage: str, resources: Resources | None = None):
    """The executor of a stage's jobs with `resources` (default: cluster.<stage>)."""
    import submitit

    folder = paths.job_logs(stage)
    if cfg.cluster.executor == "debug":
        return submitit.DebugExecutor(folder=folder)
    resources = resources or getattr(cfg.cluster, stage)
    if cfg.cluster.executor == "slurm":
        # a job that hits its time limit (or is preempted) is requeued by submitit up to
        # max_timeouts times; a failed one is resubmitted by run_stage (max_retries)
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=cfg.cluster.max_timeouts,
                                          python=resources.python)  # None: the driver's own
        executor.update_parameters(**slurm_parameters(resources, stage))
        return executor
    executor = submitit.LocalExecutor(folder=folder, python=resources.python)
    # local jobs have no time limit of their own; the default would kill a task after 2 minutes
    executor.update_parameters(timeout_min=7 * 24 * 60)
    return executor


def sbatch_script(cfg: Config, stage: str, n_tasks: int, folder: str = "RUN/logs",
                  resources: Resources | None = None) -> str:
    """The sbatch script submitit writes for a stage's job array (for --dry-run and the golden test)."""
    from submitit.slurm.slurm import _make_sbatch_string

    resources = resources or getattr(cfg.cluster, stage)
    params = slurm_parameters(resources, stage)
    python = resources.python or "python"
    return _make_sbatch_string(command=f"{python} -u -m submitit.core._submit {folder}/{stage}/%j",
                               folder=f"{folder}/{stage}/%j", map_count=n_tasks if stage in ARRAY_STAGES else None,
                               **params)


# Slurm states of a job that is still going to produce its result.
ALIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
         "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT")


def adopt_in_flight(cfg: Config, paths: RunPaths, events: EventLog, stage: str, iteration: int,
                    tasks: list[int | None]) -> dict:
    """Slurm jobs that an earlier (killed, requeued) driver submitted and that are still alive.

    Waiting for them instead of resubmitting keeps a resumed driver from running
    the same shard twice. Local jobs never outlive their driver, so only Slurm.
    """
    if cfg.cluster.executor != "slurm":
        return {}
    import submitit

    latest: dict = {}
    for e in events.read():
        if e.get("stage") != stage or e.get("iteration") != iteration:
            continue
        if e["event"] in (TASK_SUBMIT, TASK_ADOPT):
            latest[e["task"]] = (e["job_id"], e.get("attempt", 1))
        elif e["event"] in (TASK_DONE, TASK_FAILED):
            latest.pop(e["task"], None)
    adopted = {}
    for task, (job_id, attempt) in latest.items():
        if task not in tasks:
            continue
        job = submitit.SlurmJob(folder=paths.job_logs(stage), job_id=job_id)
        state = job.state.split()[0] if job.state else "UNKNOWN"
        if state in ALIVE:
            adopted[task] = Submitted(task, attempt, job)
            events.write(TASK_ADOPT, stage=stage, iteration=iteration, task=task, attempt=attempt,
                         job_id=job_id, state=state)
            log.info("[iter %d] %s: task %s is still in Slurm as job %s (%s): waiting for it", iteration,
                     stage, task, job_id, state)
    return adopted


# Waits between attempts to submit while Slurm refuses (a restarting slurmctld): about 8 minutes in all
SUBMIT_WAITS = (5, 10, 20, 40, 60, 60, 60, 60, 60, 60, 60)


def submit_retrying(submit, label: str, events: EventLog) -> list:
    """`submit()` until Slurm takes it. sacct's outages submitit already bridges (it keeps the last
    states); sbatch's would otherwise end the driver at the first failed submission."""
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    for n, wait in enumerate((*SUBMIT_WAITS, None), start=1):
        try:
            return submit()
        except (FailedJobError, FailedSubmissionError, OSError, subprocess.SubprocessError) as err:
            reason = (str(err).strip().splitlines() or [repr(err)])[-1][:300]
            if wait is None:
                raise StageFailed(f"{label}: Slurm refused the submission {n} times, the last: {reason}; check "
                                  "`sinfo`/`squeue`, then run the same command again to resume") from err
            log.warning("%s: submission refused (%s); retrying in %d s", label, reason, wait)
            events.write(SUBMIT_RETRY, label=label, attempt=n, error=reason, wait=wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def error_line(error: BaseException) -> str:
    """What went wrong, on one line: a task's own exception (debug), or the exception that ends the
    task's traceback inside submitit's job failure (whose message ends with where the logs are)."""
    text = str(error).strip()
    ended = re.search(r"has not produced any output \(state: ([^)]*)\)", text)
    if ended:  # killed or cancelled before it could write a result (its log says more)
        return f"the job ended without a result (Slurm state: {ended.group(1)})"
    parts = text.split("\n----------------------\n")  # "... with trace:", the traceback, "You can check ..."
    if len(parts) >= 3 and "failed during processing" in parts[0]:
        lines = parts[1].strip().splitlines()
        # the exception's text starts after the last indented line (the frames and their code)
        last_frame = max((i for i, line in enumerate(lines) if line[:1].isspace()), default=-1)
        text = " ".join(line.strip() for line in lines[last_frame + 1:]) or lines[-1]
    return " ".join(text.split())[:500] or repr(error)


def take_batch(waiting: list, free: int, needs: dict, gpus: GpuPool | None) -> tuple[list, list, dict]:
    """(the tasks to submit now, the tasks that wait, {task: its GPUs}): at most `free` tasks; with
    the local executor's GPUs, only those whose GPUs are free (the others keep their turn)."""
    if gpus is None:
        return waiting[:free], waiting[free:], {}
    batch, rest, given = [], [], {}
    for task in waiting:
        ids = gpus.take(needs[task].gpus_per_node) if len(batch) < free else None
        if ids is None:
            rest.append(task)
        else:
            batch.append(task)
            given[task] = ids
    return batch, rest, given


def gpu_setup(ids: list[str]) -> list[str]:
    """The setup line that gives a local task these GPUs (run before its process starts)."""
    return [f"export CUDA_VISIBLE_DEVICES={shlex.quote(','.join(ids))}"]


def submit_local(executor, ids: list[str], *args) -> object:
    """One local task, with its own GPUs (CUDA_VISIBLE_DEVICES, exported before its process starts)."""
    executor.update_parameters(setup=gpu_setup(ids))
    return executor.submit(StageTask(), *args)


def arrays(batch: list, needs: dict, max_size: int) -> list[list]:
    """`batch` cut into job arrays: tasks with the same resources together, at most `max_size` each."""
    by_key: dict[str, list] = {}
    for task in batch:
        by_key.setdefault(resources_key(needs[task]), []).append(task)
    return [tasks[i:i + max_size] for tasks in by_key.values() for i in range(0, len(tasks), max_size)]


def run_stage(cfg: Config, paths: RunPaths, events: EventLog, stage: str, iteration: int,
              tasks: list[int | None]) -> None:
    """Run `tasks` of `stage` (None: the stage's single task) until all succeed or one runs out of retries
    (then the tasks in flight finish, nothing more is submitted, and StageFailed names each failed task)."""
    if not tasks:
        return
    # a per-model stage's tasks index its plan's task list (their base-model group)
    plan = stage_plan(paths, stage, iteration) if stage in PER_MODEL else None
    needs = {t: task_resources(cfg, stage, t, plan) for t in tasks}  # per base model / member (mixed tribes)
    executors: dict[str, object] = {}
    when = point_label(iteration, "iteration {}", "before iteration 0")  # sft, initial evaluation
    label = f"[{point_label(iteration)}] {stage}"
    # Slurm throttles an array itself (cluster.<stage>.array_parallelism)
    parallel = cfg.cluster.local_parallel if cfg.cluster.executor == "local" else len(tasks)
    driver_pid = os.getpid() if cfg.cluster.executor == "local" else None
    adopted = adopt_in_flight(cfg, paths, events, stage, iteration, tasks)
    waiting = [t for t in tasks if t not in adopted]
    running: list[Submitted] = list(adopted.values())
    attempts = {t: adopted[t].number if t in adopted else 0 for t in tasks}
    done, retried = 0, 0
    in_process = cfg.cluster.executor == "debug"
    gpus = GpuPool(visible_gpus()) if cfg.cluster.executor == "local" else None
    if gpus is not None and any(n.gpus_per_node > len(gpus.ids) > 0 for n in needs.values()):
        log.warning("%s: a task asks for more GPUs than the %d this machine shows; it gets them all", label,
                    len(gpus.ids))
    failed = []  # (task, attempts, last line, log, error) of each task out of retries
    progress = Progress(label, len(tasks))
    events.write(STAGE_START, stage=stage, iteration=iteration, tasks=len(tasks))
    start = time.time()
    while waiting or running:
        free = max(parallel - len(running), 0)
        batch, waiting, given = take_batch(waiting, free, needs, gpus)
        submitted = []  # (task, job)
        # one job array per set of resources, none above Slurm's MaxArraySize
        for chunk in arrays(batch, needs, cfg.cluster.max_array_size):
            k = resources_key(needs[chunk[0]])
            if k not in executors:
                executors[k] = make_executor(cfg, paths, stage, needs[chunk[0]])
            executor = executors[k]
            if gpus is not None:  # local: a process per task, each with the GPUs it was given
                jobs = [submit_local(executor, given[t], str(paths.root), stage, iteration, t, driver_pid)
                        for t in chunk]
            elif chunk == [None]:  # gather, aggregate: one plain job
                jobs = submit_retrying(lambda: [executor.submit(StageTask(), str(paths.root), stage, iteration, None,
                                                                driver_pid)], label, events)
            else:
                n = len(chunk)
                jobs = submit_retrying(lambda: executor.map_array(StageTask(), [str(paths.root)] * n, [stage] * n,
                                                                  [iteration] * n, chunk, [driver_pid] * n),
                                       label, events)
            submitted += list(zip(chunk, jobs))
        for task, job in submitted:
            attempts[task] += 1
            running.append(Submitted(task, attempts[task], job, gpus=given.get(task, [])))
            events.write(TASK_SUBMIT, stage=stage, iteration=iteration, task=task, attempt=attempts[task],
                         job_id=str(job.job_id))
        time.sleep(0 if in_process else POLL_SECONDS)
        for attempt in [a for a in running if a.finished(in_process)]:
            running.remove(attempt)
            if gpus is not None:
                gpus.give(attempt.gpus)
            error = attempt.error
            if error is None:
                done += 1
                result = attempt.job.results()[0]  # rank 0
                versions = result.pop("versions", {})
                events.write(TASK_DONE, stage=stage, iteration=iteration, task=attempt.task,
                             job_id=str(attempt.job.job_id), **result)
                if record_interpreter(paths, stage, result.get("interpreter", "?"), versions):
                    write_config(paths, config_to_yaml(cfg))  # config.yaml's provenance block names the new interpreter
                continue
            log_file = attempt.job.paths.stderr
            last_line = error_line(error)
            events.write(TASK_FAILED, stage=stage, iteration=iteration, task=attempt.task,
                         attempt=attempt.number, job_id=str(attempt.job.job_id), log=str(log_file), error=last_line)
            if attempt.number <= cfg.cluster.max_retries:
                log.warning("%s: task %s failed (attempt %d), retrying; log: %s", label, attempt.task,
                            attempt.number, log_file)
                waiting.append(attempt.task)
                retried += 1
                continue
            # Out of retries. The tasks in flight finish (another member's training, another shard:
            # their work is kept for the resume) but nothing new is submitted; then the stage fails.
            failed.append((attempt.task, attempt.number, last_line, log_file, error))
            waiting = []
        progress.update(done, len(running), retried)
    if failed:
        if in_process:  # debug: the task's own exception, for a debugger
            raise failed[0][4]
        raise StageFailed("\n".join(
            f"{stage} ({when}){'' if task is None else f' task {task}'} failed {number} time{'s' * (number > 1)}, "
            f"last with: {line}\n  See its log {log_file}."
            for task, number, line, log_file, _ in failed) + "\nThe other tasks' work is kept. Fix the cause and "
            "run the same command again to resume.")
    events.write(STAGE_DONE, stage=stage, iteration=iteration, tasks=len(tasks),
                 seconds=round(time.time() - start, 2))
