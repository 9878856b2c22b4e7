"""The driver as a Slurm job (`sbatch slurm/sparta.sbatch ...`, exactly the README's line) through the
faults of a shared cluster, in one iteration of a mixed tribe on the single-host Slurm (two base-model
groups with their own generate/judge resources, one member's training job with its own).

Orchestration only: every process of the run uses the scripted model (tests/sitecustomize), and each
fault is made to happen while the work it names is certainly in flight, whatever the machine's speed:
the stage's tasks (or the driver's submission) wait at a gate (tests/gates.py) that the test opens
only once the fault has been injected and seen.

- the driver job `scontrol requeue`d while both generate jobs wait at their gate: the requeued
  driver must adopt them (the gate opens only once it has), and submits nothing twice;
- a node set DOWN under a judge job that asks for every CPU of a node (so it cannot share the
  driver's node): Slurm requeues it, or the driver resubmits it alone, and it runs again;
- the time-limit path the script traps: USR1 to the batch shell, which stops the driver and requeues;
- slurmctld stopped while the driver is about to submit the training jobs (their submission is
  retried until it comes back), and again while a training job runs (the driver keeps waiting).

`sparta-hpc status` reads the run mid-stage, with the real squeue/sacct, after the requeue.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparta_hpc.rundir.paths import RunPaths

from .conftest import ROOT
from .gates import Gates
from .test_slurm import MEMBERS, cluster, events, job_id  # noqa: F401 (fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SLURM_BASE = Path(os.environ.get("SLURM_BASE", "/tmp/sparta-slurm"))
OVERRIDES = ["cluster.executor=slurm", "tribe.iterations=1", "tribe.duels_per_iteration=4",
             "generate.duels_per_shard=4", "judge.duels_per_shard=4", "tracking.report_to=none"]
for _stage in ("generate", "judge", "gather", "aggregate", "train"):
    OVERRIDES += [f"cluster.{_stage}.cpus_per_task=1", f"cluster.{_stage}.mem_gb=1",
                  f"cluster.{_stage}.gpus_per_node=0", f"cluster.{_stage}.time_min=30"]


def squeue(job: str, fmt: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", fmt], capture_output=True, text=True).stdout.strip()


def starts(paths: RunPaths) -> int:
    return sum(e["event"] == "driver_start" for e in events(paths))


def until(condition, what: str, timeout: float = 600):
    """Poll `condition` until it is true (returns its value); a timeout fails the test naming `what`."""
    start = time.time()
    while not (value := condition()):
        assert time.time() - start < timeout, f"timed out waiting for {what}"
        time.sleep(0.3)
    return value


def resume_node(node: str) -> None:
    """Bring a node set DOWN back. Slurm refuses `state=resume` while the node is still cleaning up the
    job it killed (completing), so this asks again until the node is up."""
    def up() -> bool:
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], capture_output=True)
        state = subprocess.run(["sinfo", "-h", "-n", node, "-o", "%T"], capture_output=True, text=True).stdout
        return "down" not in state and "drain" not in state
    until(up, f"node {node} to come back", 120)


def stop_slurmctld() -> None:
    pid = int((SLURM_BASE / "run" / "slurmctld.pid").read_text())
    os.kill(pid, 15)
    until(lambda: "is UP" not in subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout,
          "slurmctld to stop", 60)


def start_slurmctld() -> None:
    subprocess.run(["slurmctld"], check=True)
    until(lambda: "is UP" in subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout,
          "slurmctld to answer", 60)


def node_cpus() -> int:
    return int(subprocess.run(["sinfo", "-h", "-n", "n1", "-o", "%c"], capture_output=True, text=True,
                              check=True).stdout.split()[0])


def mixed(tiny_model: Path, folder: Path, whole_node: int) -> list[str]:
    """A second base model (the same folder under another path: another group) whose generate task asks
    for 2 CPUs and whose judge task for every CPU of a node; a member whose training job has 2 CPUs."""
    second = folder / "second-base"
    shutil.copytree(tiny_model, second, copy_function=os.link)
    return [f"tribe.members.friendly.model={second}", f"tribe.members.plain.model={second}",
            f"cluster.models=[{{model: {second}, generate: {{cpus_per_task: 2}}, "
            f"judge: {{cpus_per_task: {whole_node}}}}}]",
            "tribe.members.concise.resources={cpus_per_task: 2}"]


def status(paths: RunPaths) -> str:
    proc = subprocess.run([sys.executable, "-m", "sparta_hpc.cli", "status", str(paths.root), "--events", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def stage_line(text: str, stage: str) -> list[str]:
    """The status table's row of `stage`: [stage, state, tasks, done, in flight, failed, ...]."""
    rows = [line.split() for line in text.splitlines() if line.startswith(f"  {stage} ")]
    assert len(rows) == 1, text
    return rows[0]


