"""Judge: every member that is not a duelist scores each response on its own (SPEC 1.4).

One array task = one group of judges sharing a base model x one shard of duels.
Every raw judge output is kept (it is the evidence); a text without a score
in 1..10 is missing, never a default. With `judge.score: expected` the judge's
log-probabilities over 1..10 also give an expected score, which always exists.
Output: RUN/iter_t/judge/gGG_sKKKK.json.
"""

from __future__ import annotations

import logging
import time

from ..algorithm.judging import SCORES, expected_score, judge_messages, parse_score
from ..backends import Batch
from ..config import Config
from ..io_utils import atomic_write_json, read_json
from ..paths import RunPaths
from .common import shard_task, stage_main, task_seed, with_system
from .generate import open_group, shard_rows

log = logging.getLogger(__name__)

SCORE_PREFIX = '{"score": '
# Each candidate ends with the closing brace so that "1" and "10" are distinct events.
CANDIDATES = [f"{s}}}" for s in SCORES]


def shard_responses(paths: RunPaths, plan: dict, iteration: int, shard: int) -> dict[tuple[int, int], str]:
    """(duel, side) -> response text, from every generate task of this shard."""
    texts = {}
    for g, k in plan["generate_tasks"]:
        if k == shard:
            for r in read_json(paths.shard(iteration, "generate", g, k))["responses"]:
                texts[(r["duel"], r["side"])] = r["text"]
    return texts


def run(cfg: Config, paths: RunPaths, iteration: int, task: int) -> None:
    opened = shard_task(cfg, paths, "judge", iteration, task)
    if opened is None:
        return
    plan, g, k, out = opened
    jc = cfg.judge
    responses = shard_responses(paths, plan, iteration, k)
    start = time.time()
    backend = cfg.judge_backend
    model = open_group(cfg, paths, iteration, plan["groups"][g], backend, f"judge-{task}")
    names, slots, convs = [], [], []
    for j in plan["groups"][g]:
        mine = [(c, side) for c in shard_rows(plan, k, jc.duels_per_shard)
                if j not in plan["duels"][c] for side in (0, 1)]
        if mine:
            names.append(cfg.members[j].name)
            slots.append(mine)
            convs.append([with_system(cfg.members[j].system_prompt,
                                      judge_messages(plan["instructions"][c]["text"], responses[(c, side)],
                                                     jc.few_shot)) for c, side in mine])
    logprobs = [[None] * len(mine) for mine in slots]
    expected = [[None] * len(mine) for mine in slots]
    if jc.score == "expected":
        scored = model.score_all(names, convs, SCORE_PREFIX, CANDIDATES, jc.batch_size)
        logprobs = [[[d[c] for c in CANDIDATES] for d in per_judge] for per_judge in scored]
        expected = [[expected_score(dict(zip(SCORES, lp))) for lp in per_judge] for per_judge in logprobs]
    judgments = []
    for r in range(jc.rounds):
        batches = [Batch(name, cs, jc.temperature, 1.0, jc.max_new_tokens,
                         seed=task_seed(cfg.tribe.seed, iteration, "judge", k, name, r), prefix=jc.answer_prefix)
                   for name, cs in zip(names, convs)]
        outs = model.generate_all(batches, jc.batch_size)
        for name, mine, per_judge, exp, lps in zip(names, slots, outs, expected, logprobs):
            for (c, side), o, e, lp in zip(mine, per_judge, exp, lps):
                judgments.append({"duel": c, "side": side, "judge": name, "round": r, "raw": o.text,
                                  "parsed": parse_score(o.text), "expected": e, "logprobs": lp})
    seconds = time.time() - start
    atomic_write_json(out, {"task": [g, k], "judgments": judgments, "seconds": seconds, "backend": backend,
                            "model_loads": model.loads})
    parsed = sum(x["parsed"] is not None for x in judgments)
    log.info("judge group %d shard %d: %d judgments (%d parsed) in %.1f s", g, k, len(judgments), parsed, seconds)


if __name__ == "__main__":
    stage_main(__doc__, run)
