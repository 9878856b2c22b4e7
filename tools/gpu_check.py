"""One command for your first GPU node (`make gpu-check`): does sparta_hpc's GPU path work here?

    .venv/bin/python tools/gpu_check.py [--vllm-python .venv-vllm/bin/python] [--out DIR]

Refuses to start without CUDA. About 5-8 minutes on one GPU, on the tiny tribe's SmolLM2-135M (the
code path of a 7B tribe, at a size that starts fast), then a table:

  local task          a task started by the local executor sees the GPU the config gives it
  DPO ZeRO-2          a DPO step through the train stage: the paper preset's LoRA (r=64, alpha 128 on
                      q/k/v/o), gradient checkpointing, bf16, ZeRO-2 over NCCL: tokens/s, the saved
                      adapter's dtype, the share of its elements the step changed
  ZeRO-3 save         a one-rank ZeRO-3 member's saved adapter: no empty tensor
  vLLM vs HF          one vLLM engine (bf16) serving an r=64 adapter, an r=8 adapter and a bare member,
                      against the HF backend (bf16): the same greedy answers, tokens/s of each
  judge on vLLM       expected-score log-probs from vLLM vs HF's (largest difference)
  adapter in vLLM     the DPO adapter served by vLLM

Each row says what it measured and whether it passed; the exit status is 1 if any failed. The vLLM
rows run in --vllm-python (vLLM pins its own torch: a venv of its own, docs/vllm.md); without one
they say so and the rest still runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
MODEL = ROOT / ".cache" / "models" / "smollm2-135m-instruct"
PROMPTS = [f"Explain {topic} in two sentences." for topic in (
    "a hash table", "photosynthesis", "the Doppler effect", "compound interest", "a binary search",
    "why the sky is blue", "how vaccines work", "the water cycle")]
JUDGE = [[{"role": "user", "content": f"Rate this answer from 1 to 10.\nQuestion: {q}\nAnswer: It depends."}]
         for q in PROMPTS[:4]]
CANDIDATES = [f"{s}}}" for s in range(1, 11)]
GREEDY = {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 64, "batch_size": 8, "seed": 0}


def conversations() -> list[list[dict]]:
    return [[{"role": "user", "content": p}] for p in PROMPTS]


def local_task_sees_the_gpu(folder: Path) -> dict:
    """A local executor's task given one GPU the way the launcher gives it (launch.gpu_setup)."""
    import submitit

    from sparta_hpc.backends.devices import GpuPool, visible_gpus
    from sparta_hpc.launch import gpu_setup

    ids = GpuPool(visible_gpus()).take(1)
    executor = submitit.LocalExecutor(folder=folder / "local")
    executor.update_parameters(timeout_min=5, setup=gpu_setup(ids))
    seen = executor.submit(probe_gpu).result()
    return {"ok": seen["cuda"] and seen["visible"] == ",".join(ids), "given": ",".join(ids), **seen}