@pytest.fixture(scope="module")
def driver_job(cluster, tiny_model, tmp_path_factory):  # noqa: F811 (the imported fixture)
    folder = tmp_path_factory.mktemp("sbatch")
    run_dir = folder / "run"
    paths = RunPaths(run_dir)
    cpus = node_cpus()
    assert cpus >= 2, "the test cluster's nodes need 2 CPUs or more (SLURM_CPUS_PER_NODE)"
    gates = Gates(folder / "gates")
    # both generate jobs; the second group's judge job; the submission of the training jobs; the
    # second member's training job (one: the test cluster's CPUs cannot hold every job at once)
    gates.hold("generate", "judge-1", "submit-train", "train-1")
    env = dict(os.environ, SPARTA_SCRIPTED_MODELS="1", PYTHONPATH=str(ROOT / "tests" / "sitecustomize"),
               **gates.env())
    env.pop("PYTHONSAFEPATH", None)
    # the README's line: sbatch slurm/sparta.sbatch CONFIG.yaml [overrides]
    out = subprocess.run(["sbatch", "slurm/sparta.sbatch", "configs/tiny.yaml", f"run.dir={run_dir}", *OVERRIDES,
                          *mixed(tiny_model, folder, cpus)], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    job = out.split()[-1]
    seen: dict = {"cpus": cpus}
    ctld_down = False
    try:
        # 1. the driver job requeued while both generate jobs are in flight (held at their gate)
        until(lambda: len(gates.waiting("generate")) == 2, "both generate jobs to run")
        seen["generate_jobs"] = {job_id(paths, "generate", t) for t in (0, 1)}
        seen["status_before"] = status(paths)
        subprocess.run(["scontrol", "requeue", job], check=True)
        until(lambda: starts(paths) >= 2, "the requeued driver to start")
        until(lambda: {e["task"] for e in events(paths) if e["event"] == "task_adopt"
                       and e["stage"] == "generate"} == {0, 1}, "the requeued driver to adopt both generate jobs")
        seen["status_adopted"] = status(paths)
        gates.open("generate")

        # 2. the node of the second group's judge job goes DOWN (that job asks for a whole node, so it
        # cannot run beside the driver), then comes back; the job runs again and waits again
        first = until(lambda: gates.waiting("judge-1"), "the second group's judge job to run")[0]
        seen["driver_node"] = squeue(job, "%N")
        assert first["node"] != seen["driver_node"]
        subprocess.run(["scontrol", "update", f"nodename={first['node']}", "state=down", "reason=sparta-test"],
                       check=True)
        seen["node_down"] = first
        until(lambda: squeue(first["job"], "%T") != "RUNNING", "the judge job on the downed node to stop")
        resume_node(first["node"])
        seen["judge_again"] = until(lambda: [w for w in gates.waiting("judge-1") if w != first],
                                    "the judge job to run again")[0]
        gates.open("judge-1")

        # 3. the time-limit signal the script traps (the driver is held before submitting training)
        until(lambda: len(gates.waiting("submit-train")) == 1, "the driver to reach the training stage")
        subprocess.run(["scancel", "--batch", "--signal=USR1", job], check=True)
        until(lambda: starts(paths) >= 3, "the driver requeued by its own trap")

        # 4. slurmctld down while the resumed driver submits the training jobs
        until(lambda: len(gates.waiting("submit-train")) == 2, "the resumed driver to reach the training stage")
        stop_slurmctld()
        ctld_down = True
        seen["ctld_down"] = time.time()
        gates.open("submit-train")
        until(lambda: any(e["event"] == "submit_retry" for e in events(paths)), "a refused submission")
        start_slurmctld()
        ctld_down = False
        seen["ctld_up"] = time.time()
        # ... and again while a training job runs (held; the others have finished): the driver waits
        others = [m for m in MEMBERS if m != MEMBERS[1]]
        until(lambda: gates.waiting("train-1") and all(paths.is_done(0, "train", m) for m in others),
              "the other training jobs to finish and the held one to run")
        stop_slurmctld()
        ctld_down = True
        seen["ctld_down_2"] = time.time()
        gates.open("train-1")
        until(lambda: all(paths.is_done(0, "train", m) for m in MEMBERS), "the training jobs to finish", 300)
        start_slurmctld()
        ctld_down = False
        seen["ctld_up_2"] = time.time()
        until(lambda: squeue(job, "%T") == "" and paths.is_done(0, "train"), "the driver job to finish")
        seen["status_after"] = status(paths)
    finally:
        for gate in ("generate", "judge-1", "submit-train", "train-1"):
            gates.open(gate)
        if ctld_down:
            start_slurmctld()
        subprocess.run(["scancel", job], capture_output=True)
        subprocess.run(["scontrol", "update", "nodename=n1,n2", "state=resume"], capture_output=True)
    log = ROOT / f"sparta-driver-{job}.out"
    text = log.read_text() if log.exists() else ""
    shutil.move(log, run_dir / log.name) if log.exists() else None
    return paths, job, seen, text


def submissions(paths: RunPaths) -> dict:
    counts: dict = {}
    for e in events(paths):
        if e["event"] == "task_submit":
            counts[(e["stage"], e["task"])] = counts.get((e["stage"], e["task"]), 0) + 1
    return counts


def test_the_driver_runs_as_a_slurm_job_and_finishes_through_every_fault(driver_job):
    paths, job, _, log = driver_job
    assert paths.is_done(0, "train") and "judgments used" in log  # the closing table, in the job's output
    state = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job, "-o", "State"], capture_output=True,
                           text=True).stdout.split()
    assert state and state[0].startswith("COMPLETED")
    assert starts(paths) == 3  # started, requeued by scontrol, requeued by its own USR1 trap
    assert "driver: time limit near, stopping the driver and requeueing" in log


