"""Do LoRA updates at the paper's learning rate survive bf16?

    .venv/bin/python bench/bench_bf16_lora.py [--steps 2]

configs/paper-qwen7b.yaml trains at lr 1e-6 in bf16. bf16 keeps 8 bits of mantissa: an update of
1e-6 to a LoRA A element of magnitude ~0.01 is 1e-4 of it, below bf16's resolution (2^-8 = 0.004), so a
copy of the weights held in bf16 rounds it away. B starts at 0, where every update shows. This runs
`--steps` DPO steps of the tiny model (real TRL steps, batch 4, lr 1e-6, constant schedule, LoRA r=64
on q/k/v/o as the preset) for each way the adapter can be held, and counts the LoRA elements whose
value after the steps differs from before:

- fp32 adapter, bf16 base: PEFT casts a new or loaded adapter to fp32 (what the train stage does
  without DeepSpeed);
- bf16 adapter: the adapter itself in bf16, no fp32 copy anywhere;
- DeepSpeed ZeRO-2 in bf16, one rank: the engine casts the model (adapter included) to bf16 and keeps
  fp32 master weights in the optimizer; read as the model holds it (what saving the model wrote) and
  as the optimizer's fp32 copy (what the train stage saves: lora.save_trained_adapter).

bf16 on this CPU is slow: each step takes seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
MODEL = ROOT / ".cache" / "models" / "smollm2-135m-instruct"


def pairs(n: int) -> list[dict]:
    from sparta_hpc.inputs.instructions import demo_instructions

    rows = []
    for i, ins in enumerate(demo_instructions()[:n]):
        rows.append({"prompt": [{"role": "user", "content": ins.text}],
                     "chosen": [{"role": "assistant", "content": f"Here is a careful answer, number {i}."}],
                     "rejected": [{"role": "assistant", "content": "No."}]})
    return rows


def lora_params(model) -> dict:
    return {n: p for n, p in model.named_parameters() if "lora_" in n and ".default." in n}


def run(mode: str, steps: int, rows: list[dict]) -> tuple[dict, dict, dict | None]:
    """({name: value before}, {name: value the model holds after}, {name: the optimizer's fp32 copy after},
    or None without DeepSpeed) of every LoRA matrix, in fp32."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(0)
    deepspeed = mode.startswith("deepspeed")
    if deepspeed:  # a world of one, as the train stage sets up for a single DeepSpeed process
        from sparta_hpc.rundir.files import free_port

        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(free_port()), DS_ACCELERATOR="cpu")
    out = tempfile.mkdtemp(prefix="bf16-lora-")
    args = DPOConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=4, learning_rate=1e-6,
                     lr_scheduler_type="constant", warmup_steps=0, bf16=True, use_cpu=True, report_to=[],
                     save_strategy="no", logging_steps=steps, max_length=64, disable_tqdm=True,
                     deepspeed=str(ROOT / "configs/deepspeed/zero2.json") if deepspeed else None)
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.bfloat16)
    model = get_peft_model(model, LoraConfig(r=64, lora_alpha=128, lora_dropout=0.0, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    if mode == "bf16 adapter":
        for p in lora_params(model).values():
            p.data = p.data.to(torch.bfloat16)
    before = {n: p.detach().float().clone() for n, p in lora_params(model).items()}
    trainer = DPOTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=Dataset.from_list(rows))
    trainer.train()
    after = {n: p.detach().float().cpu() for n, p in lora_params(trainer.model).items()}
    master = None
    if deepspeed:
        from deepspeed.utils import safe_get_full_fp32_param

        master = {n: safe_get_full_fp32_param(p).float().cpu() for n, p in lora_params(trainer.model).items()}
    return before, after, master


def share_changed(before: dict, after: dict, kind: str) -> tuple[int, int]:
    names = [n for n in before if f"lora_{kind}." in n]
    changed = sum(int((before[n] != after[n]).sum()) for n in names)
    return changed, sum(before[n].numel() for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # 2 steps show it (bf16 DPO on this CPU takes ~100 s a step); --steps 16 is the preset's iteration
    parser.add_argument("--steps", type=int, default=2, help="DPO steps")
    args = parser.parse_args()
    from record import recorded

    modes = ["fp32 adapter, bf16 base", "bf16 adapter", "deepspeed zero-2, as the model holds it",
             "deepspeed zero-2, the optimizer's fp32 copy"]
    rows = pairs(4 * args.steps)
    with recorded("bench_bf16_lora"):
        print(f"{args.steps} DPO steps, batch 4, lr 1e-6 (constant), bf16, LoRA r=64 on q/k/v/o, "
              f"SmolLM2-135M-Instruct\n")
        print(f"{'how the adapter is held':45s} {'A changed':>16s} {'B changed':>16s}")
        results = {}
        for mode in modes[:2]:
            results[mode] = run(mode, args.steps, rows)[:2]
        # the engine's model and its optimizer after the same run: one DeepSpeed run read both ways
        before, model, master = run("deepspeed", args.steps, rows)
        results[modes[2]], results[modes[3]] = (before, model), (before, master)
        for mode in modes:
            before, after = results[mode]
            cells = []
            for kind in ("A", "B"):
                changed, total = share_changed(before, after, kind)
                cells.append(f"{changed / total:7.1%} of {total / 1e6:.2f}M")
            print(f"{mode:45s} {cells[0]:>16s} {cells[1]:>16s}")


if __name__ == "__main__":
    main()
