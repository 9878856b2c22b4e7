"""A member whose DPO loss becomes NaN (slow tier: real DPO steps on the tiny model).

The fault is made for real: one member starts from a LoRA adapter whose B matrices hold NaN (what a
diverged or damaged adapter looks like), so its policy's log-probabilities and its DPO loss are NaN
from the first step. Generation and judging use the scripted model (the fault is in training); the
three members train with TRL's DPOTrainer in real task processes (the local executor). Expected: that member's training stops with an
error naming it and the step, no checkpoint of it is kept, the other members' adapters are kept,
and the driver's failure names the stage, the task and its log.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from sparta_hpc.rundir.paths import RunPaths

from .conftest import ROOT

pytestmark = pytest.mark.slow

MEMBERS = ["ada", "bo", "cy"]


def nan_adapter(base, folder):
    """A LoRA adapter on `base` whose lora_B weights are NaN."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.fill_(float("nan"))
    model.save_pretrained(folder)
    return folder


def write_config(tiny_model, folder, executor: str):
    members = [{"name": n, "model": str(tiny_model), "max_new_tokens": 8} for n in MEMBERS]
    members[1]["adapter"] = str(nan_adapter(tiny_model, folder / "nan-adapter"))
    config = {"tribe": {"iterations": 1, "duels_per_iteration": 6, "members": members},
              "judge": {"answer_prefix": '{"score": '},
              "train": {"max_steps": 2, "batch_size": 2, "max_length": 96, "save_steps": 1, "lora_r": 4},
              "tracking": {"report_to": "none"},
              "cluster": {"executor": executor, "max_retries": 0, "local_parallel": 3, "local_threads": 1}}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def diverged_run(tiny_model, tmp_path_factory):
    """(the driver's stderr, paths, events): each task is a real process (the scripted model answers and
    judges through tests/sitecustomize, DPO is real) and the driver ends with status 1 naming the stage,
    the task and its log. (The debug executor, which re-raises the task's own exception in the driver's
    process, is the same training code; its variant of this test was dropped to keep CI in its budget.)"""
    folder = tmp_path_factory.mktemp("nonfinite")
    path, paths = write_config(tiny_model, folder, "local"), RunPaths(folder / "run")
    env = dict(os.environ, SPARTA_SCRIPTED_MODELS="answers", PYTHONPATH=str(ROOT / "tests" / "sitecustomize"))
    env.pop("PYTHONSAFEPATH", None)
    proc = subprocess.run([sys.executable, "-m", "sparta_hpc.driver", "--config", str(path),
                           f"run.dir={paths.root}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1, proc.stderr[-3000:]
    error = proc.stderr
    assert "train (iteration 0) task 1 failed 1 time, last with: " in error
    assert f"See its log {paths.logs / 'train'}/" in error
    events = [json.loads(line) for line in paths.events.read_text().splitlines()]
    return error, paths, events


def test_the_diverged_member_stops_with_an_error_naming_it(diverged_run):
    error, paths, events = diverged_run
    assert "member bo, iteration 0 (DPO): the training loss is nan" in error
    failed = [e for e in events if e["event"] == "task_failed" and e["stage"] == "train"]
    assert [e["task"] for e in failed] == [1]
    assert "member bo, iteration 0 (DPO): the training loss is nan" in failed[0]["error"]
    assert not paths.is_done(0, "train", "bo")
    assert not (paths.adapter(0, "bo") / "adapter_model.safetensors").exists()
    # nothing of the diverged step was kept: no checkpoint at all (the first step diverged)
    assert not list(paths.train_dir(0, "bo").glob("checkpoint-*"))


def test_the_other_members_training_is_kept(diverged_run):
    _, paths, _ = diverged_run
    for name in ("ada", "cy"):
        assert paths.is_done(0, "train", name)
        summary = json.loads(paths.marker(0, "train", name).read_text())
        assert summary["steps"] == 2
        assert (paths.adapter(0, name) / "adapter_model.safetensors").exists()
        # its checkpoints served a resume until the adapter was final; then they were deleted
        # (train.keep_checkpoints false), the diverged member's are not there to delete
        assert not list(paths.train_dir(0, name).glob("checkpoint-*"))
