"""The tiny tribe end to end on CPU through the real driver: every stage, the archive, resume.

Slow (minutes): real models generate, judge and DPO-train. The tasks run in the driver's process
(the `debug` executor): a task here is mostly loading Python and the model, which one process does
once. Real task processes are the other tests' (local: tests/test_nonfinite_loss.py,
tests/test_sft.py, the fast tier's faults; Slurm: tests/test_slurm.py).
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from sparta_hpc.rundir.archive import read_archive
from sparta_hpc.rundir.paths import RunPaths

from .conftest import ROOT, SAMPLES
from .gates import Gates

pytestmark = pytest.mark.slow

# Short iterations: 4 duels, short answers, 2 DPO steps of 2 pairs per member. Judge shards of
# another size than generate shards (2 vs 3: judge shard 1 reads generate shards 0 and 1) and two
# sampled judge rounds.
DUELS, ROUNDS = 4, 2
OVERRIDES = [f"tribe.duels_per_iteration={DUELS}", "generate.duels_per_shard=3", "judge.duels_per_shard=2",
             f"judge.rounds={ROUNDS}", "judge.temperature=0.7", "train.max_steps=2", "train.save_steps=1",
             "train.batch_size=2",
             "tracking.report_to=tensorboard", "cluster.executor=debug", "cluster.local_threads=2"] + [
    f"tribe.members.{m}.max_new_tokens=24" for m in ("concise", "stepwise", "friendly", "plain")]
MEMBERS = ["concise", "stepwise", "friendly", "plain"]


def command(run_dir: Path, iterations: int) -> list[str]:
    return [sys.executable, "-m", "sparta_hpc.driver", "--config", "configs/tiny.yaml", f"run.dir={run_dir}",
            f"tribe.iterations={iterations}", *OVERRIDES]


def run_driver(run_dir: Path, iterations: int) -> subprocess.CompletedProcess:
    proc = subprocess.run(command(run_dir, iterations), cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="session")
def reference_run(tiny_model, tmp_path_factory):
    """Two whole iterations: the second one serves and trains the adapters the first one made."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    proc = run_driver(run_dir, iterations=2)
    return run_dir, proc


def test_one_iteration_through_every_stage(reference_run):
    run_dir, proc = reference_run
    paths = RunPaths(run_dir)
    for stage in ("plan", "generate", "judge", "gather", "aggregate", "train"):
        assert paths.is_done(0, stage)
    assert "judgments used" in proc.stdout and "concise" in proc.stdout  # the summary table
    # every stage's tasks were submitted and waited for, in data-flow order
    log = [json.loads(line) for line in paths.events.read_text().splitlines()]
    order = [(e["event"], e["stage"]) for e in log if e["event"] in ("task_submit", "task_done")
             and e["iteration"] == 0]
    for stage, n in (("generate", 2), ("judge", 2), ("gather", 1), ("aggregate", 1), ("train", 4)):
        assert order.count(("task_done", stage)) == n, stage
    assert order.index(("task_done", "gather")) < order.index(("task_submit", "aggregate"))
    assert all("peak_rss_mb" in e for e in log if e["event"] == "task_done")

    a = read_archive(paths.archive(0))
    n, m = DUELS, len(MEMBERS)
    assert json.loads(a["attrs"]["members"]) == MEMBERS
    assert "tribe:" in a["attrs"]["config"] and json.loads(a["attrs"]["versions"])["torch"].startswith("2.13")
    assert len(a["instructions/text"]) == n and all(a["instructions/text"])
    duels = np.stack([a["duels/a"], a["duels/b"]], axis=1)
    assert (duels[:, 0] != duels[:, 1]).all()
    # real text from real models, one per duelist
    assert a["responses/text"].shape == (n, 2) and all(t.strip() for t in a["responses/text"].ravel())
    assert (a["responses/n_tokens"] > 0).all()
    # every non-duelist judged both responses; duelists never did
    raw, parsed, expected = a["judgments/raw"], a["judgments/parsed"], a["judgments/expected"]
    assert raw.shape == (n, m, 2, ROUNDS)
    for c in range(n):
        for j in range(m):
            judged = j not in duels[c]
            assert all(bool(x) == judged for x in raw[c, j].ravel())
            assert np.isfinite(expected[c, j]).all() == judged  # the expected score always exists
            for p in parsed[c, j].ravel():
                assert math.isnan(p) or 1 <= p <= 10
    assert a["judgments/logprobs"].shape == (n, m, 2, 10)
    report = json.loads(a["attrs"]["judge_report"])
    assert sum(r["judgments"] for r in report.values()) == n * (m - 2) * 2 * ROUNDS
    # the archive's scores feed the reputation update and the pairs
    assert np.isfinite(a["weighted_scores/final"]).all()
    assert a["ratings_before/rating"].tolist() == [100.0] * m
    assert not np.allclose(a["ratings_after/rating"], a["ratings_before/rating"])
    pairs = [json.loads(line) for line in paths.pairs(0).read_text().splitlines()]
    assert len(pairs) == len(a["pairs/duel"]) >= 1
    for row, c, ch in zip(pairs, a["pairs/duel"], a["pairs/chosen"]):
        assert row["score_chosen"] > row["score_rejected"]
        assert row["chosen_member"] == MEMBERS[ch] and MEMBERS.index(row["rejected_member"]) in duels[c]
        assert row["chosen"][0]["content"] in a["responses/text"][c].tolist()
    ratings = json.loads(paths.ratings(1).read_text())
    assert [ratings[name]["rating"] for name in MEMBERS] == a["ratings_after/rating"].tolist()


