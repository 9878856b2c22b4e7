"""The driver as a Slurm job (`sbatch slurm/sparta.sbatch ...`, exactly the README's line) through the
faults of a shared cluster, in one tiny iteration of a mixed tribe on the single-host Slurm (two
base-model groups with their own generate/judge resources, one member's training job with its own):

- the driver job requeued mid-stage with `scontrol requeue` (generate running);
- a node set DOWN while a judge job runs on it (then resumed);
- the time-limit path the script traps: USR1 to the batch shell, which requeues the job itself;
- slurmctld stopped for a minute while the driver waits (training running), then started again.

Each requeued driver adopts the stage jobs still in flight: every task is submitted once, but the
one whose node went down (Slurm requeues it on a live node, or the driver resubmits it, alone).
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from sparta_hpc.paths import RunPaths

from .conftest import ROOT
from .test_slurm import MEMBERS, cluster, events, job_id, wait_for  # noqa: F401 (fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SLURM_BASE = Path(os.environ.get("SLURM_BASE", "/tmp/sparta-slurm"))
OVERRIDES = ["cluster.executor=slurm", "tribe.iterations=1", "tribe.duels_per_iteration=4",
             "generate.duels_per_shard=2", "judge.duels_per_shard=2", "train.max_steps=2", "train.save_steps=1"]
for _stage in ("generate", "judge", "gather", "aggregate", "train"):
    OVERRIDES += [f"cluster.{_stage}.cpus_per_task=1", f"cluster.{_stage}.mem_gb=2",
                  f"cluster.{_stage}.gpus_per_node=0", f"cluster.{_stage}.time_min=30"]
OVERRIDES += [f"tribe.members.{m}.max_new_tokens=16" for m in MEMBERS]


def squeue(job: str, fmt: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", fmt], capture_output=True, text=True).stdout.strip()


def starts(paths: RunPaths) -> int:
    return sum(e["event"] == "driver_start" for e in events(paths))


def until(condition, what: str, timeout: float = 1200) -> None:
    start = time.time()
    while not condition():
        assert time.time() - start < timeout, f"timed out waiting for {what}"
        time.sleep(0.5)


def running_on(paths: RunPaths, stage: str, node_not: str) -> tuple[str, str] | None:
    """(job id, node) of a RUNNING task of `stage` on another node than `node_not`."""
    for task in range(4):
        job = job_id(paths, stage, task)
        if job and squeue(job, "%T") == "RUNNING" and squeue(job, "%N") not in ("", node_not):
            return job, squeue(job, "%N")
    return None


def resume_node(node: str) -> None:
    """Bring a node set DOWN back. Slurm refuses `state=resume` while the node is still cleaning up the
    job it killed (completing), so this asks again until the node is up."""
    def up() -> bool:
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], capture_output=True)
        state = subprocess.run(["sinfo", "-h", "-n", node, "-o", "%T"], capture_output=True, text=True).stdout
        return "down" not in state and "drain" not in state
    until(up, f"node {node} to come back", 120)


def restart_slurmctld() -> None:
    subprocess.run(["slurmctld"], check=True)
    until(lambda: "is UP" in subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout,
          "slurmctld to answer", 60)


def mixed(tiny_model: Path, folder: Path) -> list[str]:
    """A second base model (the same weights under another path: another group) with 2 CPUs per
    generate and judge task, and a member whose training job has 2 CPUs. (Training on two nodes
    with ZeRO-2 is tests/test_slurm.py's; here it would only make the run slower.)"""
    second = folder / "second-base"
    shutil.copytree(tiny_model, second, copy_function=os.link)
    return [f"tribe.members.friendly.model={second}", f"tribe.members.plain.model={second}",
            f"cluster.models=[{{model: {second}, generate: {{cpus_per_task: 2}}, judge: {{cpus_per_task: 2}}}}]",
            "tribe.members.concise.resources={cpus_per_task: 2}"]


@pytest.fixture(scope="module")
def driver_job(cluster, tiny_model, tmp_path_factory):  # noqa: F811 (the imported fixture)
    folder = tmp_path_factory.mktemp("sbatch")
    run_dir = folder / "run"
    paths = RunPaths(run_dir)
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(ROOT / ".cache" / "torch_extensions"))
    # the README's line: sbatch slurm/sparta.sbatch CONFIG.yaml [overrides]
    out = subprocess.run(["sbatch", "slurm/sparta.sbatch", "configs/tiny.yaml", f"run.dir={run_dir}", *OVERRIDES,
                          *mixed(tiny_model, folder)], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    job = out.split()[-1]
    faults = {}
    try:
        # 1. scontrol requeue while generate runs
        until(lambda: job_id(paths, "generate", 0) and squeue(job_id(paths, "generate", 0), "%T") == "RUNNING",
              "the generate array to run")
        subprocess.run(["scontrol", "requeue", job], check=True)
        faults["requeued"] = job_id(paths, "generate", 0)
        until(lambda: starts(paths) >= 2, "the requeued driver to start")
        # 2. the node of a running judge job goes DOWN, then comes back
        node = squeue(job, "%N")
        until(lambda: running_on(paths, "judge", node) or paths.is_done(0, "judge"), "a judge job on the other node")
        found = running_on(paths, "judge", node)
        if found:
            subprocess.run(["scontrol", "update", f"nodename={found[1]}", "state=down", "reason=sparta-test"],
                           check=True)
            faults["node_down"] = found
            time.sleep(5)
            resume_node(found[1])
        # 3. the time-limit signal the script traps: it requeues the driver job itself
        until(lambda: paths.is_done(0, "judge"), "the judge stage")
        subprocess.run(["scancel", "--batch", "--signal=USR1", job], check=True)
        until(lambda: starts(paths) >= 3, "the driver requeued by its own trap")
        # 4. slurmctld down for a minute while the driver waits for training
        until(lambda: job_id(paths, "train", 0), "training to be submitted")
        pid = int((SLURM_BASE / "run" / "slurmctld.pid").read_text())
        os.kill(pid, 15)
        faults["ctld_down"] = time.time()
        time.sleep(60)
        restart_slurmctld()
        faults["ctld_up"] = time.time()
        until(lambda: squeue(job, "%T") == "" and paths.is_done(0, "train"), "the driver job to finish", 1800)
    finally:
        subprocess.run(["scancel", job], capture_output=True)
        subprocess.run(["scontrol", "update", "nodename=n1,n2", "state=resume"], capture_output=True)
        if "ctld_down" in faults and "ctld_up" not in faults:
            restart_slurmctld()
    log = ROOT / f"sparta-driver-{job}.out"
    text = log.read_text() if log.exists() else ""
    shutil.move(log, run_dir / log.name) if log.exists() else None
    return paths, job, faults, text


def test_the_driver_runs_as_a_slurm_job_and_finishes_through_every_fault(driver_job):
    paths, job, _, log = driver_job
    assert paths.is_done(0, "train") and "valid judgments" in log  # the closing table, in the job's output
    state = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job, "-o", "State"], capture_output=True,
                           text=True).stdout.split()
    assert state and state[0].startswith("COMPLETED")
    assert starts(paths) == 3  # started, requeued by scontrol, requeued by its own USR1 trap


