"""The initial tribe on CPU: configs/tiny-sft.yaml's experts SFT'd by TRL's SFTTrainer through the
real driver (`sparta-hpc init-tribe`, local jobs), the driver SIGKILLed while the first expert waits
right after a checkpoint (tests/gates.py: certainly between two checkpoints, whatever the machine's
speed), and resumed.

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

from sparta_hpc.rundir.paths import INITIAL, RunPaths

from .conftest import ROOT
from .gates import Gates

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
    """init-tribe killed while the first expert waits right after its checkpoint at step 2 (every expert
    holds there: tests/gates.py), then run again to the end."""
    folder = tmp_path_factory.mktemp("tribe")
    paths, gates = RunPaths(folder / "run"), Gates(folder / "gates")
    gates.hold("saved-2")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "sitecustomize"), **gates.env())
    env.pop("PYTHONSAFEPATH", None)
    start = time.time()
    proc = subprocess.Popen(init_tribe(paths.root), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    while not any(w["who"] == "rank0" for w in gates.waiting("saved-2")
                  if (paths.sft_dir(MEMBERS[0]) / "checkpoint-2" / "trainer_state.json").exists()):
        assert proc.poll() is None, f"init-tribe ended before the kill point: {proc.stderr.read()[-3000:]}"
        assert time.time() - start < 900, "timed out waiting for the first SFT checkpoint"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 60  # the local tasks notice their driver is gone within a second
    while any(pid_alive(w["pid"]) for w in gates.waiting("saved-2")):
        assert time.time() < deadline, "a task outlived its driver"
        time.sleep(0.2)
    assert not paths.is_done(INITIAL, "sft", MEMBERS[0])
    gates.open("saved-2")
    done = subprocess.run(init_tribe(paths.root), cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"init-tribe with one kill: {time.time() - start:.0f} s")
    print(done.stdout)
    return paths, done.stdout


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


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