def test_every_member_adapter_was_trained(reference_run):
    run_dir, _ = reference_run
    paths = RunPaths(run_dir)
    for name in MEMBERS:
        before = load_file(paths.initial_adapter(0, name) / "adapter_model.safetensors")
        after = load_file(paths.adapter(0, name) / "adapter_model.safetensors")
        assert before.keys() == after.keys() and before
        changed = [k for k in before if not np.array_equal(before[k], after[k])]
        assert len(changed) == len(before), f"{name}: only {len(changed)} of {len(before)} tensors changed"
        summary = json.loads(paths.marker(0, "train", name).read_text())
        assert summary["steps"] == 2 and summary["pairs"] >= 1
        # what the length limits did, counted (stages/dpo_trainer.py): short tiny-run pairs all fit
        assert summary["pairs_given"] == summary["pairs_trained"] == summary["pairs"]
        assert summary["pairs_dropped_for_length"] == 0 and summary["prompts_cut"] == 0
    from sparta_hpc.config.schema import load_config
    from sparta_hpc.report import data as report_data

    run = report_data.load(load_config(paths.config), paths, "done")
    assert sorted(row[1] for row in report_data.train_lengths(run) if row[0] == 0) == sorted(MEMBERS)


def test_trls_training_metrics_reach_tensorboard_and_the_log_history_is_kept(reference_run):
    from .test_pipeline_fast import scalars

    run_dir, _ = reference_run
    paths = RunPaths(run_dir)
    for name in MEMBERS:
        history = json.loads(paths.train_log(0, name).read_text())
        losses = [h["loss"] for h in history if "loss" in h]
        assert len(losses) == 2 and "rewards/margins" in history[0]
        found = scalars(paths.tracking / "tensorboard" / "train" / name / "iter_0000")
        assert [v for _, v in found["train/loss"]] == pytest.approx(losses)
        assert "train/rewards/accuracies" in found
    assert "rating/concise" in scalars(paths.tracking / "tensorboard" / "pipeline")


