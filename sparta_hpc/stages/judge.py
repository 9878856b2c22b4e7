"""Judge: every member that is not a duelist scores each response on its own (SPEC 1.4);
with `judge.panel_size`, the members of the duel's panel (the plan's `judges` lists).

For the single-model methods the model judges its own answers (Self- and
Meta-Rewarding; Meta-Rewarding then also compares its own disagreeing
judgments as a meta-judge), or a preference model compares every two answers
of an instruction (SPPO).

One array task = one group of judges sharing a base model x one shard of duels.
Judge shards need not line up with generate shards: a task reads the
responses of its duels from whichever generate shards hold them.
Every raw judge output is kept (it is the evidence); a text without a score
in 1..10 is missing, never a default. With `judge.score: expected` the judge's
log-probabilities over 1..10 also give an expected score, which always exists.
Output: RUN/iter_t/judge/gGG_sKKKK.json.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from .. import backends
from ..algorithm.judging import (
    CANDIDATES,
    CHOICES,
    SCORE_PREFIX,
    SCORES,
    expected_score,
    first_wins,
    judge_messages,
    parse_judgment,
)
from ..backends import Batch
from ..config.schema import Config
from ..inputs.text import clip
from ..methods.judging import meta_requests, meta_results, pairwise_requests
from ..rundir.manifest import load_entries, read_checked_json, write_shard
from ..rundir.paths import RunPaths
from ..rundir.plan import Plan
from .common import (
    member_adapter,
    model_outputs,
    open_member_group,
    shard_rows,
    shard_task,
    stage_main,
    task_seed,
    with_system,
)

log = logging.getLogger(__name__)

Slot = tuple[int, int]  # (duel, side)


@dataclass
class JudgeWork:
    """One judge's share of a shard: the responses it rates, as chat prompts."""

    judge: str
    slots: list[Slot]
    conversations: list[list[dict]]


