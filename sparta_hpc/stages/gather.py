"""Gather: the iteration's shard files -> one HDF5 archive (the only HDF5 writer).

Per (duel, judge, side) the score used downstream is the mean of the judge's
valid rounds (`judge.score`: the parsed score or the expected score); NaN when
no round gave one. Also counts, per judge, the judgments without a score.
"""

from __future__ import annotations

import json
import logging

import numpy as np

from ..config.schema import Config, config_to_yaml
from ..methods.pairs import symmetric_preference
from ..rundir.archive import write_gathered
from ..rundir.files import mark_done
from ..rundir.manifest import check_file, load_entries, read_checked_json, record_files
from ..rundir.paths import RunPaths
from ..rundir.plan import Plan
from ..rundir.provenance import versions
from ..rundir.ratings import load_ratings
from .common import read_plan, stage_main

log = logging.getLogger(__name__)

def collect_responses(paths: RunPaths, plan: Plan, iteration: int) -> dict:
    n, S = len(plan["authors"]), len(plan["authors"][0])
    text = np.full((n, S), None, dtype=object)
    n_tokens = np.zeros((n, S), dtype=np.int64)
    entries = load_entries(paths)  # every shard is checked against its record as it is read
    for g, k in plan.tasks("generate"):
        for r in read_checked_json(paths, paths.shard(iteration, "generate", g, k), entries)["responses"]:
            text[r["duel"], r["side"]] = r["text"]
            n_tokens[r["duel"], r["side"]] = r["n_tokens"]
    missing = np.argwhere(text == None)  # noqa: E711 (elementwise)
    if len(missing):
        c, side = missing[0]
        raise RuntimeError(f"iteration {iteration}: no response for instruction {c} slot {side} in the generate "
                           f"shards; delete {paths.marker(iteration, 'generate')} and rerun to regenerate")
    return {"text": text, "n_tokens": n_tokens, "author": np.array(plan["authors"], dtype=np.int64)}


def collect_judgments(cfg: Config, paths: RunPaths, plan: Plan, iteration: int) -> dict:
    """Pointwise scores (n, M, S, R), and the baselines' meta-judgments and pairwise preferences."""
    n, m, S, rounds = len(plan["authors"]), len(plan["members"]), len(plan["authors"][0]), cfg.judge.rounds
    index = {name: i for i, name in enumerate(plan["members"])}
    raw = np.full((n, m, S, rounds), "", dtype=object)
    parsed = np.full((n, m, S, rounds), np.nan)
    expected = np.full((n, m, S, rounds), np.nan)
    with_logprobs = cfg.judge.score == "expected" and plan["method"] != "sppo"
    logprobs = np.full((n, m, S, 10), np.nan) if with_logprobs else None
    meta_rounds, meta_p = np.full((n, S, 2), -1, dtype=np.int64), np.full((n, S), np.nan)
    p_first = np.full((n, S, S), np.nan)
    entries = load_entries(paths)
    for g, k in plan.tasks("judge"):
        shard = read_checked_json(paths, paths.shard(iteration, "judge", g, k), entries)
        for x in shard["judgments"]:
            at = (x["duel"], index[x["judge"]], x["side"], x["round"])
            raw[at] = x["raw"]
            parsed[at] = np.nan if x["parsed"] is None else x["parsed"]
            expected[at] = np.nan if x["expected"] is None else x["expected"]
            if with_logprobs:
                logprobs[at[:3]] = x["logprobs"]
        for x in shard.get("meta", []):
            meta_rounds[x["duel"], x["side"]] = x["rounds"]
            meta_p[x["duel"], x["side"]] = x["p_hi_better"]
        for x in shard.get("comparisons", []):
            p_first[x["duel"], x["first"], x["second"]] = x["p_first"]
    source = expected if cfg.judge.score == "expected" else parsed
    valid = ~np.isnan(source)
    with np.errstate(invalid="ignore"):
        score = np.where(valid.any(axis=3), np.nansum(source, axis=3) / valid.sum(axis=3), np.nan)
    out = {"raw": raw, "parsed": parsed, "expected": expected, "logprobs": logprobs, "score": score,
           "score_kind": cfg.judge.score}
    if plan["method"] == "meta_rewarding":
        out["meta"] = {"rounds": meta_rounds, "p_hi_better": meta_p}
    if plan["method"] == "sppo":
        out["comparisons"] = {"p_first": p_first, "prob": symmetric_preference(p_first)}
    return out


def judge_report(plan: dict, judgments: dict) -> dict:
    """Per judge: judgments asked for, how many had no parsable score (`unparsed`), and how many
    gave the score the algorithm uses (`used`: with judge.score=expected every judgment whose
    log-probs were read, parsed or not; with judge.score=parsed the parsed ones)."""
    # asked[c, j]: j judges instruction c; one pass over the plan (a membership test per member and
    # instruction would cost M x N x (M - 2) steps: minutes for 100 members and 100,000 duels)
    asked = np.zeros((len(plan["judges"]), len(plan["members"])), dtype=bool)
    for c, judges in enumerate(plan["judges"]):
        asked[c, judges] = True
    source = judgments["expected"] if judgments["score_kind"] == "expected" else judgments["parsed"]
    report = {}
    for j, name in enumerate(plan["members"]):
        parsed = judgments["parsed"][asked[:, j], j]
        report[name] = {"judgments": int(parsed.size), "unparsed": int(np.isnan(parsed).sum()),
                        "used": int((~np.isnan(source[asked[:, j], j])).sum())}
    return report


def run(cfg: Config, paths: RunPaths, iteration: int) -> None:
    if paths.is_done(iteration, "gather"):
        return
    plan = read_plan(paths, iteration)
    responses = collect_responses(paths, plan, iteration)
    judgments = collect_judgments(cfg, paths, plan, iteration)
    report = judge_report(plan, judgments)
    check_file(paths, paths.ratings(iteration))
    _, ratings = load_ratings(paths.ratings(iteration))
    attrs = {"iteration": iteration, "seed": cfg.tribe.seed, "members": json.dumps(plan["members"]),
             "method": plan["method"],
             "config": config_to_yaml(cfg), "versions": json.dumps(versions()),
             # the code snapshot (git commit, dirty) and every interpreter that ran a stage so far
             "provenance": paths.provenance.read_text() if paths.provenance.exists() else "{}",
             "judge_report": json.dumps(report)}
    write_gathered(paths.archive(iteration), attrs=attrs, plan=plan, responses=responses, judgments=judgments,
                   ratings_before=ratings)
    marker = paths.marker(iteration, "gather")
    record_files(paths, iteration, "gather", marker, [paths.archive(iteration)])
    mark_done(marker)
    for name, r in report.items():
        if r["judgments"] and r["unparsed"] == r["judgments"]:
            log.warning("judge %s gave no parsable score in any of its %d judgments (iteration %d)",
                        name, r["judgments"], iteration)
    log.info("iteration %d: gathered %d instructions into %s", iteration, len(plan["authors"]),
             paths.archive(iteration))


if __name__ == "__main__":
    stage_main(__doc__, run, with_task=False)