def test_a_requeued_driver_adopts_the_jobs_in_flight_and_submits_nothing_twice(driver_job):
    paths, _, faults, _ = driver_job
    log = events(paths)
    assert any(e["event"] == "task_adopt" and e["stage"] == "generate" for e in log), "generate was not adopted"
    down = faults.get("node_down", (None,))[0]
    counts: dict = {}
    for e in log:
        if e["event"] == "task_submit":
            counts[(e["stage"], e["task"])] = counts.get((e["stage"], e["task"]), 0) + 1
    resubmitted = {k: n for k, n in counts.items() if n > 1}
    # only the task on the downed node may have gone out twice (when Slurm did not requeue it itself)
    assert all(k[0] == "judge" and job_id(paths, "judge", k[1]) == down for k in resubmitted), resubmitted


def test_a_job_on_a_node_set_down_finishes_elsewhere(driver_job):
    paths, _, faults, _ = driver_job
    if "node_down" not in faults:
        pytest.skip("both judge jobs ran on the driver's node: no node could be set down under one")
    assert paths.is_done(0, "judge") and paths.is_done(0, "gather")


def test_the_driver_waits_through_a_slurmctld_outage(driver_job):
    paths, _, faults, _ = driver_job
    during = [e for e in events(paths) if faults["ctld_down"] <= e["time"] <= faults["ctld_up"]]
    assert not [e for e in during if e["event"] in ("task_failed", "driver_failed")]
    assert all(paths.is_done(0, "train", m) for m in MEMBERS)


def test_each_group_and_member_got_its_own_resources(driver_job):
    paths = driver_job[0]
    plan = json.loads(paths.plan(0).read_text())
    assert len(plan["groups"]) == 2
    for stage in ("generate", "judge"):
        for task, (group, _) in enumerate(plan[f"{stage}_tasks"]):
            job = job_id(paths, stage, task)
            cpus = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job, "-o", "AllocCPUS"], capture_output=True,
                                  text=True).stdout.split()
            assert cpus and cpus[0] == ("2" if group == 1 else "1"), (stage, task, group, cpus)
    cpus = {m: subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id(paths, "train", i), "-o", "AllocCPUS"],
                              capture_output=True, text=True).stdout.split()[0] for i, m in enumerate(MEMBERS)}
    assert cpus == {"concise": "2", "stepwise": "1", "friendly": "1", "plain": "1"}
