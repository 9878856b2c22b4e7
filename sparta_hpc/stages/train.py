"""Train: DPO of one member on all of the iteration's preference pairs (SPEC 1.8).

The member starts from its own weights of iteration t (base + its adapter),
and the same weights, frozen, are the reference: TRL keeps a frozen copy of
the adapter as its "ref" adapter. A member without an adapter gets a fresh
LoRA (B = 0, so base + LoRA is still exactly the member), saved as
train/<member>/initial_adapter. The result, the member's adapter for t+1, is
saved to RUN/iter_t/adapters/<member>/, then the marker is written.

Checkpoints go to RUN/iter_t/train/<member>/ every `train.save_steps` steps;
a rerun of a killed or preempted job resumes from the last one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from ..config import Config
from ..io_utils import mark_done
from ..paths import RunPaths
from .common import is_main_rank, member_adapter, set_threads, stage_main, task_seed, with_system

log = logging.getLogger(__name__)


def training_rows(pairs_path: Path, system_prompt: str | None) -> list[dict]:
    rows = []
    for line in pairs_path.read_text().splitlines():
        row = json.loads(line)
        rows.append({"prompt": with_system(system_prompt, row["prompt"]), "chosen": row["chosen"],
                     "rejected": row["rejected"]})
    return rows


def last_checkpoint(folder: Path) -> str | None:
    points = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    # a checkpoint counts only once the trainer state (written last) exists
    points = [p for p in points if (p / "trainer_state.json").exists()]
    return str(points[-1]) if points else None


def load_policy(cfg: Config, model_path: str, adapter: str | None, initial: Path):
    """(model, tokenizer): the member's weights at iteration t as a trainable PeftModel; a member
    without an adapter gets a fresh LoRA, saved to `initial` so that a resumed job starts from it."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tc = cfg.train
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if tc.bf16 else torch.float32
    if tc.quantization == "4bit":
        model = load_4bit(model_path, dtype, tc.gradient_checkpointing)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    if adapter:
        return PeftModel.from_pretrained(model, adapter, is_trainable=True), tokenizer
    lora = LoraConfig(r=tc.lora_r, lora_alpha=tc.lora_alpha, lora_dropout=tc.lora_dropout,
                      target_modules=list(tc.lora_target_modules), task_type="CAUSAL_LM")
    if (initial / "adapter_config.json").exists():  # a resumed job: the same starting point
        return PeftModel.from_pretrained(model, str(initial), is_trainable=True), tokenizer
    model = get_peft_model(model, lora)  # seeded: every rank builds the same LoRA
    if is_main_rank():
        save_adapter(model, initial)
    return model, tokenizer


def load_4bit(model_path: str, dtype, gradient_checkpointing: bool):
    """QLoRA: the frozen base in 4-bit NF4 on this rank's GPU, LoRA trained in `dtype`."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if not torch.cuda.is_available():
        raise RuntimeError("train.quantization=4bit (QLoRA) needs a CUDA GPU (bitsandbytes); "
                           "this node has none: set train.quantization=none")
    from peft import prepare_model_for_kbit_training

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_storage=dtype)
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    model = AutoModelForCausalLM.from_pretrained(model_path, quantization_config=quant, dtype=dtype,
                                                 device_map={"": rank})
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)


def save_adapter(model, out: Path) -> None:
    """Only the trained adapter ("default"), not TRL's frozen "ref" copy; atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, selected_adapters=["default"])
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def train_member(cfg: Config, paths: RunPaths, iteration: int, member: int) -> dict:
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    m, tc = cfg.members[member], cfg.train
    work = paths.train_dir(iteration, m.name)
    seed = task_seed(cfg.tribe.seed, iteration, "train", m.name)
    torch.manual_seed(seed)  # the fresh LoRA's A matrices
    model, tokenizer = load_policy(cfg, m.model, member_adapter(cfg, paths, iteration, member),
                                   paths.initial_adapter(iteration, m.name))
    rows = training_rows(paths.pairs(iteration), m.system_prompt)
    if not rows:  # nothing to learn: the member stays as it is
        if is_main_rank():
            save_adapter(model, paths.adapter(iteration, m.name))
        return {"pairs": 0, "steps": 0, "loss_type": cfg.loss_type}
    args = DPOConfig(
        output_dir=str(work), beta=tc.beta, loss_type=cfg.loss_type,  # SPPO: "sppo_hard"
        learning_rate=tc.learning_rate, lr_scheduler_type=tc.lr_scheduler,
        warmup_steps=tc.warmup_ratio, num_train_epochs=tc.epochs, max_steps=tc.max_steps,  # float < 1: a ratio
        per_device_train_batch_size=tc.batch_size, gradient_accumulation_steps=tc.gradient_accumulation_steps,
        max_length=tc.max_length, bf16=tc.bf16, gradient_checkpointing=tc.gradient_checkpointing,
        # non-reentrant: the reentrant variant gets no gradients through frozen PEFT inputs
        gradient_checkpointing_kwargs={"use_reentrant": False} if tc.gradient_checkpointing else None,
        precompute_ref_log_probs=tc.precompute_ref_log_probs,
        save_strategy="steps", save_steps=tc.save_steps, save_total_limit=2, logging_steps=1,
        report_to=[], seed=seed, data_seed=seed, deepspeed=tc.deepspeed, disable_tqdm=True,
        dataloader_num_workers=0,
        # On CPU-only nodes accelerate sees a multi-process job only with use_cpu
        # (then gloo); otherwise it finds no GPU backend and runs every rank alone.
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = DPOTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=Dataset.from_list(rows))
    resume = last_checkpoint(work)
    if resume:
        log.info("%s: resuming DPO from %s", m.name, resume)
    result = trainer.train(resume_from_checkpoint=resume)
    if is_main_rank():
        save_adapter(trainer.model, paths.adapter(iteration, m.name))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    zero_stage = None
    if trainer.is_deepspeed_enabled:
        zero_stage = trainer.accelerator.state.deepspeed_plugin.deepspeed_config["zero_optimization"]["stage"]
    # TRL logs the cumulative number of tokens (chosen + rejected) this rank processed
    tokens = max((h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h), default=None)
    seconds = result.metrics.get("train_runtime")
    return {"pairs": len(rows), "steps": trainer.state.global_step, "resumed_from": resume, "zero_stage": zero_stage,
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "train_seconds": seconds, "tokens_per_rank": tokens,
            "tokens_per_second_per_rank": round(tokens / seconds, 1) if tokens and seconds and not resume else None,
            "device": "cuda" if torch.cuda.is_available() else "cpu", "bf16": tc.bf16,
            "dist_backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
            "quantization": tc.quantization, "loss_type": cfg.loss_type}


def run(cfg: Config, paths: RunPaths, iteration: int, task: int) -> None:
    """One member's DPO; in a multi-node job every rank runs this, rank 0 writes the results."""
    name = cfg.members[task].name
    if paths.is_done(iteration, "train", name):
        log.info("train %s (iteration %d) is already done", name, iteration)
        return
    set_threads(cfg)
    start = time.time()
    summary = train_member(cfg, paths, iteration, task)
    summary["seconds"] = time.time() - start
    summary["world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
    if is_main_rank():
        mark_done(paths.marker(iteration, "train", name), json.dumps(summary))
    log.info("train %s (iteration %d): %s", name, iteration, summary)


if __name__ == "__main__":
    stage_main(__doc__, run)