def test_a_requeued_driver_adopts_the_jobs_in_flight_and_submits_nothing_twice(driver_job):
    paths, _, seen, _ = driver_job
    log = events(paths)
    adopted = [e for e in log if e["event"] == "task_adopt" and e["stage"] == "generate"]
    assert {e["job_id"] for e in adopted} == seen["generate_jobs"]  # the very jobs the first driver submitted
    resubmitted = {k: n for k, n in submissions(paths).items() if n > 1}
    # only the task on the downed node may have gone out twice (when Slurm did not requeue it itself)
    assert set(resubmitted) <= {("judge", 1)} and all(n == 2 for n in resubmitted.values()), resubmitted


def test_status_mid_stage_shows_each_job_once_with_its_slurm_state(driver_job):
    _, _, seen, _ = driver_job
    for when in ("status_before", "status_adopted"):
        text = seen[when]
        row = stage_line(text, "generate")
        assert row[1:6] == ["running", "2", "0", "2", "0"], (when, text)  # 2 in flight: no phantom
        assert "RUNNING 2" in " ".join(row), text
        for job in seen["generate_jobs"]:
            assert f"job {job} RUNNING" in text, text
    assert "driver   running" in seen["status_adopted"]
    after = seen["status_after"]
    assert "progress 1/1 iteration(s) trained" in after and "jobs the events name as in flight" not in after
    for stage in ("generate", "judge", "gather", "aggregate", "train"):
        assert stage_line(after, stage)[1] == "done" and stage_line(after, stage)[4] == "0", after


