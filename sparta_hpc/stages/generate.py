"""Generate: the authors of each instruction's answers write them (SPEC 1.3: both duelists).

One array task = one base-model group x one shard of instructions: the base
model is loaded once and every member of the group writes its answers (its
side of a duel; a single-model method's several samples) with its own adapter,
chat template, system prompt and sampling settings.
Output: RUN/iter_t/generate/gGG_sKKKK.json (its existence means the shard is done).
"""

from __future__ import annotations

import logging
import time

from ..backends import Batch
from ..config.schema import Config
from ..rundir.manifest import write_shard
from ..rundir.paths import RunPaths
from .common import model_outputs, open_member_group, shard_rows, shard_task, stage_main, task_seed, with_system

log = logging.getLogger(__name__)

Slot = tuple[int, int]  # (instruction, slot): SPARTA's slot 0 is the duel's first duelist


def generate_requests(cfg: Config, plan: dict, iteration: int, group: int,
                      shard: int) -> list[tuple[Batch, list[Slot]]]:
    """Per member of base-model group `group` that answers in shard `shard`: its prompts (one per
    slot it takes) with its sampling settings, and the slots they answer."""
    requests = []
    for i in plan["groups"][group]:
        m = cfg.members[i]
        mine = [(c, side) for c in shard_rows(plan, "generate", shard) for side, author in
                enumerate(plan["authors"][c]) if author == i]
        if mine:
            convs = [with_system(m.system_prompt, [{"role": "user", "content": plan["instructions"][c]["text"]}])
                     for c, _ in mine]
            requests.append((Batch(m.name, convs, m.temperature, m.top_p, m.max_new_tokens,
                                   seed=task_seed(cfg.tribe.seed, iteration, "generate", shard, m.name),
                                   top_k=m.top_k), mine))
    return requests


def run(cfg: Config, paths: RunPaths, iteration: int, task: int) -> None:
    opened = shard_task(cfg, paths, "generate", iteration, task)
    if opened is None:
        return
    plan, g, k, out = opened
    requests = generate_requests(cfg, plan, iteration, g, k)
    start = time.time()
    model = open_member_group(cfg, paths, iteration, plan["groups"][g], cfg.generate.backend, f"generate-{task}")
    load_seconds = time.time() - start
    outputs = model_outputs(model.generate_all([batch for batch, _ in requests], cfg.generate.batch_size))
    responses = [{"duel": c, "side": side, "member": batch.member, "text": o.text, "n_tokens": o.n_tokens,
                  **({"raw_b64": o.raw_b64} if o.raw_b64 else {})}  # what the model wrote, if sanitized
                 for (batch, slots), outs in zip(requests, outputs, strict=True)
                 for (c, side), o in zip(slots, outs, strict=True)]
    n_tokens = sum(r["n_tokens"] for r in responses)
    seconds = time.time() - start
    write_shard(paths, iteration, "generate", out, {"task": [g, k], "responses": responses, "new_tokens": n_tokens,
                            "seconds": seconds, "load_seconds": load_seconds, "backend": cfg.generate.backend,
                            "model_loads": model.loads})
    log.info("generate group %d shard %d: %d responses, %d tokens in %.1f s", g, k, len(responses), n_tokens, seconds)


if __name__ == "__main__":
    stage_main(__doc__, run)
