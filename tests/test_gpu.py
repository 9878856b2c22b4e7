"""The GPU path: HF generation on CUDA, DPO in bf16 with DeepSpeed ZeRO-2 over NCCL.

Skipped without CUDA (the CPU test machine); run on a GPU node with
`pytest -m gpu -s` (the figures are printed). The tiny tribe's model keeps it
short; the code path is the one a 7B tribe takes.
"""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from sparta_hpc.rundir.paths import RunPaths

from .conftest import ROOT

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

PROMPTS = ["Explain what a hash table is.", "Write a haiku about rain.", "Why is the sky blue?",
           "Give three tips for writing clear code."] * 4


def test_hf_generation_on_the_gpu(tiny_model):
    from sparta_hpc.backends.hf import HFGroup

    group = HFGroup(str(tiny_model), {"plain": None}, dtype="bfloat16")
    assert next(group.model.parameters()).device.type == "cuda"
    convs = [[{"role": "user", "content": p}] for p in PROMPTS]
    group.generate("plain", convs[:2], temperature=0.0, top_p=1.0, max_new_tokens=8, batch_size=2, seed=0)  # warm-up
    torch.cuda.synchronize()
    start = time.time()
    outs = group.generate("plain", convs, temperature=0.7, top_p=0.9, max_new_tokens=128, batch_size=16, seed=0)
    torch.cuda.synchronize()
    seconds = time.time() - start
    tokens = sum(o.n_tokens for o in outs)
    assert all(o.text.strip() for o in outs) and tokens > len(outs)
    print(f"\nHF generate on {torch.cuda.get_device_name()}: {tokens} tokens in {seconds:.2f} s = "
          f"{tokens / seconds:.0f} tok/s (batch 16, bf16)")


def test_dpo_step_bf16_zero2_nccl(tiny_model, tmp_path):
    """One iteration of the tiny tribe on the GPU through the driver (local
    executor): every member's DPO is a 1-rank DeepSpeed ZeRO-2 job in bf16 over
    NCCL, and every adapter's weights change."""
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "sparta_hpc.driver", "--config", "configs/tiny.yaml",
                           f"run.dir={run_dir}", "tribe.iterations=1", "tribe.duels_per_iteration=8",
                           "generate.dtype=bfloat16", "train.bf16=true", "train.max_steps=4",
                           "train.deepspeed=configs/deepspeed/zero2.json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    paths = RunPaths(run_dir)
    trained = []
    for name in ("concise", "stepwise", "friendly", "plain"):
        summary = json.loads(paths.marker(0, "train", name).read_text())
        if not summary["pairs"]:
            continue
        trained.append(name)
        assert summary["device"] == "cuda" and summary["bf16"] and summary["zero_stage"] == 2
        assert summary["dist_backend"] == "nccl"
        before = load_file(paths.initial_adapter(0, name) / "adapter_model.safetensors")
        after = load_file(paths.adapter(0, name) / "adapter_model.safetensors")
        assert any(not np.array_equal(before[k], after[k]) for k in before), name
        print(f"\nDPO {name}, bf16 ZeRO-2/NCCL on {torch.cuda.get_device_name()}: {summary['steps']} steps, "
              f"{summary['tokens_per_rank']} tokens in {summary['train_seconds']:.1f} s = "
              f"{summary['tokens_per_second_per_rank']} tok/s")
    assert trained, "no member had preference pairs: nothing was trained on the GPU"
