"""SFT: one member's expert adapter, a LoRA trained on its slice of the SFT data (the initial tribe).

    python -m sparta_hpc.stages.sft RUN_DIR --iteration -1 --task K

Runs once per run, before iteration 0, when sft.data is set: one job-array element per member.
The member starts from its base model with a fresh LoRA (train.lora_*; saved as
RUN/sft/<member>/initial_adapter so a resumed job starts from the same one), or, when the
config gives it an `adapter`, continues training that adapter. Its examples (sft_data.py: the
slice, a seeded sample of sft.max_examples) are TRL conversational prompt-completion rows, so
TRL's SFTTrainer renders them with the model's own chat template and computes the loss on the
answer only. The result goes to RUN/sft/<member>/adapter/ (atomically), then the marker
RUN/sft/done/sft.<member> with a JSON summary; iteration 0 serves that adapter.

Checkpoints go to RUN/sft/<member>/ every sft.save_steps steps; a rerun of a killed or
preempted job resumes from the last complete one. Multi-rank jobs (DeepSpeed via
train.deepspeed) work as in train: every rank runs this, rank 0 writes the results.
"""

from __future__ import annotations

import json
import logging
import os
import time

from ..config.schema import Config
from ..inputs.sft_data import member_examples, member_source
from ..rundir.files import mark_done
from ..rundir.manifest import record_files
from ..rundir.paths import INITIAL, RunPaths, unit_name
from .common import is_main_rank, set_threads, stage_main, task_seed
from .lora import (
    finite_loss_guard,
    last_checkpoint,
    load_policy,
    memory_at_load,
    prune_checkpoints,
    save_trained_adapter,
    train_summary,
    training_arguments,
)

log = logging.getLogger(__name__)


def fit_examples(examples: list[dict], tokenizer, max_length: int) -> tuple[list[dict], int]:
    """The examples whose prompt leaves room for an answer within max_length tokens, and how
    many were dropped: truncation keeps the start, so such a row would train on nothing."""
    kept = []
    for e in examples:
        prompt = tokenizer.apply_chat_template(e["prompt"], add_generation_prompt=True, tokenize=True)
        if len(prompt["input_ids"]) < max_length:
            kept.append(e)
    return kept, len(examples) - len(kept)


def sft_member(cfg: Config, paths: RunPaths, member: int) -> dict:
    """Train member `member`'s expert adapter; returns the summary its marker holds."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    m, sc = cfg.members[member], cfg.sft
    work = paths.sft_dir(m.name)
    seed = task_seed(cfg.tribe.seed, "sft", m.name)
    torch.manual_seed(seed)  # the fresh LoRA's A matrices: the same on every rank
    # completion_only_loss: the loss on the answer, not on the prompt (TRL's default for this format).
    # Made before the model is loaded: under ZeRO-3 it switches on zero.Init (train.py says why)
    args = TRLSFTConfig(**training_arguments(cfg, sc, work, seed, member), completion_only_loss=True)
    model, tokenizer = load_policy(cfg, m.model, m.adapter, paths.sft_initial_adapter(m.name))
    loaded = memory_at_load(model)
    examples, slice_rows = member_examples(cfg, member, seed)
    examples, too_long = fit_examples(examples, tokenizer, sc.max_length)
    if not examples:
        raise RuntimeError(f"sft {m.name}: every example of its slice {member_source(m)!r} has a prompt of "
                           f"sft.max_length={sc.max_length} tokens or more; raise sft.max_length")
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=Dataset.from_list(examples),
                         callbacks=[finite_loss_guard(f"member {m.name} (SFT)")])
    resume = last_checkpoint(work)
    if resume:
        log.info("%s: resuming SFT from %s", m.name, resume)
    result = trainer.train(resume_from_checkpoint=resume)
    save_trained_adapter(trainer.model, paths.sft_adapter(m.name), trainer.is_deepspeed_enabled)
    return {"source": member_source(m), "slice_rows": slice_rows, "examples": len(examples),
            "too_long": too_long, "started_from": m.adapter, **train_summary(cfg, trainer, result, resume, loaded)}


def run(cfg: Config, paths: RunPaths, iteration: int, task: int) -> None:
    """One member's SFT (`iteration`: INITIAL, the stage runs before iteration 0)."""
    name = cfg.members[task].name
    if paths.is_done(INITIAL, "sft", name):
        log.info("sft %s is already done", name)
        return
    set_threads(cfg)
    start = time.time()
    summary = sft_member(cfg, paths, task)
    summary["seconds"] = round(time.time() - start, 2)
    summary["world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
    if is_main_rank():
        marker = paths.marker(INITIAL, "sft", name)
        record_files(paths, INITIAL, unit_name("sft", name), marker, [paths.sft_adapter(name)])
        mark_done(marker, json.dumps(summary))
        if not cfg.train.keep_checkpoints:  # the adapter is final: its resume points are not needed
            prune_checkpoints(paths.sft_dir(name))
    log.info("sft %s: %s", name, summary)


if __name__ == "__main__":
    stage_main(__doc__, run)
