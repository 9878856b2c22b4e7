"""What the two LoRA training stages share (sft: the initial experts; train: DPO each iteration).

Loading a member's weights as a trainable PeftModel (its adapter, or a fresh LoRA saved for
resumes; QLoRA's 4-bit base), saving only the trained adapter atomically, finding the last
complete checkpoint, the TrainingArguments fields both TRL configs take (schedule, precision,
checkpoints, DeepSpeed, CPU-only nodes), and the summary a job writes into its marker.
Heavy imports (torch, transformers, peft) stay inside the functions.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..config.schema import Config
from ..errors import NonFiniteLoss
from ..rundir.files import disk_errors
from .common import is_main_rank


def prune_checkpoints(folder: Path) -> int:
    """Delete a finished job's checkpoints (train.keep_checkpoints false); returns how many. Called once
    the member's adapter and marker are written: a resume never needs them after that."""
    points = list(folder.glob("checkpoint-*"))
    for p in points:
        shutil.rmtree(p, ignore_errors=True)
    return len(points)


def last_checkpoint(folder: Path) -> str | None:
    points = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    # a checkpoint counts only once the trainer state (written last) exists
    points = [p for p in points if (p / "trainer_state.json").exists()]
    return str(points[-1]) if points else None


def load_policy(cfg: Config, model_path: str, adapter: str | None, initial: Path):
    """(model, tokenizer): the member's weights as a trainable PeftModel; a member without an
    adapter gets a fresh LoRA (train.lora_*; B = 0, so it starts as exactly the base model),
    saved to `initial` so that a resumed job starts from the same one."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tc, trust = cfg.train, cfg.trusts_remote_code(model_path)  # off unless the member sets it
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if tc.bf16 else torch.float32
    if tc.quantization == "4bit":
        model = load_4bit(model_path, dtype, tc.gradient_checkpointing, trust)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, trust_remote_code=trust)
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


def load_4bit(model_path: str, dtype, gradient_checkpointing: bool, trust_remote_code: bool = False):
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
                                                 device_map={"": rank}, trust_remote_code=trust_remote_code)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)


def save_trained_adapter(model, out: Path, deepspeed: bool = False) -> None:
    """Save the trained adapter; every rank of the job calls this.

    Under DeepSpeed the adapter written is the optimizer's fp32 master copy of each LoRA matrix
    (`safe_get_full_fp32_param`), not the model's parameters: under ZeRO-3 rank 0's own view of a
    partitioned matrix is empty (shape (0,)), and PEFT would save it so with a warning; in bf16 the
    model holds a bf16 copy, which rounds an update of lr 1e-6 away from most of the LoRA A
    matrices' elements (bench/bench_bf16_lora.py). Assembling a ZeRO-3 matrix is a collective, hence
    every rank; rank 0 writes.
    """
    state = None
    if deepspeed:
        from deepspeed.utils import safe_get_full_fp32_param

        state = {}
        for name, p in model.named_parameters():
            if "lora_" in name and ".default." in name:
                full = safe_get_full_fp32_param(p)  # None: not a trained parameter of the engine
                state[name] = (full if full is not None else p.detach()).float().cpu()
    if is_main_rank():
        save_adapter(model, out, state)


def save_adapter(model, out: Path, state: dict | None = None) -> None:
    """Only the trained adapter ("default"), not TRL's frozen "ref" copy; atomically (a full disk
    names the folder and leaves no half-written one). `state`: its tensors, where the model's own are
    not the ones to save (save_trained_adapter)."""
    tmp = out.with_name(out.name + ".tmp")
    try:
        with disk_errors(out):
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            model.save_pretrained(tmp, selected_adapters=["default"], **({"state_dict": state} if state else {}))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def deepspeed_config(cfg: Config, member: int | None) -> str | None:
    """A member's own DeepSpeed config (a mixed tribe's largest model: ZeRO-3), else train.deepspeed."""
    own = cfg.members[member].deepspeed if member is not None else None
    return own or cfg.train.deepspeed


def training_arguments(cfg: Config, schedule, output_dir: Path, seed: int, member: int | None = None) -> dict:
    """The TrainingArguments fields DPOConfig and SFTConfig both take.

    `schedule`: cfg.train (DPO) or cfg.sft (SFT), whose fields of the same names give the
    optimisation schedule, batch, length and checkpoint interval; precision, gradient
    checkpointing and DeepSpeed always come from cfg.train (one setting per cluster).
    """
    import torch

    tc = cfg.train
    return dict(
        output_dir=str(output_dir), learning_rate=schedule.learning_rate, lr_scheduler_type=schedule.lr_scheduler,
        # transformers 5 dropped warmup_ratio: a float < 1 in warmup_steps is a share of the steps
        warmup_steps=schedule.warmup_ratio, num_train_epochs=schedule.epochs, max_steps=schedule.max_steps,
        per_device_train_batch_size=schedule.batch_size,
        gradient_accumulation_steps=schedule.gradient_accumulation_steps, max_length=schedule.max_length,
        bf16=tc.bf16, gradient_checkpointing=tc.gradient_checkpointing,
        # non-reentrant: the reentrant variant gets no gradients through frozen PEFT inputs
        gradient_checkpointing_kwargs={"use_reentrant": False} if tc.gradient_checkpointing else None,
        save_strategy="steps", save_steps=schedule.save_steps, save_total_limit=2, logging_steps=1,
        # Trainer's default logs a NaN/inf step loss as the window's mean (0.0 on the first step): the
        # finite-loss guard and the log history must see the real value
        logging_nan_inf_filter=False,
        report_to=[], seed=seed, data_seed=seed, deepspeed=deepspeed_config(cfg, member), disable_tqdm=True,
        dataloader_num_workers=0,
        # On CPU-only nodes accelerate sees a multi-process job only with use_cpu
        # (then gloo); otherwise it finds no GPU backend and runs every rank alone.
        use_cpu=not torch.cuda.is_available(),
    )


def finite_loss_guard(what: str):
    """A TrainerCallback that stops training at the first logged loss that is NaN or infinite.

    Its on_log runs before the step's checkpoint is saved, so no weights of a diverged step are
    kept: the last checkpoint and every other member's work stay as they were. `what` names the job
    ("member ada, iteration 3 (DPO)") in the error.
    """
    import math

    from transformers import TrainerCallback

    class FiniteLoss(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            bad = {k: v for k, v in (logs or {}).items()
                   if k in ("loss", "grad_norm") and v is not None and not math.isfinite(v)}
            if bad:
                found = ", ".join(f"{k} is {v}" for k, v in bad.items())
                raise NonFiniteLoss(
                    f"{what}: the training {found} at step {state.global_step}; training stops (nothing of "
                    "this step is saved; the other members' work is kept). Look at what it starts from (an adapter "
                    "with NaN/inf weights?) and the learning rate, then run the same command again")

    return FiniteLoss()


def memory_at_load(model) -> dict:
    """What this rank holds of the model once it is loaded: its parameters' elements (under ZeRO-3
    its own slice of each, `ds_tensor`; a whole copy otherwise) and its peak RSS so far, in MB."""
    import resource

    held = sum(p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel() for p in model.parameters())
    return {"params_held": int(held), "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def per_rank(value):
    """[value of rank 0, rank 1, ...] in a multi-rank job (every rank calls this); [value] alone."""
    import torch

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [value]
    out = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, value)
    return out


def train_summary(cfg: Config, trainer, result, resume: str | None, loaded: dict | None = None) -> dict:
    """What a finished training job reports (its marker, events.jsonl): steps, losses, speed, setting,
    and per rank what it held of the model after loading it (`loaded`, memory_at_load) and its peak
    RSS. Every rank calls it (it gathers from all of them); rank 0 writes it."""
    import resource

    import torch

    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    zero_stage = None
    if trainer.is_deepspeed_enabled:
        zero_stage = trainer.accelerator.state.deepspeed_plugin.deepspeed_config["zero_optimization"]["stage"]
    # TRL logs the cumulative number of tokens this rank processed
    tokens = max((h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h), default=None)
    seconds = result.metrics.get("train_runtime")
    return {"steps": trainer.state.global_step, "resumed_from": resume, "zero_stage": zero_stage,
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "train_seconds": seconds, "tokens_per_rank": tokens,
            "tokens_per_second_per_rank": round(tokens / seconds, 1) if tokens and seconds and not resume else None,
            "device": "cuda" if torch.cuda.is_available() else "cpu", "bf16": cfg.train.bf16,
            "dist_backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
            "quantization": cfg.train.quantization,
            "loaded_per_rank": per_rank(loaded),
            "peak_rss_mb_per_rank": per_rank(round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))}
