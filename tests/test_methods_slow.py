"""Every self-alignment baseline, one tiny iteration end to end with real models: real samples, real
self-judgments / meta-judgments / pairwise preferences, a real DPO step (SPPO: its own soft loss)
and an evaluation after it; then `sparta-hpc compare` on the four runs.

Slow (minutes): one run picks BEST INIT from an initial evaluation, the other three align the member
it picked (baseline.member), and every task runs inside its driver's process (the `debug` executor:
real models, no process start per task) to keep the tier short. A 135M tribe shows the machinery,
not gains.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from sparta_hpc.rundir.archive import read_archive
from sparta_hpc.rundir.paths import RunPaths

from .conftest import ROOT, SAMPLES

pytestmark = pytest.mark.slow

METHODS = ["self_rewarding", "meta_rewarding", "spin", "sppo"]
COMMON = ["tribe.iterations=1", "tribe.duels_per_iteration=2", "instructions.with_reference_only=true",
          "baseline.samples=2", "judge.rounds=2", "judge.temperature=0.7", "judge.duels_per_shard=2",
          "generate.duels_per_shard=2", "train.max_steps=1", "cluster.executor=debug",
          "eval.tasks=[normad_country,medqa]", f"eval.data_dir={SAMPLES}", "eval.split=test", "eval.limit=2",
          "eval.max_new_tokens=16"] + [
    # every member samples (the aligned one's samples must differ, or best and worst tie and make no pair)
    o for m in ("concise", "stepwise", "friendly", "plain")
    for o in (f"tribe.members.{m}.max_new_tokens=16", f"tribe.members.{m}.temperature=1.0")]


def drive(run_dir, *overrides) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "sparta_hpc.driver", "--config", "configs/tiny.yaml",
                           f"run.dir={run_dir}", *COMMON, *overrides], cwd=ROOT, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("methods")
    out = {"self_rewarding": drive(root / "self_rewarding", "method=self_rewarding")}
    policy = json.loads(RunPaths(root / "self_rewarding").policy.read_text())["member"]
    for method in METHODS[1:]:  # the same member, without evaluating the start again
        out[method] = drive(root / method, f"method={method}", f"baseline.member={policy}", "eval.initial=false")
    return root, policy, out


@pytest.mark.parametrize("method", METHODS)
def test_each_baseline_trains_its_model_on_its_own_pairs_and_is_evaluated(runs, method):
    root, policy, procs = runs
    paths = RunPaths(root / method)
    a = read_archive(paths.archive(0))
    text = a["responses/text"]
    assert text.shape == (2, 1 if method == "spin" else 2) and all(t.strip() for t in text.ravel())
    pairs = [json.loads(x) for x in paths.pairs(0).read_text().splitlines()]
    if method in ("self_rewarding", "meta_rewarding"):  # the model judged its own answers, both rounds
        p = json.loads(a["attrs"]["members"]).index(policy)
        assert all(a["judgments/raw"][:, p].ravel()) and np.isfinite(a["judgments/expected"][:, p]).all()
    if method == "meta_rewarding" and (a["meta/rounds"] >= 0).any():  # disagreeing judgments were meta-judged
        assert np.isfinite(a["meta/p_hi_better"][a["meta/rounds"][..., 0] >= 0]).all()
    if method == "spin":
        assert pairs and all(r["chosen"][0]["content"] == a["instructions/reference"][r["duel"]] for r in pairs)
    if method == "sppo":
        prob = a["comparisons/prob"]
        assert np.isfinite(prob[:, 0, 1]).all() and np.allclose(prob[:, 0, 1] + prob[:, 1, 0], 1)
    summary = json.loads(paths.marker(0, "train", policy).read_text())
    assert summary["loss_type"] == ("sppo" if method == "sppo" else "sigmoid")
    others = [m for m in ("concise", "stepwise", "friendly", "plain") if m != policy]
    assert not any(paths.is_done(0, "train", m) for m in others)  # only the aligned model trains
    # every run made pairs (sampled answers differ), and the one DPO step on them moved the adapter
    assert pairs and len(pairs) == len(a["pairs/duel"]) and summary["pairs"] == len(pairs)
    assert all(r["chosen"] != r["rejected"] for r in pairs)
    assert summary["steps"] == 1
    before = load_file(paths.initial_adapter(0, policy) / "adapter_model.safetensors")
    after = load_file(paths.adapter(0, policy) / "adapter_model.safetensors")
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    result = json.loads(paths.eval_result(0, policy, "medqa").read_text())["test"]
    assert result["n"] == 2 and 0 <= result["score"] <= 1
    assert f"{method}: aligning {policy}" in procs[method].stdout


def test_compare_prints_the_table_of_the_four_methods(runs, tmp_path_factory):
    root, _, _ = runs
    proc = subprocess.run([sys.executable, "-m", "sparta_hpc.cli", "compare", *(str(root / m) for m in METHODS)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    print("\n" + proc.stdout)
    # kept for a person to read (the tiny models' scores say nothing about the methods; the shape does)
    kept = Path(os.environ.get("SPARTA_ARTIFACTS") or tmp_path_factory.getbasetemp()) / "compare-table.md"
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(proc.stdout)
    print(f"compare table: {kept}")
    assert "| method | medqa | normad_country | vs BEST INIT |" in proc.stdout and "| BEST INIT |" in proc.stdout
    for method in METHODS:
        assert f"| {method} ({method}) |" in proc.stdout
