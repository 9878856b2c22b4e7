"""The tiny tribe's training through a real Slurm (slurm/local-cluster/start.sh: 2 virtual nodes, accounting).

A mixed tribe: two members train as 2-node jobs, one with ZeRO-2 and one with
ZeRO-3 (their own `resources` and `deepspeed`), the other two as one-process
jobs, one train array per set of resources. DPO is real (TRL on the tiny model); the answers and judgments come
from the scripted model (tests/sitecustomize: Slurm's part here is orchestration,
and real generation and judging are the reference run's, tests/test_pipeline.py).
One run carries three faults, each injected while its work is certainly in
flight (tests/gates.py: the work waits at a gate the test opens once the fault
is in): one generate array task is scancel'ed while it runs (it must be retried,
for its own shard only); one member's 2-rank ZeRO-2 training job gets Slurm's
time-limit warning (USR2) while it waits right after its first checkpoint
(submitit requeues it and it must resume from that checkpoint, not from step 0);
then the driver is SIGKILLed while every training job waits there, and its rerun
must adopt them rather than submit them again. `sparta-hpc status` reads the run
with the real squeue/sacct while its driver is dead, and `sparta-hpc report`
draws the finished run.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from sparta_hpc.rundir.paths import RunPaths

from .conftest import ROOT
from .gates import Gates

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

MEMBERS = ["concise", "stepwise", "friendly", "plain"]
ZERO = {"concise": 2, "stepwise": 3}  # ZeRO stage of the members that train on 2 nodes, 2 ranks; the others: 1 process
# r=16: ZeRO-3 partitions LoRA matrices above 10 x hidden size (5,760 elements here; r=8 stayed under it)
OVERRIDES = ["cluster.executor=slurm", "tribe.iterations=1", "tribe.duels_per_iteration=4", "train.batch_size=1",
             "generate.duels_per_shard=2", "judge.duels_per_shard=2", "train.max_steps=2", "train.save_steps=1",
             "train.lora_r=16"]
for _m, _stage in ZERO.items():
    OVERRIDES += [f"tribe.members.{_m}.deepspeed=configs/deepspeed/zero{_stage}.json",
                  f"tribe.members.{_m}.resources={{nodes: 2}}"]
for _stage in ("generate", "judge", "gather", "aggregate", "train"):
    OVERRIDES += [f"cluster.{_stage}.cpus_per_task=1", f"cluster.{_stage}.mem_gb=2",
                  f"cluster.{_stage}.gpus_per_node=0", f"cluster.{_stage}.time_min=30"]


def slurm_ready() -> bool:
    return shutil.which("sinfo") is not None and subprocess.run(
        ["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0


@pytest.fixture(scope="module")
def cluster():
    if not slurm_ready():
        if os.environ.get("SPARTA_SLURM_TESTS") == "required":
            pytest.fail("the Slurm test cluster is not reachable (SLURM_CONF="
                        f"{os.environ.get('SLURM_CONF')}); start it with slurm/local-cluster/start.sh")
        pytest.skip("no Slurm here: run `make test` as root to start the single-host test cluster")


def events(paths: RunPaths) -> list[dict]:
    if not paths.events.exists():
        return []
    return [json.loads(x) for x in paths.events.read_text().splitlines() if x.strip()]


def job_id(paths: RunPaths, stage: str, task: int, attempt: int = 1) -> str | None:
    for e in events(paths):
        if e["event"] == "task_submit" and e["stage"] == stage and e["task"] == task and e["attempt"] == attempt:
            return e["job_id"]
    return None


def job_state(job: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout
    return out.strip()


def wait_for(condition, proc, what, timeout=1200):
    start = time.time()
    while not (value := condition()):
        if proc.poll() is not None:
            raise AssertionError(f"driver ended before {what}: {proc.stderr.read()[-3000:]}")
        assert time.time() - start < timeout, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def at_gate(gates: Gates, gate: str, job: str | None) -> list[dict]:
    """The processes of Slurm job `job` ("ARRAY_TASK" as the events name array tasks) waiting at `gate`."""
    return [w for w in gates.waiting(gate) if job and job in (w["job"], f"{w['array_job']}_{w['array_task']}")]


def driver(run_dir, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sparta_hpc.driver", "--config", "configs/tiny.yaml",
                             f"run.dir={run_dir}", *OVERRIDES], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def slurm_run(cluster, tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm")
    run_dir, gates = folder / "run", Gates(folder / "gates")
    paths = RunPaths(run_dir)
    gates.hold("generate", "saved-1")  # every generate task; every training job after its first checkpoint
    env = dict(os.environ, HF_HUB_OFFLINE="1", SPARTA_SCRIPTED_MODELS="answers",
               PYTHONPATH=str(ROOT / "tests" / "sitecustomize"), **gates.env(),
               TORCH_EXTENSIONS_DIR=str(ROOT / ".cache" / "torch_extensions"))  # compile DeepSpeed's op once
    env.pop("PYTHONSAFEPATH", None)
    proc = driver(run_dir, env)
    # fault 1: cancel generate task 1 while it runs (held at its gate)
    wait_for(lambda: at_gate(gates, "generate", job_id(paths, "generate", 1)), proc, "generate task 1 to run")
    cancelled = job_id(paths, "generate", 1)
    subprocess.run(["scancel", cancelled], check=True)
    wait_for(lambda: job_state(cancelled) == "", proc, "the cancelled job to end")
    gates.open("generate")
    # fault 2: preempt the first member's 2-rank job while both ranks wait after its first checkpoint
    wait_for(lambda: len(at_gate(gates, "saved-1", job_id(paths, "train", 0))) == 2, proc,
             "the first member's first checkpoint")
    preempted = job_id(paths, "train", 0)
    assert (paths.train_dir(0, MEMBERS[0]) / "checkpoint-1" / "trainer_state.json").exists()
    # USR2 is what Slurm sends ahead of a time limit (--signal=USR2@120): submitit
    # checkpoints and requeues the job. (A SIGTERM from scancel would cancel the step.)
    # scancel keeps retrying the signal once the job has requeued itself ("Job can not be
    # altered now"), so it is bounded; the requeue itself is checked by the tests below.
    subprocess.run(["timeout", "10", "scancel", "--signal=USR2", preempted], capture_output=True)
    wait_for(lambda: "requeu" in (paths.logs / "train" / preempted / f"{preempted}_0_log.out").read_text().lower(),
             proc, "the preempted job to requeue itself")
    # fault 3: the driver dies while every other training job waits after its first checkpoint; its
    # rerun must adopt those jobs instead of submitting them again
    others = [job_id(paths, "train", i) for i in range(1, len(MEMBERS))]
    wait_for(lambda: all(at_gate(gates, "saved-1", job) for job in others), proc, "every training job to run")
    proc.kill()
    proc.wait()
    dead_driver = status(paths)
    proc = driver(run_dir, env)
    wait_for(lambda: {e["task"] for e in events(paths) if e["event"] == "task_adopt" and e["stage"] == "train"}
             >= {1, 2, 3}, proc, "the rerun driver to adopt the training jobs")
    gates.open("saved-1")
    out, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0, err[-3000:]
    return paths, out, cancelled, preempted, dead_driver


def status(paths: RunPaths) -> str:
    proc = subprocess.run([sys.executable, "-m", "sparta_hpc.cli", "status", str(paths.root), "--events", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def sacct(jobs: list[str]) -> list[dict]:
    fields = ["JobID", "JobName", "State", "NNodes"]
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-D", f"--format={','.join(fields)}", "-j", ",".join(jobs)],
                         capture_output=True, text=True, check=True).stdout
    return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]


def test_sacct_shows_job_arrays_cpu_jobs_and_each_members_nodes(slurm_run):
    paths, out, _, _, _ = slurm_run
    submitted = [e for e in events(paths) if e["event"] == "task_submit"]
    rows = sacct(sorted({e["job_id"] for e in submitted}))
    by_name: dict[str, list[dict]] = {}
    for row in rows:
        by_name.setdefault(row["JobName"], []).append(row)
    first = {e["job_id"] for e in submitted if e["attempt"] == 1}
    arrays = {"generate": 1, "judge": 1, "train": 2}  # train: one array per set of member resources
    for stage, n in arrays.items():  # job arrays: ids ARRAY_TASK (a lone retry may be a plain job)
        rows_ = [r for r in by_name[f"sparta-{stage}"] if r["JobID"] in first]
        assert len(rows_) >= 2 and all("_" in r["JobID"] for r in rows_), rows_
        assert len({r["JobID"].split("_")[0] for r in rows_}) == n, f"{n} array(s) for {stage}"
        assert any(r["State"] == "COMPLETED" for r in rows_)
    for stage in ("gather", "aggregate"):  # plain CPU jobs, submitted and waited for
        assert [r["State"] for r in by_name[f"sparta-{stage}"]] == ["COMPLETED"]
        assert [e["stage"] for e in events(paths) if e["event"] == "task_done"].count(stage) == 1
        assert "_" not in by_name[f"sparta-{stage}"][0]["JobID"]
    nnodes = {r["JobID"]: r["NNodes"] for r in rows}
    nodes = {m: nnodes[job_id(paths, "train", i)] for i, m in enumerate(MEMBERS)}
    assert nodes == {m: "2" if m in ZERO else "1" for m in MEMBERS}
    assert "judgments used" in out


def test_training_ran_on_each_members_ranks_and_changed_every_adapter(slurm_run):
    paths = slurm_run[0]
    for name in MEMBERS:
        summary = json.loads(paths.marker(0, "train", name).read_text())
        ranks, zero = (2, ZERO[name]) if name in ZERO else (1, None)
        assert (summary["world_size"], summary["zero_stage"], summary["steps"]) == (ranks, zero, 2), name
        before = load_file(paths.initial_adapter(0, name) / "adapter_model.safetensors")
        after = load_file(paths.adapter(0, name) / "adapter_model.safetensors")
        assert all(not np.array_equal(before[k], after[k]) for k in before)


def test_a_zero3_member_saves_its_whole_adapter_and_its_next_iteration_loads_it(slurm_run, tiny_model):
    """Under ZeRO-3 each rank holds a slice of every large LoRA matrix; the saved adapter must still be
    whole (before: rank 0 saved its own empty slices, shape (0,), and the run said it succeeded). And the
    base model was loaded under zero.Init: each rank held about half of it, not a whole copy."""
    from sparta_hpc.stages.common import load_run
    from sparta_hpc.stages.lora import load_policy

    paths = slurm_run[0]
    zero3 = load_file(paths.adapter(0, "stepwise") / "adapter_model.safetensors")
    alone = load_file(paths.adapter(0, "friendly") / "adapter_model.safetensors")
    assert {k: v.shape for k, v in zero3.items()} == {k: v.shape for k, v in alone.items()}
    assert any(v.shape == (16, 576) for v in zero3.values()) and all(v.size for v in zero3.values())
    # what the next iteration does with it: the member's weights as a trainable PeftModel
    cfg, _ = load_run(paths.root)
    model, _ = load_policy(cfg, str(tiny_model), str(paths.adapter(0, "stepwise")), paths.root / "unused")
    state = {k.replace(".default", ""): v.detach().numpy() for k, v in model.named_parameters() if "lora_" in k}
    assert state.keys() == zero3.keys()
    for k, v in zero3.items():
        np.testing.assert_array_equal(state[k], v)
    loaded = {m: json.loads(paths.marker(0, "train", m).read_text())["loaded_per_rank"] for m in ZERO}
    whole = loaded["concise"][0]["params_held"]  # ZeRO-2: every rank holds the whole model
    assert [r["params_held"] for r in loaded["concise"]] == [whole, whole]
    assert all(r["params_held"] < 0.6 * whole for r in loaded["stepwise"]), loaded["stepwise"]
    print(f"\nloaded per rank: ZeRO-2 {loaded['concise']}, ZeRO-3 {loaded['stepwise']}")


def test_a_cancelled_array_task_is_retried_and_the_run_completes(slurm_run):
    paths, _, cancelled, _, _ = slurm_run
    failed = [e for e in events(paths) if e["event"] == "task_failed" and e["stage"] == "generate"]
    assert [(e["task"], e["job_id"]) for e in failed] == [(1, cancelled)]
    retry = job_id(paths, "generate", 1, attempt=2)
    assert retry and retry != cancelled
    states = {r["JobID"]: r["State"] for r in sacct([cancelled, retry])}
    assert states[cancelled].startswith("CANCELLED") and states[retry] == "COMPLETED"
    # only the cancelled task's shard ran again: task 0 was submitted once
    submits = [e for e in events(paths) if e["event"] == "task_submit" and e["stage"] == "generate"]
    assert sorted(e["task"] for e in submits) == [0, 1, 1]
    assert paths.is_done(0, "aggregate")


def test_a_requeued_training_job_resumes_from_its_checkpoint(slurm_run):
    paths, _, _, preempted, _ = slurm_run
    summary = json.loads(paths.marker(0, "train", MEMBERS[0]).read_text())
    assert summary["resumed_from"] and summary["resumed_from"].endswith("checkpoint-1")
    # the same job id was requeued by submitit (no new submission by the driver)
    assert job_id(paths, "train", 0, attempt=2) is None
    log = Path(paths.logs / "train" / preempted / f"{preempted}_0_log.out").read_text()
    assert "requeu" in log.lower()


def test_a_rerun_driver_waits_for_the_jobs_still_in_slurm(slurm_run):
    paths = slurm_run[0]
    adopted = [e for e in events(paths) if e["event"] == "task_adopt" and e["stage"] == "train"]
    assert adopted, "the rerun driver did not pick up the running training jobs"
    submits = [e for e in events(paths) if e["event"] == "task_submit" and e["stage"] == "train"]
    assert sorted(e["task"] for e in submits) == [0, 1, 2, 3], "training jobs were submitted twice"


def test_status_of_the_run_with_its_driver_dead_asks_slurm_about_each_job_once(slurm_run):
    paths, _, _, _, text = slurm_run
    assert "driver   not running" in text and "it ended without a last word" in text
    row = [line.split() for line in text.splitlines() if line.startswith("  train ")]
    assert len(row) == 1 and row[0][1:4] == ["interrupted", "4", "0"], text
    flying = [line for line in text.splitlines() if ", train task " in line]
    assert len(flying) == 4, text  # each training job once: the requeued one under its own id
    for i in range(1, len(MEMBERS)):
        assert any(f"train task {i}: job {job_id(paths, 'train', i)} RUNNING (its driver is gone" in line
                   for line in flying), text


def test_the_report_of_the_slurm_run_draws_its_real_training(slurm_run):
    from .test_report import make_report

    paths = slurm_run[0]
    page, text = make_report(paths)
    made = {p.name for p in page.parent.glob("*.png")}
    assert {"ratings.png", "wins.png", "judges.png", "pairs.png", "train.png", "timeline.png"} <= made
    assert "Not in this report yet" in text and "eval.tasks is empty" in text  # no evaluation in this run
    from sparta_hpc.report.data import train_log

    for name in MEMBERS:  # TRL's own log of the real steps (not the scripted model's), one loss per step
        history = train_log(paths, 0, name)
        assert [h["step"] for h in history if "loss" in h] == [1, 2] and not any(h.get("scripted") for h in history)
    final = status(paths)
    assert "now      finished" in final and "jobs the events name as in flight" not in final
    assert "failures (1 failed attempt(s))" in final and "generate task 1, attempt 1" in final