def test_the_second_iteration_continues_from_the_first(reference_run):
    run_dir, proc = reference_run
    paths = RunPaths(run_dir)
    a0, a1 = read_archive(paths.archive(0)), read_archive(paths.archive(1))
    np.testing.assert_array_equal(a1["ratings_before/rating"], a0["ratings_after/rating"])
    assert not set(a0["instructions/id"]) & set(a1["instructions/id"]), "unused instructions come first"
    for name in MEMBERS:
        # iteration 1 trained each member's own adapter further, against a frozen copy of it
        start = load_file(paths.adapter(0, name) / "adapter_model.safetensors")
        end = load_file(paths.adapter(1, name) / "adapter_model.safetensors")
        assert start.keys() == end.keys()
        assert all(not np.array_equal(start[k], end[k]) for k in start)
    for shard in sorted((paths.iteration(1) / "generate").glob("*.json")):
        assert json.loads(shard.read_text())["model_loads"] == 1  # one base model, four adapters
    # the closing table: its header, then one row per iteration with the duels and pairs of its summary
    table = [line.split() for line in proc.stdout.splitlines()]
    head = next(i for i, row in enumerate(table) if row[:3] == ["iter", "duels", "judged"])
    for t in (0, 1):
        summary = json.loads(paths.summary(t).read_text())
        row = next(r for r in table[head + 1:] if r[:1] == [str(t)])
        assert row[1] == str(DUELS) and row[3] == f"{summary['used']}/{summary['judgments']}", row
        assert row[5] == str(summary["pairs"]) == str(len(paths.pairs(t).read_text().splitlines())), row
        # judge.score=expected: every judgment's expected score is used, parsed or not
        assert summary["used"] == summary["judgments"] == DUELS * (len(MEMBERS) - 2) * 2 * ROUNDS


def test_one_base_load_serves_each_members_adapter(reference_run):
    """Switching adapters on one loaded base gives exactly what loading each member alone gives."""
    from sparta_hpc.backends.hf import HFGroup

    run_dir, _ = reference_run
    paths = RunPaths(run_dir)
    model_dir = str(ROOT / ".cache/models/smollm2-135m-instruct")
    adapters = {"concise": str(paths.adapter(0, "concise")), "stepwise": str(paths.adapter(0, "stepwise")),
                "plain": None}
    group = HFGroup(model_dir, adapters)
    assert group.loads == 1
    conv = [[{"role": "user", "content": "What is 12 + 30?"}]]
    shared = {name: group.score_logprobs(name, conv, "", ["42", "The"], 1)[0] for name in adapters}
    assert shared["concise"] != shared["plain"] and shared["concise"] != shared["stepwise"]
    for name, path in adapters.items():
        alone = HFGroup(model_dir, {name: path})
        np.testing.assert_allclose(list(alone.score_logprobs(name, conv, "", ["42", "The"], 1)[0].values()),
                                   list(shared[name].values()), rtol=0, atol=1e-4)


def test_export_feeds_trl_and_replay(reference_run, tmp_path):
    run_dir, _ = reference_run
    out = tmp_path / "export"
    subprocess.run([sys.executable, "-m", "sparta_hpc.cli", "export", str(run_dir), "--iteration", "0",
                    "--out", str(out), "--duels"], check=True, cwd=ROOT)
    from datasets import load_from_disk

    dataset = load_from_disk(str(out / "dataset"))
    assert {"prompt", "chosen", "rejected"} <= set(dataset.column_names)
    assert len(dataset) == len((out / "pairs.jsonl").read_text().splitlines())
    # replaying the exported judgments reproduces the run's reputation update exactly
    subprocess.run([sys.executable, "-m", "sparta_hpc.cli", "replay", str(out / "duels.jsonl"), "--ratings",
                    str(out / "ratings.json"), "--out", str(tmp_path / "replay.json")], check=True)
    replayed = json.loads((tmp_path / "replay.json").read_text())
    assert replayed["ratings"] == json.loads(RunPaths(run_dir).ratings(1).read_text())
    # TRL's DPOTrainer takes the dataset as is
    code = """
import sys
from datasets import load_from_disk
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
args = DPOConfig(output_dir=sys.argv[3], max_steps=1, per_device_train_batch_size=2, bf16=False,
                 report_to=[], max_length=128, disable_tqdm=True)
trainer = DPOTrainer(model=model, args=args, processing_class=tok, train_dataset=load_from_disk(sys.argv[2]),
                     peft_config=LoraConfig(r=4, target_modules=["q_proj"], task_type="CAUSAL_LM"))
result = trainer.train()
print("steps", trainer.state.global_step, "rows", len(trainer.train_dataset), "loss", result.training_loss)
"""
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / ".cache/models/smollm2-135m-instruct"),
                           str(out / "dataset"), str(tmp_path / "trl")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    words = proc.stdout.split()
    steps, rows, loss = int(words[words.index("steps") + 1]), int(words[words.index("rows") + 1]), \
        float(words[words.index("loss") + 1])
    # one step on every exported pair; a DPO loss starts at log 2 (the policy is the reference)
    assert steps == 1 and rows == len(dataset) and loss == pytest.approx(math.log(2), abs=1e-3)


