"""Score: every member's answers of an evaluation point through lm-eval's metrics (one CPU job).

Accuracy tasks go through the task's lm-eval filters and metric (answer
extraction, exact match or math-verify equivalence) with lm-eval's
aggregation and standard error; open-ended tasks take the evaluator's
ratings (the mean over the answers it rated; the others are counted as
missing). Writes, per member and task, RUN/eval/<point>/<member>/<task>.json
(score, N, stderr per split, and the settings) and per split the samples
(prompt, response, extracted answer, correct or rating), then the point's
summary.json and its marker.
"""

from __future__ import annotations

import json
import logging

from ..config.schema import Config
from ..eval.plan import item_members, item_values
from ..eval.task import rating_result, score_rows
from ..rundir.files import atomic_write_json, atomic_write_text, mark_done, read_json
from ..rundir.manifest import record_files
from ..rundir.paths import INITIAL, RunPaths
from .common import stage_main
from .tracking import log_pipeline

log = logging.getLogger(__name__)


def score_item(cfg: Config, plan: dict, item: int, prompts: dict, answers: list[str], ratings: list[dict]):
    """(the split's figures, per-sample rows) of one member on one task split."""
    it = plan["items"][item]
    if it["kind"] == "rated":
        values = [r["expected"] if cfg.eval.evaluator.score == "expected" else r["parsed"] for r in ratings]
        result = rating_result(it["task"], values, [r["raw"] for r in ratings])
    else:
        result = score_rows(it["task"], prompts["docs"], answers)
    samples = [{**s, "prompt": prompts["prompts"][s["doc_index"]], "response": answers[s["doc_index"]]}
               for s in result.samples]
    figures = {"score": result.score, "n": result.n, "stderr": result.stderr, "missing": result.missing,
               "metric": result.metric, "items": len(answers)}
    return figures, samples


def run(cfg: Config, paths: RunPaths, point: int) -> None:
    if paths.is_done(point, "score"):
        return
    plan = read_json(paths.eval_plan(point))
    scores: dict[str, dict[str, dict]] = {m: {} for m in plan["members"]}
    written = []  # every file this point's scores consist of: recorded before the marker
    for i, it in enumerate(plan["items"]):
        prompts = read_json(paths.eval_prompts(it["task"], it["split"]))
        answers = item_values(paths, plan, point, "evaluate", i)
        ratings = item_values(paths, plan, point, "rate", i) if it["kind"] == "rated" else {}
        for member in item_members(plan, i):
            figures, samples = score_item(cfg, plan, i, prompts, answers[member], ratings.get(member, []))
            scores[member].setdefault(it["task"], {})[it["split"]] = figures
            written.append(paths.eval_samples(point, member, it["task"], it["split"]))
            atomic_write_text(written[-1], "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
    settings = {"point": "initial" if point == INITIAL else point, "backend": cfg.eval_backend,
                "limit": cfg.eval.limit, "max_new_tokens": {it["task"]: it["max_new_tokens"] for it in plan["items"]},
                "decoding": "greedy", "evaluator": cfg.eval.evaluator.model, "score_kind": cfg.eval.evaluator.score}
    for member, tasks in scores.items():
        for task, per_split in tasks.items():
            written.append(paths.eval_result(point, member, task))
            atomic_write_json(written[-1], {"task": task, "member": member, **per_split, "settings": settings})
    atomic_write_json(paths.eval_summary(point), {"point": point, "members": plan["members"], "scores": scores,
                                                 "settings": settings})
    log_pipeline(cfg, paths, point + 1, {f"eval/{task}/{split}/{member}": f["score"] for member, tasks in scores.items()
                                         for task, per_split in tasks.items() for split, f in per_split.items()})
    marker = paths.marker(point, "score")
    record_files(paths, point, "score", marker, written + [paths.eval_summary(point)])
    mark_done(marker)
    log.info("evaluation point %s: %d members x %d task splits scored", settings["point"], len(plan["members"]),
             len(plan["items"]))


if __name__ == "__main__":
    stage_main(__doc__, run, with_task=False)
