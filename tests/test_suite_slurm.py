"""`sparta-hpc suite` on the single-host Slurm: the tiny tribe, 1 task (gsm8k) x 2 methods (SPARTA,
Self-Rewarding), at the smallest sizes (1 iteration of 4 duels, 2 evaluation items a split, 8 new tokens).

Real models and real Slurm: `suite submit` sends each driver as the README's sbatch job. The first
submit sends SPARTA only (the baseline waits for the task's BEST INIT); once SPARTA's initial evaluation
is scored, a second submit sends the baseline with that member, and a third, while both run or after,
sends nothing. `suite status` and `suite table` read the finished runs.
"""

import contextlib
import io
import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from sparta_hpc import cli
from sparta_hpc.rundir.paths import INITIAL, RunPaths

from .conftest import ROOT, SAMPLES
from .test_slurm import cluster  # noqa: F401 (fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SIZES = ["tribe.iterations=1", "tribe.duels_per_iteration=4", "generate.duels_per_shard=4",
         "judge.duels_per_shard=4", "train.max_steps=1", "train.batch_size=1", "eval.limit=2",
         "eval.items_per_shard=2", "eval.max_new_tokens=8", "tracking.report_to=none", "cluster.executor=slurm"]
SIZES += [f"tribe.members.{m}.max_new_tokens=8" for m in ("concise", "stepwise", "friendly", "plain")]
for _stage in ("generate", "judge", "gather", "aggregate", "train", "evaluate", "rate", "score"):
    SIZES += [f"cluster.{_stage}.cpus_per_task=1", f"cluster.{_stage}.mem_gb=2",
              f"cluster.{_stage}.gpus_per_node=0", f"cluster.{_stage}.time_min=30"]


def call(*argv) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["suite", *argv])
    return code, out.getvalue()


def wait_until(condition, what: str, timeout: float = 1800):
    start = time.time()
    while not condition():
        assert time.time() - start < timeout, f"timed out waiting for {what}"
        time.sleep(2)


def write_suite(folder: Path, tiny_model: Path) -> Path:
    data = folder / "data"
    (data / "gsm8k").mkdir(parents=True)
    rows = [{"id": f"g{i}", "instruction": f"What is {i} + {i + 2}?", "reference": str(2 * i + 2)} for i in range(6)]
    (data / "gsm8k" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "eval").mkdir()
    shutil.copy(SAMPLES / "gsm8k.json", data / "eval" / "gsm8k.json")
    (folder / "self.yaml").write_text(f"inherit: {ROOT / 'configs' / 'tiny.yaml'}\nmethod: self_rewarding\n"
                                      "baseline: {samples: 2}\n")
    spec = {"dir": str(folder / "runs"), "data": str(data), "tasks": ["gsm8k"],
            "overrides": SIZES + [f"tribe.members.{m}.model={tiny_model}"
                                  for m in ("concise", "stepwise", "friendly", "plain")],
            "methods": {"sparta": str(ROOT / "configs" / "tiny.yaml"), "self_rewarding": "self.yaml"}}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_a_suite_through_slurm(cluster, tiny_model, tmp_path):  # noqa: F811 (the imported fixture)
    path = write_suite(tmp_path, tiny_model)
    runs = tmp_path / "runs"
    sparta, baseline = RunPaths(runs / "sparta-gsm8k"), RunPaths(runs / "self_rewarding-gsm8k")
    code, plan = call("plan", str(path))
    assert code == 0 and "2 run(s) = 1 task(s) x 2 method(s)" in plan and "waits on  sparta-gsm8k" in plan

    code, first = call("submit", str(path))
    assert code == 0, first
    assert "sparta-gsm8k" in first and "submitted: driver job" in first
    assert "self_rewarding-gsm8k         not submitted: waiting" in first
    code, again = call("submit", str(path))  # SPARTA's driver job is queued or running: nothing twice
    assert "submitted: driver job" not in again, again

    wait_until(lambda: sparta.is_done(INITIAL, "score"), "SPARTA's initial evaluation")
    code, second = call("submit", str(path))
    assert "self_rewarding-gsm8k" in second and "submitted: driver job" in second, second
    wait_until(lambda: all("done" in line.split()[1:2] for line in call("status", str(path))[1].splitlines()[:2]),
               "both runs to finish")
    code, third = call("submit", str(path))
    assert "submitted: driver job" not in third and third.count("not submitted: done") == 2, third

    member = yaml.safe_load(baseline.config.read_text())["baseline"]["member"]
    assert json.loads(baseline.policy.read_text())["member"] == member
    code, status = call("status", str(path))
    assert code == 0 and "2 runs: 2 done" in status
    code, table = call("table", str(path))
    print(table)  # the Slurm-tier suite's table, for the record
    assert code == 0
    assert "| method | gsm8k | vs BEST INIT |" in table
    assert [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "---" not in
            line][1:] == ["BEST INIT", "sparta", "self_rewarding"]
