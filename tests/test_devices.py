"""GPUs on a workstation and in vLLM's engine, checked on a machine without any:

- the GPUs a process may use are read without initializing CUDA (devices.py);
- a real local task carries the GPUs the config gives it, each running task its own (submitit's
  LocalExecutor alone gives every task CUDA_VISIBLE_DEVICES="", so generation and DPO silently ran
  on the CPU of a one-GPU workstation);
- building a vLLM group never asks torch.cuda anything before the engine, and on a GPU node the
  engine's processes are spawned, not forked (a forked worker of a process that touched CUDA
  fails with "Cannot re-initialize CUDA in forked subprocess").
"""

import json
import os
import sys
import types

import pytest
import yaml

from sparta_hpc import driver
from sparta_hpc.backends.devices import GpuPool, visible_gpus
from sparta_hpc.rundir.paths import RunPaths

from .conftest import ROOT


@pytest.mark.parametrize("value, expected", [
    ("0", ["0"]), ("2,3", ["2", "3"]), (" 1 , 0 ", ["1", "0"]), ("GPU-8f3e,GPU-11aa", ["GPU-8f3e", "GPU-11aa"]),
    ("", []), ("-1", []), ("NoDevFiles", []),
])
def test_the_visible_gpus_are_what_cuda_visible_devices_names(value, expected, tmp_path):
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": value}, dev=tmp_path) == expected


def test_without_cuda_visible_devices_the_device_files_are_counted(tmp_path):
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia10"):
        (tmp_path / name).touch()
    assert visible_gpus({}, dev=tmp_path) == ["0", "1", "10"]
    assert visible_gpus({}, dev=tmp_path / "nowhere") == []


def test_a_gpu_pool_gives_each_task_its_own_and_waits_when_none_are_free():
    pool = GpuPool(["3", "5"])
    assert pool.take(1) == ["3"] and pool.take(1) == ["5"] and pool.take(1) is None
    pool.give(["3"])
    assert pool.take(2) is None and pool.take(1) == ["3"]
    assert GpuPool(["0"]).take(4) == ["0"]  # more than there is: every GPU there is
    assert GpuPool([]).take(1) == []  # a machine without GPUs: the task runs on its CPUs


def test_real_local_tasks_get_the_gpus_the_config_gives_them(tmp_path, monkeypatch):
    """The driver was given GPUs 3 and 5 (CUDA_VISIBLE_DEVICES, as a scheduler or a user sets it);
    each generate task asks for 1 and two run at once: each gets its own, judge asks for 2 and so its
    tasks run one after the other with both, gather asks for none."""
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "tribe": {"iterations": 1, "duels_per_iteration": 4,
                  "members": [{"name": n, "model": str(tmp_path / "base")} for n in ("ada", "bo", "cy")]},
        "generate": {"duels_per_shard": 2}, "judge": {"duels_per_shard": 2},
        "cluster": {"executor": "local", "local_parallel": 2, "generate": {"gpus_per_node": 1},
                    "judge": {"gpus_per_node": 2}, "gather": {"gpus_per_node": 0}}}))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setenv("SPARTA_SCRIPTED_MODELS", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "tests" / "sitecustomize"))
    monkeypatch.setenv("PYTHONSAFEPATH", "")
    paths = RunPaths(tmp_path / "run")
    assert driver.main(["--config", str(config), f"run.dir={paths.root}", "--stop-after", "gather"]) == 0
    done = [json.loads(line) for line in paths.events.read_text().splitlines()]
    done = [e for e in done if e["event"] == "task_done"]
    gpus = {stage: sorted(e["gpus"] for e in done if e["stage"] == stage) for stage in ("generate", "judge", "gather")}
    assert gpus == {"generate": ["3", "5"], "judge": ["3,5", "3,5"], "gather": [""]}
    judged = sorted((e["time"] - e["seconds"], e["time"]) for e in done if e["stage"] == "judge")
    assert judged[0][1] <= judged[1][0] + 0.5, "two judge tasks held the same GPUs at once"


class FakeLLM:
    """Stands in for vllm.LLM: records the environment it was built in."""

    built: list[dict] = []

    def __init__(self, **kwargs):
        FakeLLM.built.append({"env": dict(os.environ), "kwargs": kwargs})
        self.model_config = types.SimpleNamespace(max_model_len=kwargs.get("max_model_len"))

    def get_tokenizer(self):
        return None


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM = FakeLLM
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = lambda name, i, path: (name, i, path)
    for name, module in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, module)
    for key in [k for k in os.environ if k.startswith("VLLM_")]:
        monkeypatch.delenv(key)
    FakeLLM.built.clear()
    return FakeLLM


@pytest.mark.parametrize("gpus", ["0,1", ""])
def test_a_vllm_group_never_touches_cuda_and_spawns_its_engine_on_gpus(fake_vllm, monkeypatch, tmp_path, gpus):
    import torch

    from sparta_hpc.backends.vllm import VLLMGroup
    from sparta_hpc.config.schema import VLLMConfig

    def touched(*args, **kwargs):
        raise AssertionError("torch.cuda was asked before the engine was built: its workers could not fork")

    for name in ("is_available", "device_count", "init", "current_device", "get_device_name"):
        monkeypatch.setattr(torch.cuda, name, touched)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", gpus)
    VLLMGroup("/models/base", {"a": None}, dtype="bfloat16", engine=VLLMConfig(), cache_dir=tmp_path, seed=0)
    (built,) = fake_vllm.built
    if gpus:  # a GPU node: spawned engine processes, tensor parallel over every GPU of the task
        assert built["env"]["VLLM_WORKER_MULTIPROC_METHOD"] == "spawn"
        assert built["kwargs"]["tensor_parallel_size"] == 2 and not built["kwargs"]["enforce_eager"]
    else:  # CPUs: vLLM's own default (fork is safe without CUDA, and starts faster)
        assert "VLLM_WORKER_MULTIPROC_METHOD" not in built["env"]
        assert built["kwargs"]["tensor_parallel_size"] == 1 and built["kwargs"]["enforce_eager"]


def test_the_gpu_check_refuses_to_start_without_cuda():
    import subprocess

    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "no CUDA GPU here" in proc.stderr
