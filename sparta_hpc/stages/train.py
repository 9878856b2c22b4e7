"""Train: DPO of one member on all of the iteration's preference pairs (SPEC 1.8).

The pairs are RUN/iter_t/pairs.jsonl; SPIN (baseline.spin_previous) also
trains on iteration t-1's, RUN/iter_{t-1}/pairs.jsonl as recorded, those rows
first (training_rows_for). The member starts from its own weights of
iteration t (base + its adapter), and the same weights, frozen, are the
reference: TRL keeps a frozen copy of the adapter as its "ref" adapter. A member without an adapter gets a fresh
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
import time
from pathlib import Path

from ..config.schema import Config
from ..methods import previous_iterations
from ..rundir.files import atomic_write_json, mark_done
from ..rundir.manifest import check_files, record_files
from ..rundir.paths import RunPaths, unit_name
from .common import is_main_rank, member_adapter, set_threads, stage_main, task_seed, with_system

# the LoRA helpers shared with the sft stage (names kept importable from here)
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
from .tracking import trainer_settings

log = logging.getLogger(__name__)


def training_rows(pairs_path: Path, system_prompt: str | None, win_rates: bool = False) -> list[dict]:
    """The pairs as TRL rows; `win_rates`: with SPPO's estimated win rates of the two answers
    (the pairs' score_chosen / score_rejected, methods/rows.py) as chosen_win / rejected_win."""
    rows = []
    for line in pairs_path.read_text().splitlines():
        row = json.loads(line)
        rows.append({"prompt": with_system(system_prompt, row["prompt"]), "chosen": row["chosen"],
                     "rejected": row["rejected"]})
        if win_rates:
            rows[-1].update(chosen_win=float(row["score_chosen"]), rejected_win=float(row["score_rejected"]))
    return rows


def pairs_files(cfg: Config, paths: RunPaths, iteration: int) -> list[Path]:
    """The pairs files iteration t's DPO reads, in the order their rows are concatenated: the earlier
    iterations' (SPIN: t-1, as its dataset_mixer lists SPIN_iter{t-1} before SPIN_iter{t}), then t's."""
    return [paths.pairs(p) for p in previous_iterations(cfg, iteration)] + [paths.pairs(iteration)]


def training_rows_for(cfg: Config, paths: RunPaths, iteration: int, member: int,
                      win_rates: bool = False) -> tuple[list[dict], int]:
    """(the member's training rows of iteration t, how many of them are earlier iterations' pairs).
    A fixed concatenation of recorded files: a resumed job sees the same rows in the same order."""
    files = pairs_files(cfg, paths, iteration)
    prompt = cfg.members[member].system_prompt
    earlier = [row for f in files[:-1] for row in training_rows(f, prompt, win_rates)]
    return earlier + training_rows(files[-1], prompt, win_rates), len(earlier)


def on_disk(dataset, work: Path):
    """The pairs as an Arrow file in the member's work folder, one per rank. TRL caches precomputed
    reference log-probs next to a dataset's files, under a name every rank agrees on, and rank 0 writes
    it; an in-memory dataset's cache goes to a temporary folder of each process instead, where the
    other ranks never find rank 0's file (a 2-rank job failed)."""
    work.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", "0"))
    return dataset.map(lambda row: row, cache_file_name=str(work / f"pairs.rank{rank}.arrow"))


def train_member(cfg: Config, paths: RunPaths, iteration: int, member: int) -> dict:
    import torch
    from datasets import Dataset
    from trl import DPOConfig

    from .dpo_trainer import CountingDPOTrainer
    from .sppo_trainer import SPPOTrainer

    m, tc = cfg.members[member], cfg.train
    work = paths.train_dir(iteration, m.name)
    seed = task_seed(cfg.tribe.seed, iteration, "train", m.name)
    torch.manual_seed(seed)  # the fresh LoRA's A matrices
    settings = training_arguments(cfg, tc, work, seed, member)
    settings.update(trainer_settings(cfg, paths, iteration, m.name))  # report_to: TRL's metrics to the tracker
    # Made before the model is loaded: under ZeRO-3 the arguments switch on DeepSpeed's zero.Init, so that
    # from_pretrained puts only its slice of the base model on each rank (else every rank holds it whole)
    soft_sppo = cfg.loss_type == "sppo"  # SPPO's own loss, which TRL has not: SPPOTrainer (TRL's value is dropped)
    args = DPOConfig(**settings, beta=tc.beta, loss_type="sppo_hard" if soft_sppo else cfg.loss_type,
                     precompute_ref_log_probs=tc.precompute_ref_log_probs, weight_decay=tc.weight_decay)
    model, tokenizer = load_policy(cfg, m.model, member_adapter(cfg, paths, iteration, member),
                                   paths.initial_adapter(iteration, m.name))
    loaded = memory_at_load(model)
    rows, previous = training_rows_for(cfg, paths, iteration, member, win_rates=soft_sppo)
    if not rows:  # nothing to learn: the member stays as it is
        save_trained_adapter(model, paths.adapter(iteration, m.name))
        return {"pairs": 0, "pairs_previous": 0, "steps": 0, "loss_type": cfg.loss_type}
    dataset = Dataset.from_list(rows)
    if tc.precompute_ref_log_probs:
        dataset = on_disk(dataset, work)
    trainer_class, extra = (SPPOTrainer, {"eta": cfg.baseline.sppo_eta}) if soft_sppo else (CountingDPOTrainer, {})
    trainer = trainer_class(model=model, args=args, processing_class=tokenizer, train_dataset=dataset,
                            callbacks=[finite_loss_guard(f"member {m.name}, iteration {iteration} (DPO)")],
                            max_prompt_length=tc.max_prompt_length, **extra)
    lengths = trainer.length_counts
    if lengths["pairs_dropped_for_length"] or lengths["pairs_cut_at_max_length"] or lengths["prompts_cut"]:
        log.warning("%s (iteration %d): of %d pairs, %d dropped (prompt >= train.max_length %d), %d cut at "
                    "train.max_length, %d prompts cut to train.max_prompt_length %s: %d pairs train",
                    m.name, iteration, lengths["pairs_given"], lengths["pairs_dropped_for_length"], tc.max_length,
                    lengths["pairs_cut_at_max_length"], lengths["prompts_cut"], tc.max_prompt_length,
                    lengths["pairs_trained"])
    resume = last_checkpoint(work)
    if resume:
        log.info("%s: resuming DPO from %s", m.name, resume)
    result = trainer.train(resume_from_checkpoint=resume)
    save_trained_adapter(trainer.model, paths.adapter(iteration, m.name), trainer.is_deepspeed_enabled)
    if is_main_rank():
        # TRL's per-step loss, rewards and margins, for the report's DPO curves
        atomic_write_json(paths.train_log(iteration, m.name), trainer.state.log_history)
    return {"pairs": len(rows), "pairs_previous": previous, **lengths,
            **train_summary(cfg, trainer, result, resume, loaded), "loss_type": cfg.loss_type}


def run(cfg: Config, paths: RunPaths, iteration: int, task: int) -> None:
    """One member's DPO; in a multi-node job every rank runs this, rank 0 writes the results."""
    name = cfg.members[task].name
    if paths.is_done(iteration, "train", name):
        log.info("train %s (iteration %d) is already done", name, iteration)
        return
    set_threads(cfg)
    # what it starts from, as recorded: the pairs (SPIN: also iteration t-1's) and its adapter of iteration t
    start_from = member_adapter(cfg, paths, iteration, task)
    check_files(paths, pairs_files(cfg, paths, iteration) + ([start_from] if start_from else []))
    start = time.time()
    summary = train_member(cfg, paths, iteration, task)
    summary["seconds"] = time.time() - start
    summary["world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
    if is_main_rank():
        marker = paths.marker(iteration, "train", name)
        log_file = paths.train_log(iteration, name)
        record_files(paths, iteration, unit_name("train", name), marker,
                     [paths.adapter(iteration, name)] + ([log_file] if log_file.exists() else []))
        mark_done(marker, json.dumps(summary))
        if not cfg.train.keep_checkpoints:  # the adapter is final: its resume points are not needed
            prune_checkpoints(paths.train_dir(iteration, name))
    log.info("train %s (iteration %d): %s", name, iteration, summary)


if __name__ == "__main__":
    stage_main(__doc__, run)
