"""Test-only gates: a fault test makes its fault happen while the work it names is certainly in flight.

With SPARTA_TEST_GATES=FOLDER (and tests/sitecustomize on PYTHONPATH), every Python process of a
run can be held at these points:

- a stage's task, before it runs (`tasks.run_task`): gates `<stage>` (every task), then `<stage>-<task>`;
- the driver, before it submits a stage's jobs (`launch.submit_retrying`): gate `submit-<stage>`;
- a DPO or SFT job, right after it saved checkpoint N (its TrainerCallback's on_save, every rank): gate
  `saved-<N>`.

A point is held only if the test created `FOLDER/<gate>.hold`; then the process writes
`FOLDER/<gate>.<who>.waiting` (JSON: host, node, job, pid) and waits until `FOLDER/<gate>.open`
exists. So a test can, for certain, requeue a driver while its generate jobs are running, set a
node DOWN under a judge job, stop slurmctld while a stage is about to be submitted, or preempt a
training job between two checkpoints, whatever the machine's speed. Nothing of this is in sparta_hpc.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

POLL = 0.2


class Gates:
    """The test's side: hold, see who waits, open."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        return {"SPARTA_TEST_GATES": str(self.folder)}

    def hold(self, *gates: str) -> None:
        for gate in gates:
            (self.folder / f"{gate}.hold").touch()

    def open(self, gate: str) -> None:
        (self.folder / f"{gate}.open").touch()

    def waiting(self, gate: str) -> list[dict]:
        """Who waits (or waited) at `gate`: one record per process that reached it."""
        out = []
        for f in sorted(self.folder.glob(f"{gate}.*.waiting")):
            try:
                out.append(json.loads(f.read_text()))
            except ValueError:  # being written
                continue
        return out


def wait_at(gate: str, who: str) -> None:
    """Hold this process at `gate` if the test holds it (the process side)."""
    folder = Path(os.environ["SPARTA_TEST_GATES"])
    if not (folder / f"{gate}.hold").exists() or (folder / f"{gate}.open").exists():
        return
    record = {"gate": gate, "who": who, "host": socket.gethostname(), "pid": os.getpid(),
              "node": os.environ.get("SLURMD_NODENAME"), "job": os.environ.get("SLURM_JOB_ID"),
              "array_job": os.environ.get("SLURM_ARRAY_JOB_ID"), "array_task": os.environ.get("SLURM_ARRAY_TASK_ID"),
              "restarts": os.environ.get("SLURM_RESTART_COUNT", "0"), "rank": os.environ.get("RANK")}
    name = folder / f"{gate}.{who}.{os.getpid()}.waiting"
    tmp = name.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.rename(name)
    while not (folder / f"{gate}.open").exists():
        time.sleep(POLL)


def install() -> None:
    """Wrap the points above in this process (tests/sitecustomize calls it)."""
    from sparta_hpc import launch, tasks
    from sparta_hpc.stages import train

    run_task = tasks.run_task

    def gated_task(run_dir, stage, iteration, task=None, driver_pid=None):
        wait_at(stage, f"task{task}")
        wait_at(f"{stage}-{task}", f"task{task}")
        return run_task(run_dir, stage, iteration, task, driver_pid)

    tasks.run_task = gated_task

    submit_retrying = launch.submit_retrying

    def gated_submit(submit, label, events):
        wait_at(f"submit-{label.rsplit(' ', 1)[-1]}", "driver")
        return submit_retrying(submit, label, events)

    launch.submit_retrying = gated_submit

    # the DPO and SFT trainers' callbacks come from one function: its callback also holds after each save
    from sparta_hpc.stages import sft

    guard = train.finite_loss_guard

    def gated_guard(what):
        callback = guard(what)
        on_save = callback.on_save

        def hold_after_save(args, state, control, **kwargs):
            wait_at(f"saved-{state.global_step}", f"rank{os.environ.get('RANK', '0')}")
            return on_save(args, state, control, **kwargs)

        callback.on_save = hold_after_save
        return callback

    train.finite_loss_guard = sft.finite_loss_guard = gated_guard