def test_a_job_on_a_node_set_down_is_requeued_or_resubmitted_alone(driver_job):
    paths, _, seen, _ = driver_job
    first, again = seen["node_down"], seen["judge_again"]
    assert first["node"] != seen["driver_node"]
    resubmitted = submissions(paths).get(("judge", 1), 0) == 2
    if resubmitted:  # the driver saw the job fail and resubmitted that task alone
        failed = [e for e in events(paths) if e["event"] == "task_failed" and e["stage"] == "judge"]
        assert [(e["task"], e["job_id"]) for e in failed] == [(1, first["job"])]
        assert again["job"] != first["job"]
    else:  # Slurm requeued the same job: it ran again with a restart count
        assert again["job"] == first["job"] and int(again["restarts"]) >= 1
        rows = subprocess.run(["sacct", "-D", "-X", "-n", "-P", "-j", first["job"], "-o", "State"],
                              capture_output=True, text=True).stdout.split()
        assert len(rows) >= 2 and rows[-1] == "COMPLETED", rows
    assert paths.is_done(0, "judge") and paths.is_done(0, "gather")
    assert json.loads(paths.shard(0, "judge", 1, 0).read_text())  # the second group's judgments are there


def test_the_driver_retries_a_submission_through_a_slurmctld_outage_and_loses_nothing(driver_job):
    paths, _, seen, _ = driver_job
    log = events(paths)
    retries = [e for e in log if e["event"] == "submit_retry"]
    assert retries and all(e["label"] == "[iter 0] train" for e in retries)
    assert all(seen["ctld_down"] <= e["time"] <= seen["ctld_up"] + 1 for e in retries)
    for down, up in ((seen["ctld_down"], seen["ctld_up"]), (seen["ctld_down_2"], seen["ctld_up_2"])):
        during = [e for e in log if down <= e["time"] <= up]
        assert not [e for e in during if e["event"] in ("task_failed", "driver_failed")]
    assert {k: n for k, n in submissions(paths).items() if k[0] == "train"} == \
        {("train", i): 1 for i in range(len(MEMBERS))}
    assert all(paths.is_done(0, "train", m) for m in MEMBERS)


def alloc_cpus(job: str) -> str:
    """A job's AllocCPUS in Slurm's accounting (written asynchronously: after a slurmctld outage the
    record of a job that ended meanwhile can take a moment to appear)."""
    return until(lambda: subprocess.run(["sacct", "-X", "-n", "-P", "-j", job, "-o", "AllocCPUS"],
                                        capture_output=True, text=True).stdout.split(), f"job {job} in sacct", 60)[0]


def test_each_group_and_member_got_its_own_resources(driver_job):
    paths, _, seen, _ = driver_job
    plan = json.loads(paths.plan(0).read_text())
    assert len(plan["groups"]) == 2
    expected = {"generate": {0: "1", 1: "2"}, "judge": {0: "1", 1: str(seen["cpus"])}}
    for stage in ("generate", "judge"):
        for task, (group, _) in enumerate(plan[f"{stage}_tasks"]):
            assert alloc_cpus(job_id(paths, stage, task)) == expected[stage][group], (stage, task, group)
    assert [g for g, _ in plan["judge_tasks"]] == [0, 1]  # judge task 1 is the second group's (the gate's)
    cpus = {m: alloc_cpus(job_id(paths, "train", i)) for i, m in enumerate(MEMBERS)}
    assert cpus == {"concise": "2", "stepwise": "1", "friendly": "1", "plain": "1"}
