"""What every stage needs: the run's config, the members' weights of an iteration, task seeds."""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
from pathlib import Path

from .. import backends
from ..backends import Generated, ModelGroup
from ..config.schema import Config, load_config
from ..inputs.text import sanitize
from ..rundir.logs import setup_logging
from ..rundir.manifest import check_files, read_checked_json
from ..rundir.paths import RunPaths
from ..rundir.plan import Plan


def load_run(run_dir: str | Path) -> tuple[Config, RunPaths]:
    """The config a run was started with (RUN/config.yaml) and its paths."""
    paths = RunPaths(run_dir)
    return load_config(paths.config), paths


def member_adapter(cfg: Config, paths: RunPaths, iteration: int, member: int) -> str | None:
    """The LoRA adapter member `member` starts iteration `iteration` with (None: the bare base).
    Iteration 0: its expert adapter from the sft stage when sft.data is set, else the config's."""
    m = cfg.members[member]
    if iteration == 0:
        return str(paths.sft_adapter(m.name)) if cfg.sft.data else m.adapter
    return str(paths.adapter(iteration - 1, m.name))


def with_system(system_prompt: str | None, messages: list[dict]) -> list[dict]:
    """A member's system prompt, if it has one, before `messages`: a member answers,
    judges and is trained as itself."""
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + messages


def is_main_rank() -> bool:
    """Rank 0 of a multi-rank job (or the only process): the one that writes results."""
    return int(os.environ.get("RANK", "0")) == 0


def task_seed(*parts: object) -> int:
    """A stable 31-bit seed from (seed, iteration, stage, task, ...): the same on every rerun."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def set_threads(cfg: Config) -> None:
    """Pin torch's CPU threads so a rerun computes exactly the same numbers."""
    import torch

    if cfg.cluster.executor != "slurm":
        torch.set_num_threads(cfg.cluster.local_threads)
    else:
        torch.set_num_threads(int(os.environ.get("SLURM_CPUS_PER_TASK", torch.get_num_threads())))


def read_plan(paths: RunPaths, iteration: int) -> Plan:
    """The iteration's plan, checked against its record."""
    return Plan(read_checked_json(paths, paths.plan(iteration)))


def shard_rows(plan: dict, stage: str, shard: int) -> range:
    """The instructions (rows of plan["authors"]; SPARTA: its duels) of shard `shard` of an array stage."""
    per_shard = plan["duels_per_shard"][stage]
    return range(shard * per_shard, min((shard + 1) * per_shard, len(plan["authors"])))


def shard_task(cfg: Config, paths: RunPaths, stage: str, iteration: int, task: int):
    """(plan, group, shard, output path) of an array task, or None when its shard file already exists."""
    plan = read_plan(paths, iteration)
    # plans written before the shard sizes were recorded in them used the config's
    plan.setdefault("duels_per_shard", {"generate": cfg.generate.duels_per_shard,
                                        "judge": cfg.judge.duels_per_shard})
    g, k = plan.tasks(stage)[task]
    out = paths.shard(iteration, stage, g, k)
    if out.exists():
        logging.getLogger(__name__).info("%s task %d (group %d, shard %d) is already done: %s",
                                         stage, task, g, k, out)
        return None
    set_threads(cfg)
    return plan, g, k, out


def open_member_group(cfg: Config, paths: RunPaths, iteration: int, group: list[int], backend: str,
                      slot: str) -> ModelGroup:
    """The group's base model, loaded once, with each member's weights of `iteration`;
    `slot` names the task ("generate-3") for the vLLM engine's own cache folder."""
    adapters = {cfg.members[i].name: member_adapter(cfg, paths, iteration, i) for i in group}
    check_files(paths, [a for a in adapters.values() if a])  # an adapter the run trained: as recorded
    # looked up on the module, not imported by name: the fast tests put a scripted model there
    model = cfg.members[group[0]].model
    return backends.open_group(backend, model, adapters, dtype=cfg.generate.dtype, engine=cfg.vllm,
                               cache_dir=paths.cache(slot), seed=task_seed(cfg.tribe.seed, iteration, slot),
                               trust_remote_code=cfg.trusts_remote_code(model))


def model_outputs(outputs: list[list[Generated]]) -> list[list[Generated]]:
    """Every generated text through text.sanitize, right after generation: the one place where model
    output enters the pipeline (shards, archive, pairs and samples then hold valid UTF-8 only)."""
    out = []
    for batch in outputs:
        out.append([])
        for o in batch:
            clean, raw = sanitize(o.text)
            out[-1].append(Generated(clean, o.n_tokens, raw))
    return out


def stage_main(doc: str, run, with_task: bool = True) -> None:
    """Command line of a stage: `python -m sparta_hpc.stages.X RUN_DIR --iteration N [--task K]`."""
    setup_logging()
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--iteration", type=int, required=True)
    if with_task:
        parser.add_argument("--task", type=int, required=True, help="task index in the stage's task list")
    args = parser.parse_args()
    cfg, paths = load_run(args.run_dir)
    if with_task:
        run(cfg, paths, args.iteration, args.task)
    else:
        run(cfg, paths, args.iteration)
