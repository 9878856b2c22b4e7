"""Jobs run the code the run started with: a code snapshot under the run directory, and provenance.

Real processes (local executor: the driver and each job its own Python) on the scripted model
(tests/sitecustomize), from a copy of the package that the test then edits: the resumed run's
driver and jobs still import the snapshot, and `--current-code` takes the edited checkout.
Slow tier: about a minute of process starts, no model compute.
"""

import json
import os
import shutil
import subprocess
import sys

import h5py
import pytest
import yaml

from sparta_hpc.rundir.paths import RunPaths

from .conftest import ROOT

pytestmark = pytest.mark.slow


def driver(checkout, config, run_dir, *extra) -> subprocess.CompletedProcess:
    env = dict(os.environ, SPARTA_SCRIPTED_MODELS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "sitecustomize")]))
    env.pop("PYTHONSAFEPATH", None)
    return subprocess.run([sys.executable, "-m", "sparta_hpc.driver", "--config", str(config), f"run.dir={run_dir}",
                           *extra], cwd=checkout, env=env, capture_output=True, text=True, timeout=900)


def test_a_resume_runs_the_snapshot_and_current_code_runs_the_checkout(tmp_path):
    checkout = tmp_path / "checkout"  # a checkout the test may edit
    shutil.copytree(ROOT / "sparta_hpc", checkout / "sparta_hpc", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "tribe": {"iterations": 2, "duels_per_iteration": 4,
                  "members": [{"name": n, "model": str(tmp_path / "base")} for n in ("ada", "bo", "cy")]},
        "generate": {"duels_per_shard": 2}, "judge": {"duels_per_shard": 2},
        "cluster": {"executor": "local", "local_parallel": 2}}))
    run = RunPaths(tmp_path / "run")

    first = driver(checkout, config, run.root, "--stop-after", "generate")
    assert first.returncode == 0, first.stderr[-3000:]
    record = json.loads(run.provenance.read_text())
    snapshot = record["code"]["snapshot"]
    assert snapshot.startswith(str(run.code_root)) and record["code"]["source"] == str(checkout / "sparta_hpc")
    done = [e for e in map(json.loads, run.events.read_text().splitlines()) if e["event"] == "task_done"]
    assert done and all(e["code"] == os.path.join(snapshot, "sparta_hpc") for e in done)  # jobs import the copy
    (interpreter, entry), = record["interpreters"].items()
    assert interpreter == sys.executable and entry["stages"] == ["generate"]
    assert entry["versions"]["torch"].startswith("2.13") and "# Provenance" in run.config.read_text()

    # someone edits the checkout during the run: the run does not notice
    judge = checkout / "sparta_hpc" / "stages" / "judge.py"
    judge.write_text(judge.read_text() + '\nraise RuntimeError("the edited checkout")\n')
    second = driver(checkout, config, run.root, "--stop-after", "train")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming with the run's code snapshot" in second.stderr
    assert run.is_done(0, "train") and "the edited checkout" not in second.stderr
    with h5py.File(run.archive(0)) as f:
        archived = json.loads(f.attrs["provenance"])
    assert archived["code"]["snapshot"] == snapshot and "judge" in archived["interpreters"][sys.executable]["stages"]
    assert f"# generate, judge, gather, aggregate, train: {sys.executable}" in run.config.read_text()

    # --current-code: the checkout as it is now, in a new snapshot, for the jobs from here on
    third = driver(checkout, config, run.root, "--current-code")
    assert third.returncode == 1 and "the edited checkout" in (third.stderr + "".join(
        p.read_text() for p in run.logs.rglob("*_log.err")))
    record = json.loads(run.provenance.read_text())
    assert len(record["snapshots"]) == 2 and record["code"]["snapshot"] != snapshot
    assert record["code"]["commit"] is None  # the copy is no git checkout: recorded as such
