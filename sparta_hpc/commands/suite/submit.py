"""`sparta-hpc suite submit`: each run's driver, as the README's sbatch job or (local executors) here.

    cd CHECKOUT && sbatch --parsable --job-name=sparta-<run> --output=SUITE_DIR/suite/logs/<run>-%j.out \\
        [suite sbatch flags] slurm/sparta.sbatch CONFIG.yaml [the run's overrides]

A run whose config says `cluster.executor: slurm` goes out that way (the driver is a small, long CPU
job that submits the stage jobs itself; it requeues itself before its time limit). Any other executor
runs the driver in this process, one run after another, as `python -m sparta_hpc.driver` would: on one
machine that is all there is to share. Idempotent: only new, failed and stopped runs are submitted
(state.py); the driver itself resumes what a failed one left, from its run directory.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from ... import driver
from ...config.schema import ConfigError
from .spec import Run, Suite, resolve_best_init
from .state import SUBMITTABLE, log_dir, read_states, record_submission

log = logging.getLogger("sparta_hpc")

CHECKOUT = Path(__file__).resolve().parents[3]  # the driver job runs `python -m sparta_hpc.driver` from here
SCRIPT = "slurm/sparta.sbatch"


class SubmitError(RuntimeError):
    """sbatch refused a driver job; the message has its command and answer."""


def sbatch(suite: Suite, run: Run) -> str:
    """Submit the run's driver job; its Slurm job id."""
    if not (CHECKOUT / SCRIPT).is_file():
        raise SubmitError(f"{CHECKOUT / SCRIPT}: the driver's sbatch script is missing (suite submit runs from a "
                          "checkout of sparta_hpc)")
    log_dir(suite).mkdir(parents=True, exist_ok=True)
    output = log_dir(suite) / f"{run.name}-%j.out"
    cmd = ["sbatch", "--parsable", f"--job-name=sparta-{run.name}", f"--output={output}", *suite.sbatch, SCRIPT,
           str(run.entry.config), *run.overrides]
    try:
        proc = subprocess.run(cmd, cwd=CHECKOUT, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SubmitError(f"{' '.join(cmd)}: {err}") from err
    if proc.returncode != 0:
        raise SubmitError(f"{' '.join(cmd)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout.strip().split(";")[0]  # --parsable: "jobid[;cluster]"


def run_here(suite: Suite, run: Run) -> int:
    """The driver in this process (local and debug executors): its exit status."""
    record_submission(suite, run, job=None, started=True)
    try:
        status = driver.main(run.driver_args())
    except Exception as err:  # noqa: BLE001: one run's crash must not stop the suite's other runs
        log.exception("%s: the driver raised %s", run.name, err)
        status = 1
    record_submission(suite, run, job=None, exit=status)
    return status


def submit(suite: Suite, runs: list[Run], dry_run: bool = False) -> list[str]:
    """Submit every run that is new, failed or stopped; one line per run saying what was done."""
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)  # as it happens: a local run takes a while

    states = read_states(suite, runs)
    # the best_init runs first: a baseline waiting on one is resolved again once it has run here
    for run in runs:
        state = states[run.name]
        if run.error:
            say(f"{run.name:28s} not submitted: its config is refused: {run.error}")
            continue
        if state.state == "waiting" and run.cfg and run.cfg.cluster.executor != "slurm":
            resolve_best_init(suite, run)  # its best_init run may have just run in this process
            state = read_states(suite, [run])[run.name]
        if state.state not in SUBMITTABLE:
            say(f"{run.name:28s} not submitted: {state.words}")
            continue
        if dry_run:
            say(f"{run.name:28s} would submit ({state.words}): {' '.join(run.driver_args())}")
            continue
        again = "resubmitted (resumes)" if state.state != "new" else "submitted"
        if run.cfg.cluster.executor == "slurm":
            try:
                job = sbatch(suite, run)
            except SubmitError as err:
                say(f"{run.name:28s} NOT submitted: {err}")
                continue
            record_submission(suite, run, job=job, log=str(log_dir(suite) / f"{run.name}-{job}.out"))
            say(f"{run.name:28s} {again}: driver job {job}")
        else:
            log.info("suite: %s: the driver in this process (executor %s)", run.name, run.cfg.cluster.executor)
            status = run_here(suite, run)
            say(f"{run.name:28s} {again}: ran here, exit {status}")
    return lines


def check_runs(runs: list[Run]) -> None:
    """Refuse a suite whose runs disagree on where they run: in-process runs would block the Slurm ones."""
    executors = {r.cfg.cluster.executor == "slurm" for r in runs if r.cfg}
    if len(executors) > 1:
        raise ConfigError("the suite mixes Slurm runs with runs of a local executor; give every run the same "
                          "cluster.executor")
