"""Rate: the evaluator model scores every member's answers to the open-ended tasks (COM2, Alpaca), 1..10.

One array task = one shard of the open-ended items: the evaluator sees the
request, the member's answer and, for COM2, the gold answer, and answers in
the judges' format ('{"score": N}', prefilled). Its raw text is kept; a text
without a score is missing, never a default. With `eval.evaluator.score:
expected` the mean of its distribution over 1..10 is recorded too.
Output: RUN/eval/<point>/rate/sKKKK.<digest>.json.
"""

from __future__ import annotations

import logging
import time

from .. import backends
from ..algorithm.judging import CANDIDATES, SCORE_PREFIX, SCORES, expected_score, parse_score
from ..backends import Batch
from ..config.schema import Config
from ..eval.plan import item_members, item_values
from ..eval.rated import evaluator_messages
from ..rundir.files import read_json
from ..rundir.manifest import write_shard
from ..rundir.paths import RunPaths
from ..rundir.plan import Plan
from .common import model_outputs, set_threads, stage_main, task_seed

log = logging.getLogger(__name__)


def rating_requests(plan: dict, docs: dict[int, list[dict]], answers: dict[int, dict[str, list[str]]],
                    segments: list[list[int]]) -> list[tuple[int, str, list[dict]]]:
    """(segment, member, the evaluator's chat prompt) for every member's answer to every item of the shard."""
    return [(s, m, evaluator_messages(plan["items"][i]["task"], docs[i][r], answers[i][m][r]))
            for s, (i, first, end) in enumerate(segments) for m in item_members(plan, i) for r in range(first, end)]


def run(cfg: Config, paths: RunPaths, point: int, task: int) -> None:
    plan = Plan.read(paths.eval_plan(point))
    shard, ev = plan["rate_shards"][plan.tasks("rate")[task]], cfg.eval.evaluator
    out = paths.eval_shard(point, "rate", shard["name"])
    if out.exists():
        log.info("rate task %d is already done: %s", task, out)
        return
    set_threads(cfg)
    items = {i: plan["items"][i] for i, _, _ in shard["segments"]}
    docs = {i: read_json(paths.eval_prompts(it["task"], it["split"]))["docs"] for i, it in items.items()}
    answers = {i: item_values(paths, plan, point, "evaluate", i) for i in items}
    requests = rating_requests(plan, docs, answers, shard["segments"])
    convs = [conv for _, _, conv in requests]
    start = time.time()
    slot = f"rate-{task}"
    model = backends.open_group(cfg.eval_backend, ev.model, {"evaluator": ev.adapter}, dtype=cfg.generate.dtype,
                                engine=cfg.vllm, cache_dir=paths.cache(slot), seed=task_seed(cfg.tribe.seed, slot),
                                trust_remote_code=cfg.trusts_remote_code(ev.model))
    batch = Batch("evaluator", convs, 0.0, 1.0, ev.max_new_tokens, seed=0, prefix=ev.answer_prefix)
    texts = [o.text for o in model_outputs(model.generate_all([batch], cfg.eval.batch_size))[0]]
    expected = [None] * len(convs)
    if ev.score == "expected":
        scored = model.score_all(["evaluator"], [convs], SCORE_PREFIX, list(CANDIDATES), cfg.eval.batch_size)[0]
        expected = [expected_score({s: d[c] for s, c in zip(SCORES, CANDIDATES)}) for d in scored]
    ratings: list[dict[str, list[dict]]] = [{m: [] for m in plan["members"]} for _ in shard["segments"]]
    for (s, member, _), text, e in zip(requests, texts, expected, strict=True):
        ratings[s][member].append({"raw": text, "parsed": parse_score(text), "expected": e})
    write_shard(paths, point, "rate", out, {"segments": shard["segments"], "ratings": ratings, "score_kind": ev.score,
                            "seconds": time.time() - start, "backend": cfg.eval_backend})
    log.info("rate shard %s: %d answers in %.1f s", shard["name"], len(convs), time.time() - start)


if __name__ == "__main__":
    stage_main(__doc__, run)