def test_single_process_deepspeed_job_trains(reference_run, tmp_path):
    """A 1-process training task (local executor) under DeepSpeed ZeRO-2 and
    a world of one that the task sets up itself (DeepSpeed would look for MPI)."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(reference_run[0], run_dir, ignore=shutil.ignore_patterns("logs", "iter_0001"))
    paths = RunPaths(run_dir)
    shutil.rmtree(paths.train_dir(0, "concise"))
    shutil.rmtree(paths.adapter(0, "concise"))
    paths.marker(0, "train", "concise").unlink()
    config = paths.config.read_text()
    assert "  deepspeed: null\n" in config
    paths.config.write_text(config.replace("  deepspeed: null\n",
                                           f"  deepspeed: {ROOT / 'configs/deepspeed/zero2.json'}\n"))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    code = "import sys; from sparta_hpc.tasks import run_task; run_task(sys.argv[1], 'train', 0, 0)"
    proc = subprocess.run([sys.executable, "-c", code, str(run_dir)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(paths.marker(0, "train", "concise").read_text())
    assert summary["zero_stage"] == 2 and summary["world_size"] == 1 and summary["dist_backend"] == "gloo"
    assert summary["steps"] == 2 and summary["tokens_per_rank"] > 0
    before = load_file(paths.initial_adapter(0, "concise") / "adapter_model.safetensors")
    after = load_file(paths.adapter(0, "concise") / "adapter_model.safetensors")
    assert all(not np.array_equal(before[k], after[k]) for k in before)


def wait_for(condition, proc, timeout=900):
    start = time.time()
    while not condition():
        assert proc.poll() is None, f"the driver ended before the kill point: {proc.stderr.read()[-2000:]}"
        assert time.time() - start < timeout, "timed out waiting for the kill point"
        time.sleep(0.1)


def test_a_driver_killed_mid_training_resumes_from_the_checkpoint_to_the_same_adapter(reference_run, tmp_path):
    """Real TRL training SIGKILLed with the driver while it waits right after its first checkpoint, then
    the same command again: the member resumes from checkpoint-1 and ends with the uninterrupted run's adapter. The
    run is the reference run's iteration 0 with one member's training undone, so only that member
    trains. (The driver killed at every stage, mid-way through the HDF5 archive included, is the
    fast tier's fault matrix, tests/test_faults.py, where it costs seconds.)"""
    import shutil

    ref, run_dir, name = RunPaths(reference_run[0]), tmp_path / "run", MEMBERS[0]
    shutil.copytree(ref.root, run_dir, ignore=shutil.ignore_patterns("logs", "iter_0001"))
    paths = RunPaths(run_dir)
    for undone in (paths.train_dir(0, name), paths.adapter(0, name)):
        shutil.rmtree(undone)
    paths.marker(0, "train", name).unlink()
    paths.marker(0, "train").unlink()
    finished = {m: paths.adapter(0, m).stat().st_mtime_ns for m in MEMBERS[1:]}
    again = command(run_dir, 2) + ["--stop-after", "train"]  # the reference run's command

    # the training waits right after its first checkpoint (tests/gates.py) until the driver is dead
    gates = Gates(tmp_path / "gates")
    gates.hold("saved-1")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "sitecustomize"), **gates.env())
    env.pop("PYTHONSAFEPATH", None)
    proc = subprocess.Popen(again, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: gates.waiting("saved-1"), proc)
    assert (paths.train_dir(0, name) / "checkpoint-1" / "trainer_state.json").exists()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    task = gates.waiting("saved-1")[0]["pid"]
    deadline = time.time() + 60  # a local task ends itself within a second of its driver's death
    while Path(f"/proc/{task}").exists() and "Z" not in Path(f"/proc/{task}/stat").read_text().split()[2]:
        assert time.time() < deadline, "the training task outlived its driver"
        time.sleep(0.2)
    assert not paths.is_done(0, "train", name)

    done = subprocess.run(again, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(paths.marker(0, "train", name).read_text())
    assert summary["resumed_from"] and summary["resumed_from"].endswith("checkpoint-1"), "training restarted"
    assert {m: paths.adapter(0, m).stat().st_mtime_ns for m in MEMBERS[1:]} == finished, "a member retrained"
    x = load_file(paths.adapter(0, name) / "adapter_model.safetensors")
    y = load_file(ref.adapter(0, name) / "adapter_model.safetensors")
    for k in x:
        np.testing.assert_allclose(x[k], y[k], rtol=0, atol=1e-6, err_msg=f"{name} {k}")


# One task of each kind of answer rule (a number, a letter, a MATH expression, a 1..10 rating with and
# without a gold answer): two items each, short answers; the tiny model rates the open-ended ones by its
# expected score (it rarely writes a parsable one). Every task's rules on hand-written answers: the fast
# tier (tests/test_eval_metrics.py).
EVAL_TASKS = ["gsm8k", "medqa", "math_easy", "com2", "alpaca"]
EVAL = [f"eval.data_dir={SAMPLES}", f"eval.files={{alpaca: {ROOT / 'tests/assets/eval/alpaca.jsonl'}}}",
        "eval.split=test", "eval.limit=2", "eval.max_new_tokens=12", "eval.evaluator.max_new_tokens=4",
        f"eval.evaluator.model={ROOT / '.cache/models/smollm2-135m-instruct'}", "eval.evaluator.score=expected",
        "cluster.local_parallel=1", "cluster.local_threads=2"]  # one evaluate task per point: both cores for it
INITIAL_TASKS = ["gsm8k", "com2"]  # BEST INIT for two tasks keeps the test short


def sparta_hpc(*args) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "sparta_hpc.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_the_trained_tribe_is_evaluated_with_real_answers_and_lm_eval(reference_run, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(reference_run[0], run_dir, ignore=shutil.ignore_patterns("logs"))
    paths = RunPaths(run_dir)
    every_task = f"eval.tasks=[{','.join(EVAL_TASKS)}]"
    sparta_hpc("eval", run_dir, "--initial", f"eval.tasks=[{','.join(INITIAL_TASKS)}]", *EVAL)
    sparta_hpc("eval", run_dir, "--iteration", "1", every_task, *EVAL)
    assert paths.evaluated_points() == [-1, 1]
    for point, tasks in ((-1, INITIAL_TASKS), (1, EVAL_TASKS)):
        for name in MEMBERS:
            for task in tasks:
                result = json.loads(paths.eval_result(point, name, task).read_text())["test"]
                samples = paths.eval_samples(point, name, task, "test").read_text().splitlines()
                assert result["items"] == len(samples) == 2
                low, high = (1, 10) if task in ("com2", "alpaca") else (0, 1)
                assert low <= result["score"] <= high and result["n"] == 2, (task, result)
                assert all(json.loads(s)["response"] for s in samples)
        shard = json.loads(next((paths.eval_point(point) / "evaluate").glob("*.json")).read_text())
        assert shard["model_loads"] == 1  # one load answered every task
        # the members as they started (no adapters), then with the adapters iteration 1 trained
        assert shard["adapters"] == {m: None if point == -1 else str(paths.adapter(1, m)) for m in MEMBERS}

    # a rerun recomputes nothing; the table compares BEST INIT with the selected model
    submitted = sum(e["event"] == "task_submit" for e in map(json.loads, paths.events.read_text().splitlines()))
    sparta_hpc("eval", run_dir, "--iteration", "1", every_task, *EVAL)
    events = [json.loads(x) for x in paths.events.read_text().splitlines()]
    assert sum(e["event"] == "task_submit" for e in events) == submitted
    table = sparta_hpc("eval-table", run_dir).stdout
    assert all(f"| {task} | test / test |" in table for task in EVAL_TASKS) and "average relative improvement" in table
    assert "(concise, N=2)" in table or "(stepwise, N=2)" in table or "(friendly, N=2)" in table \
        or "(plain, N=2)" in table  # a BEST INIT member
    print(table)