def generate_shards_for(plan: Plan, shard: int) -> list[tuple[int, int]]:
    """The generate shards (group, shard) that hold the responses of judge shard `shard`'s duels."""
    rows = shard_rows(plan, "judge", shard)
    per_shard = plan["duels_per_shard"]["generate"]
    wanted = range(rows.start // per_shard, (rows.stop - 1) // per_shard + 1)
    return [(g, k) for g, k in plan.tasks("generate") if k in wanted]


def read_responses(paths: RunPaths, plan: dict, iteration: int, shard: int) -> dict[Slot, str]:
    """(duel, side) -> response text for every duel of judge shard `shard`."""
    rows = shard_rows(plan, "judge", shard)
    texts, entries = {}, load_entries(paths)
    for g, k in generate_shards_for(plan, shard):
        for r in read_checked_json(paths, paths.shard(iteration, "generate", g, k), entries)["responses"]:
            if r["duel"] in rows:
                texts[(r["duel"], r["side"])] = r["text"]
    missing = [(c, side) for c in rows for side in range(len(plan["authors"][c])) if (c, side) not in texts]
    if missing:
        c, side = missing[0]
        raise RuntimeError(f"iteration {iteration}: judge shard {shard} finds no response for duel {c} side {side} "
                           f"({len(missing)} missing) in {paths.iteration(iteration) / 'generate'}; delete "
                           f"{paths.marker(iteration, 'generate')} and rerun to regenerate")
    return texts


def shown_to_judges(cfg: Config, responses: dict[Slot, str]) -> dict[Slot, str]:
    """The answers as every judge prompt shows them: cut at judge.max_response_chars (text.clip)."""
    return {slot: clip(text, cfg.judge.max_response_chars) for slot, text in responses.items()}


def judge_requests(cfg: Config, plan: dict, group: int, shard: int, responses: dict[Slot, str]) -> list[JudgeWork]:
    """Per judge of base-model group `group`: every answer of each instruction of the shard it judges
    (SPARTA: both answers of every duel it is not in)."""
    work = []
    for j in plan["groups"][group]:
        mine = [(c, side) for c in shard_rows(plan, "judge", shard) if j in plan["judges"][c]
                for side in range(len(plan["authors"][c]))]
        if mine:
            m = cfg.members[j]
            convs = [with_system(m.system_prompt, judge_messages(plan["instructions"][c]["text"],
                                                                 responses[(c, side)], cfg.judge.few_shot,
                                                                 cfg.judge.rubric, cfg.judge.reasoning))
                     for c, side in mine]
            work.append(JudgeWork(m.name, mine, convs))
    return work


def round_batches(cfg: Config, work: list[JudgeWork], iteration: int, shard: int, round_: int) -> list[Batch]:
    """The generation requests of one sampled round (each judge seeded per shard and round)."""
    jc = cfg.judge
    return [Batch(w.judge, w.conversations, jc.temperature, jc.top_p, jc.max_new_tokens,
                  seed=task_seed(cfg.tribe.seed, iteration, "judge", shard, w.judge, round_), prefix=jc.answer_prefix,
                  top_k=jc.top_k)
            for w in work]


def run(cfg: Config, paths: RunPaths, iteration: int, task: int) -> None:
    opened = shard_task(cfg, paths, "judge", iteration, task)
    if opened is None:
        return
    plan, g, k, out = opened
    if plan["method"] == "sppo":
        return run_pairwise(cfg, paths, plan, iteration, task, k, out)
    jc = cfg.judge
    responses = shown_to_judges(cfg, read_responses(paths, plan, iteration, k))
    work = judge_requests(cfg, plan, g, k, responses)
    start = time.time()
    backend = cfg.judge_backend
    model = open_member_group(cfg, paths, iteration, plan["groups"][g], backend, f"judge-{task}")
    logprobs = [[None] * len(w.slots) for w in work]
    expected = [[None] * len(w.slots) for w in work]
    if jc.score == "expected":
        scored = model.score_all([w.judge for w in work], [w.conversations for w in work], SCORE_PREFIX,
                                 list(CANDIDATES), jc.batch_size)
        logprobs = [[[d[c] for c in CANDIDATES] for d in per_judge] for per_judge in scored]
        expected = [[expected_score(dict(zip(SCORES, lp))) for lp in per_judge] for per_judge in logprobs]
    judgments = []
    for r in range(jc.rounds):
        outs = model_outputs(model.generate_all(round_batches(cfg, work, iteration, k, r), jc.batch_size))
        for w, per_judge, exp, lps in zip(work, outs, expected, logprobs, strict=True):
            for (c, side), o, e, lp in zip(w.slots, per_judge, exp, lps, strict=True):
                judgments.append({"duel": c, "side": side, "judge": w.judge, "round": r, "raw": o.text,
                                  "parsed": parse_judgment(o.text, jc.rubric, jc.reasoning), "expected": e, "logprobs": lp,
                                  **({"raw_b64": o.raw_b64} if o.raw_b64 else {})})
    meta = []
    if plan["method"] == "meta_rewarding":  # the judge (the aligned model) judges its own judgments
        (w,) = work
        system = with_system(cfg.members[plan["members"].index(w.judge)].system_prompt, [])
        slots, convs = meta_requests(plan, responses, judgments, system)
        if convs:
            scored = model.score_all([w.judge], [convs], "", list(CHOICES), jc.batch_size)[0]
            meta = meta_results(slots, [first_wins(d) for d in scored])
    seconds = time.time() - start
    write_shard(paths, iteration, "judge", out, {"task": [g, k], "judgments": judgments, "meta": meta,
                                                 "seconds": seconds, "backend": backend, "model_loads": model.loads})
    parsed = sum(x["parsed"] is not None for x in judgments)
    log.info("judge group %d shard %d: %d judgments (%d parsed) in %.1f s", g, k, len(judgments), parsed, seconds)


def run_pairwise(cfg: Config, paths: RunPaths, plan: dict, iteration: int, task: int, k: int, out) -> None:
    """SPPO: the preference model compares every two answers of each instruction, both orders."""
    rows = shard_rows(plan, "judge", k)
    responses = shown_to_judges(cfg, read_responses(paths, plan, iteration, k))
    b, policy = cfg.baseline, plan["authors"][rows[0]][0]
    if b.judge_model:  # a preference model of its own
        model_path, adapter, system = b.judge_model, b.judge_adapter, []
    else:  # the aligned model judges, as itself
        member = cfg.members[policy]
        model_path, adapter = member.model, member_adapter(cfg, paths, iteration, policy)
        system = with_system(member.system_prompt, [])
    start = time.time()
    slot = f"judge-{task}"
    model = backends.open_group(cfg.judge_backend, model_path, {"judge": adapter}, dtype=cfg.generate.dtype,
                                engine=cfg.vllm, cache_dir=paths.cache(slot),
                                seed=task_seed(cfg.tribe.seed, iteration, slot),
                                trust_remote_code=cfg.trusts_remote_code(model_path))
    pairs, convs = pairwise_requests(plan, rows, responses, system)
    scored = model.score_all(["judge"], [convs], "", list(CHOICES), cfg.judge.batch_size)[0]
    comparisons = [{"duel": c, "first": i, "second": j, "p_first": first_wins(d)}
                   for (c, i, j), d in zip(pairs, scored, strict=True)]
    write_shard(paths, iteration, "judge", out, {"task": [0, k], "judgments": [], "comparisons": comparisons,
                            "seconds": time.time() - start, "backend": cfg.judge_backend, "model_loads": model.loads,
                            "preference_model": model_path})
    log.info("judge (pairwise) shard %d: %d comparisons in %.1f s", k, len(comparisons), time.time() - start)


if __name__ == "__main__":
    stage_main(__doc__, run)
