"""Evaluate: every member of a base-model group answers one shard of evaluation items.

One array task = one base-model group x one shard of items (consecutive
items of the task splits, so a shard may span several small tasks), at one
evaluation point: the members as they start (INITIAL) or after iteration t's
training, each with its adapter of that moment and its own system prompt,
greedy, with each task's answer budget. The prompts were built by lm-eval
when the point was planned (RUN/eval/prompts/): this task needs no lm-eval,
so it may run in another venv (vLLM's).
Output: RUN/eval/<point>/evaluate/gGG_sKKKK.<digest>.json.
"""

from __future__ import annotations

import logging
import time

from ..backends import Batch
from ..config.schema import Config
from ..eval.plan import item_members
from ..rundir.files import read_json
from ..rundir.manifest import write_shard
from ..rundir.paths import RunPaths
from ..rundir.plan import Plan
from .common import member_adapter, model_outputs, open_member_group, set_threads, stage_main, with_system

log = logging.getLogger(__name__)


def answer_requests(cfg: Config, plan: dict, prompts: dict[int, list[list[dict]]], group: int,
                    segments: list[list[int]]) -> list[list[Batch]]:
    """Per segment [item, first, end] of the shard: one greedy batch per member of the group who
    answers the item (all of them; a selected test item: its own members)."""
    return [[Batch(cfg.members[m].name, [with_system(cfg.members[m].system_prompt, prompts[i][r])
                                         for r in range(first, end)],
                   temperature=0.0, top_p=1.0, max_new_tokens=plan["items"][i]["max_new_tokens"], seed=0)
             for m in plan["groups"][group] if cfg.members[m].name in item_members(plan, i)]
            for i, first, end in segments]


def run(cfg: Config, paths: RunPaths, point: int, task: int) -> None:
    plan = Plan.read(paths.eval_plan(point))
    g, k = plan.tasks("evaluate")[task]
    shard = plan["evaluate_shards"][k]
    out = paths.eval_shard(point, "evaluate", shard["name"], g)
    if out.exists():
        log.info("evaluate task %d is already done: %s", task, out)
        return
    set_threads(cfg)
    items = {i: plan["items"][i] for i, _, _ in shard["segments"]}
    prompts = {i: read_json(paths.eval_prompts(it["task"], it["split"]))["prompts"] for i, it in items.items()}
    requests = answer_requests(cfg, plan, prompts, g, shard["segments"])
    start = time.time()
    # a point's weights: the adapters members start iteration point + 1 with
    model = open_member_group(cfg, paths, point + 1, plan["groups"][g], cfg.eval_backend, f"evaluate-{task}")
    load_seconds = time.time() - start
    flat = model_outputs(model.generate_all([b for batches in requests for b in batches], cfg.eval.batch_size))
    outputs, at = [], 0
    for batches in requests:  # back to one {member: answers} per segment
        outputs.append({b.member: flat[at + n] for n, b in enumerate(batches)})
        at += len(batches)
    adapters = {cfg.members[m].name: member_adapter(cfg, paths, point + 1, m) for m in plan["groups"][g]}
    write_shard(paths, point, "evaluate", out, {
        "segments": shard["segments"], "group": g, "adapters": adapters,  # which weights answered
        "responses": [{m: [o.text for o in outs] for m, outs in seg.items()} for seg in outputs],
        "n_tokens": [{m: [o.n_tokens for o in outs] for m, outs in seg.items()} for seg in outputs],
        # what the models wrote where text.sanitize changed it: {segment: {member: {row: base64}}}
        "raw_b64": {s: raw for s, seg in enumerate(outputs)
                    if (raw := {m: {r: o.raw_b64 for r, o in enumerate(outs) if o.raw_b64} for m, outs in seg.items()
                                if any(o.raw_b64 for o in outs)})},
        "seconds": time.time() - start, "load_seconds": load_seconds, "backend": cfg.eval_backend,
        "model_loads": model.loads})
    n_items = sum(end - first for _, first, end in shard["segments"])
    log.info("evaluate group %d shard %d: %d members x %d items of %s in %.1f s", g, k, len(plan["groups"][g]),
             n_items, ", ".join(sorted({it["task"] for it in items.values()})), time.time() - start)


if __name__ == "__main__":
    stage_main(__doc__, run)