def probe_gpu() -> dict:
    import torch

    return {"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "cuda": torch.cuda.is_available(),
            "name": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def answers_of(group, members) -> dict:
    """Greedy answers, generated tokens/s and judge log-probs of each member, from a model group."""
    out = {}
    for member in members:
        start = time.time()
        answers = group.generate(member, conversations(), **GREEDY)
        tokens = sum(a.n_tokens for a in answers)
        out[member] = {"texts": [a.text for a in answers], "tokens_per_s": tokens / (time.time() - start),
                       "scores": group.score_logprobs(member, JUDGE, '{"score": ', CANDIDATES, 4)}
    return out


def vllm_part(request: dict) -> dict:
    """In the vLLM venv: one engine for every adapter (and the bare base)."""
    from sparta_hpc.backends.vllm import VLLMGroup
    from sparta_hpc.config.schema import VLLMConfig

    group = VLLMGroup(str(MODEL), request["adapters"], dtype="bfloat16", cache_dir=Path(request["cache"]), seed=0,
                      engine=VLLMConfig(max_model_len=1024, gpu_memory_utilization=0.5))
    return answers_of(group, request["adapters"])


def train_member(folder: Path, name: str, deepspeed: str) -> dict:
    """One member's DPO through the train stage (one rank, NCCL, bf16, gradient checkpointing, the paper
    preset's LoRA shape): its summary, the saved adapter's dtypes and the share of elements that changed."""
    from safetensors.numpy import load_file

    from sparta_hpc.config.schema import load_config
    from sparta_hpc.rundir.paths import RunPaths
    from sparta_hpc.stages import train
    from sparta_hpc.tasks import distributed_setup

    paths = RunPaths(folder / f"run-{name}")
    rows = [{"prompt": [{"role": "user", "content": p}],
             "chosen": [{"role": "assistant", "content": "A clear, correct answer in two sentences."}],
             "rejected": [{"role": "assistant", "content": "No idea."}]} for p in PROMPTS]
    paths.pairs(0).parent.mkdir(parents=True, exist_ok=True)
    paths.pairs(0).write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(ROOT / "configs" / "tiny.yaml", [
        f"run.dir={paths.root}", f"tribe.members.concise.model={MODEL}", f"tribe.members.concise.deepspeed={deepspeed}",
        "train.bf16=true", "train.gradient_checkpointing=true", "train.lora_r=64", "train.lora_alpha=128",
        "train.learning_rate=1e-5", "train.max_steps=2", "train.batch_size=4", "train.save_steps=100",
        "tracking.report_to=none"])
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        os.environ.pop(key, None)
    distributed_setup(single_process_world=True)
    summary = train.train_member(cfg, paths, 0, 0)
    after = load_file(paths.adapter(0, "concise") / "adapter_model.safetensors")
    before = load_file(paths.initial_adapter(0, "concise") / "adapter_model.safetensors")
    changed = sum(int((after[k] != before[k]).sum()) for k in after) / sum(v.size for v in after.values())
    return {"summary": summary, "dtypes": sorted({str(v.dtype) for v in after.values()}), "changed": changed,
            "empty": sum(v.size == 0 for v in after.values()), "tensors": len(after),
            "adapter": str(paths.adapter(0, "concise"))}


def in_vllm_python(python: str, request: dict, folder: Path) -> dict | None:
    """vllm_part in the vLLM venv's interpreter (None: it could not run there; its error is printed)."""
    req = folder / "vllm-request.json"
    req.write_text(json.dumps(request))
    try:
        proc = subprocess.run([*python.split(), __file__, "--vllm-part", str(req)], capture_output=True, text=True,
                              timeout=600, cwd=ROOT)
    except OSError as err:
        print(f"gpu-check: {python}: {err}", file=sys.stderr)
        return None
    if proc.returncode:
        print(proc.stderr[-3000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm-python", default=str(ROOT / ".venv-vllm" / "bin" / "python"))
    parser.add_argument("--out", type=Path, help="keep the work folder there (default: a temporary one)")
    parser.add_argument("--vllm-part", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.vllm_part:  # the vLLM venv's side
        print(json.dumps(vllm_part(json.loads(args.vllm_part.read_text()))))
        return 0
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU here (torch.cuda.is_available() is False); run it on a GPU node, "
              "e.g. srun --gpus=1 --pty make gpu-check", file=sys.stderr)
        return 2
    folder = args.out or Path(tempfile.mkdtemp(prefix="sparta-gpu-check-"))
    folder.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "tools"))
    from random_adapter import random_adapter

    from sparta_hpc.backends.hf import HFGroup

    rows: list[tuple[str, bool, str]] = []
    start = time.time()
    local = local_task_sees_the_gpu(folder)
    rows.append(("local task", local["ok"], f"given GPU {local['given']}: saw CUDA_VISIBLE_DEVICES="
                 f"{local['visible']}, {local['name']}"))
    dpo = train_member(folder, "zero2", str(ROOT / "configs/deepspeed/zero2.json"))
    s = dpo["summary"]
    rows.append(("DPO ZeRO-2", s["dist_backend"] == "nccl" and s["zero_stage"] == 2 and dpo["changed"] > 0.9
                 and dpo["dtypes"] == ["float32"],
                 f"{s['tokens_per_second_per_rank']} tok/s, {s['dist_backend']}, ZeRO-{s['zero_stage']}, bf16, "
                 f"saved {'/'.join(dpo['dtypes'])}, {dpo['changed']:.1%} of the adapter's elements changed"))
    z3 = train_member(folder, "zero3", str(ROOT / "configs/deepspeed/zero3.json"))
    rows.append(("ZeRO-3 save", z3["empty"] == 0 and z3["tensors"] > 0,
                 f"{z3['tensors']} tensors, {z3['empty']} empty; held per rank {z3['summary']['loaded_per_rank']}"))
    adapters = {"r64": str(random_adapter(MODEL, folder / "r64", seed=1, rank=64)),
                "r8": str(random_adapter(MODEL, folder / "r8", seed=2, rank=8)), "bare": None}
    hf = answers_of(HFGroup(str(MODEL), adapters, dtype="bfloat16"), adapters)
    served = in_vllm_python(args.vllm_python, {"adapters": {**adapters, "dpo": dpo["adapter"]},
                                               "cache": str(folder / "vllm-cache")}, folder)
    if served is None:
        rows.append(("vLLM", False, f"{args.vllm_python} could not run the engine (its error is above)"))
    else:
        same = {m: served[m]["texts"] == hf[m]["texts"] for m in hf}
        speed = ", ".join(f"{m} {served[m]['tokens_per_s']:.0f} vs {hf[m]['tokens_per_s']:.0f}" for m in hf)
        rows.append(("vLLM vs HF", all(same.values()), f"same greedy answers {same}; tok/s vLLM vs HF: {speed}"))
        diff = max(abs(served[m]["scores"][i][c] - hf[m]["scores"][i][c]) for m in hf
                   for i in range(len(JUDGE)) for c in CANDIDATES)
        rows.append(("judge on vLLM", diff < 0.1, f"largest |log-prob vLLM - HF| over 1..10: {diff:.3f} (bf16)"))
        rows.append(("adapter in vLLM", bool(served["dpo"]["texts"][0]),
                     f"the DPO adapter served: {served['dpo']['texts'][0][:60]!r}"))
    print(f"\ngpu-check on {torch.cuda.get_device_name()} ({time.time() - start:.0f} s), work folder {folder}")
    for name, ok, what in rows:
        print(f"  {'ok  ' if ok else 'FAIL'}  {name:16s} {what}")
    return 0 if all(ok for _, ok, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
