"""The initial tribe on CPU: configs/tiny-sft.yaml's experts SFT'd by TRL's SFTTrainer through the
real driver (`sparta-hpc init-tribe`, local jobs), one SIGKILLed partway and resumed.

Slow (minutes): 4 real SmolLM2-135M members, 4 SFT steps each.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from sparta_hpc.paths import INITIAL, RunPaths

from .conftest import ROOT

pytestmark = pytest.mark.slow

MEMBERS = ["arithmetic", "units", "open", "multiply"]
STEPS = 4
OVERRIDES = [f"sft.max_steps={STEPS}", "sft.save_steps=2", "sft.max_length=96"]


def init_tribe(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "sparta_hpc.cli", "init-tribe", "--config", "configs/tiny-sft.yaml",
            f"run.dir={run_dir}", *OVERRIDES]


def weights(folder: Path) -> dict[str, np.ndarray]:
    return load_file(folder / "adapter_model.safetensors")


@pytest.fixture(scope="session")
def tribe(tiny_model, tmp_path_factory):
    """init-tribe killed once the first expert has a checkpoint, then run again to the end."""
    paths = RunPaths(tmp_path_factory.mktemp("tribe") / "run")
    start = time.time()
    checkpoint = paths.sft_dir(MEMBERS[0]) / "checkpoint-2" / "trainer_state.json"
    proc = subprocess.Popen(init_tribe(paths.root), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    while not checkpoint.exists():
        assert proc.poll() is None, f"init-tribe ended before the kill point: {proc.stderr.read()[-3000:]}"
        assert time.time() - start < 900, "timed out waiting for the first SFT checkpoint"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # the local task notices its driver is gone within a second
    assert not paths.is_done(INITIAL, "sft", MEMBERS[0])
    done = subprocess.run(init_tribe(paths.root), cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"init-tribe with one kill: {time.time() - start:.0f} s")
    print(done.stdout)
    return paths, done.stdout


def test_every_expert_was_trained_by_sft_steps_and_init_tribe_names_its_adapter(tribe):
    paths, stdout = tribe
    assert paths.is_done(INITIAL, "sft")
    for name in MEMBERS:
        summary = json.loads(paths.marker(INITIAL, "sft", name).read_text())
        assert summary["steps"] == STEPS and summary["examples"] > 0 and summary["device"] == "cpu"
        assert summary["last_loss"] < summary["first_loss"], (name, summary)
        before, after = weights(paths.sft_initial_adapter(name)), weights(paths.sft_adapter(name))
        assert before.keys() == after.keys() and before
        changed = [k for k in before if not np.array_equal(before[k], after[k])]
        assert len(changed) == len(before), f"{name}: only {len(changed)} of {len(before)} tensors changed"
        assert str(paths.sft_adapter(name)) in stdout
    # the stage stopped there: no iteration started
    assert not paths.plan(0).exists()


def test_the_killed_expert_resumed_from_its_checkpoint(tribe):
    paths, _ = tribe
    summary = json.loads(paths.marker(INITIAL, "sft", MEMBERS[0]).read_text())
    assert summary["resumed_from"] and summary["resumed_from"].endswith("checkpoint-2")
    events = [json.loads(line) for line in paths.events.read_text().splitlines()]
    sft_submits = [e["task"] for e in events if e["event"] == "task_submit" and e["stage"] == "sft"]
    assert sft_submits.count(0) == 2 and all(sft_submits.count(t) == 1 for t in range(1, len(MEMBERS)))


def test_experts_differ_from_one_another_in_weights_and_behaviour(tribe):
    """Each expert's adapter is its own, and each makes its own slice's answers more likely."""
    from sparta_hpc.backends.hf import HFGroup

    paths, _ = tribe
    adapters = {name: weights(paths.sft_adapter(name)) for name in MEMBERS}
    for i, a in enumerate(MEMBERS):
        for b in MEMBERS[i + 1:]:
            assert any(not np.allclose(adapters[a][k], adapters[b][k]) for k in adapters[a]), (a, b)
    group = HFGroup(str(ROOT / ".cache/models/smollm2-135m-instruct"),
                    {"base": None, **{name: str(paths.sft_adapter(name)) for name in ("arithmetic", "units")}})
    conv = [[{"role": "user", "content": "What is 7 + 5? Answer with the number."}]]
    # the start of each expert's trained answer style (arithmetic: "7 + 5 = 12.", units: "There are ...")
    styles = ["7 + 5 = 12.", "There are 12"]
    scores = {name: group.score_logprobs(name, conv, "", styles, 1)[0] for name in ("base", "arithmetic", "units")}
    print(scores)
    assert scores["arithmetic"][styles[0]] > scores["base"][styles[0]]
    margin = {name: s[styles[0]] - s[styles[1]] for name, s in scores.items()}
    assert margin["arithmetic"] > margin["units"]
