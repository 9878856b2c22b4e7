"""A LoRA adapter with random A and B for SmolLM2-sized test models.

A freshly initialised adapter (B = 0) changes nothing and a few CPU DPO steps
barely move it; the vLLM tests and benchmark need adapters whose effect is
visible, so that serving the wrong one (or none) shows.
"""

from __future__ import annotations

from pathlib import Path


def random_adapter(model: Path, out: Path, seed: int, rank: int = 8) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if not (out / "adapter_config.json").exists():
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(model)
        lora = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                          init_lora_weights=False, task_type="CAUSAL_LM")
        get_peft_model(base, lora).save_pretrained(out)
    return out
