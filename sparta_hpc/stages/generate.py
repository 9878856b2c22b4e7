"""Generate: both duelists answer each instruction (SPEC 1.3).

One array task = one base-model group x one shard of duels: the base model is
loaded once and every member of the group answers its duels with its own
adapter, chat template, system prompt and sampling settings.
Output: RUN/iter_t/generate/gGG_sKKKK.json (its existence means the shard is done).
"""

from __future__ import annotations

import logging
import time

from ..backends import Batch
from ..config import Config
from ..io_utils import atomic_write_json
from ..paths import RunPaths
from .common import member_adapter, shard_task, stage_main, task_seed, with_system

log = logging.getLogger(__name__)


def conversation(system_prompt: str | None, text: str) -> list[dict]:
    return with_system(system_prompt, [{"role": "user", "content": text}])


def shard_rows(plan: dict, shard: int, per_shard: int) -> range:
    return range(shard * per_shard, min((shard + 1) * per_shard, len(plan["duels"])))


def open_group(cfg: Config, paths: RunPaths, iteration: int, group: list[int], backend: str, slot: str):
    """The group's base model, loaded once, with every member's adapter; `slot` names
    the task (stage-task) for the vLLM engine's own cache folder."""
    adapters = {cfg.members[i].name: member_adapter(cfg, paths, iteration, i) for i in group}
    model = cfg.members[group[0]].model
    if backend == "vllm":
        from ..backends.vllm import VLLMGroup

        return VLLMGroup(model, adapters, dtype=cfg.generate.dtype, engine=cfg.vllm,
                         cache_dir=paths.root / "cache" / slot, seed=task_seed(cfg.tribe.seed, iteration, slot))
    from ..backends.hf import HFGroup

    return HFGroup(model, adapters, dtype=cfg.generate.dtype)


def run(cfg: Config, paths: RunPaths, iteration: int, task: int) -> None:
    opened = shard_task(cfg, paths, "generate", iteration, task)
    if opened is None:
        return
    plan, g, k, out = opened
    group = plan["groups"][g]
    start = time.time()
    model = open_group(cfg, paths, iteration, group, cfg.generate.backend, f"generate-{task}")
    load_seconds = time.time() - start
    batches, slots = [], []
    for i in group:
        m = cfg.members[i]
        mine = [(c, side) for c in shard_rows(plan, k, cfg.generate.duels_per_shard)
                for side in (0, 1) if plan["duels"][c][side] == i]
        if mine:
            convs = [conversation(m.system_prompt, plan["instructions"][c]["text"]) for c, _ in mine]
            batches.append(Batch(m.name, convs, m.temperature, m.top_p, m.max_new_tokens,
                                 seed=task_seed(cfg.tribe.seed, iteration, "generate", k, m.name)))
            slots.append(mine)
    responses, n_tokens = [], 0
    for b, mine, outs in zip(batches, slots, model.generate_all(batches, cfg.generate.batch_size)):
        for (c, side), o in zip(mine, outs):
            responses.append({"duel": c, "side": side, "member": b.member, "text": o.text, "n_tokens": o.n_tokens})
            n_tokens += o.n_tokens
    seconds = time.time() - start
    atomic_write_json(out, {"task": [g, k], "responses": responses, "new_tokens": n_tokens,
                            "seconds": seconds, "load_seconds": load_seconds, "backend": cfg.generate.backend,
                            "model_loads": model.loads})
    log.info("generate group %d shard %d: %d responses, %d tokens in %.1f s", g, k, len(responses), n_tokens, seconds)


if __name__ == "__main__":
    stage_main(__doc__, run)
