"""Plan: the iteration's instructions, who answers and who judges each, and the array shards (SPEC 1.1-1.2).

Runs in the driver (it is cheap and needs no model). For SPARTA the answers'
authors are the duelists of match-making and the judges every other member
(or, with `judge.panel_size`, a seeded random panel of them);
the single-model methods (sparta_hpc.methods) have their one member answer
each instruction several times and, where the method says so, judge itself.
The same instructions are drawn for every method (seed, iteration).
Output: RUN/iter_t/plan.json.
"""

from __future__ import annotations

import logging

import numpy as np

from .. import methods
from ..algorithm.matchmaking import draw_instructions, draw_panels, make_duels
from ..algorithm.reputation import Ratings
from ..config.schema import Config
from ..eval.decontaminate import decontaminate, report_lines
from ..inputs.instructions import load_instructions
from ..rundir.files import atomic_write_json, mark_done
from ..rundir.manifest import check_file, read_checked_json, record_files
from ..rundir.paths import RunPaths
from ..rundir.plan import Plan
from ..rundir.ratings import load_ratings, ratings_to_json

log = logging.getLogger(__name__)


def initial_ratings(cfg: Config) -> Ratings:
    start = [m.initial_rating or cfg.reputation.initial_rating for m in cfg.members]
    return Ratings.initial(len(cfg.members), cfg.reputation, start)


def shard_tasks(rows_of: list[list[int]], groups: list[list[int]], per_shard: int) -> list[list[int]]:
    """[group, shard] array tasks that have work: some member of the group is in `rows_of[c]` (the
    authors, or the judges, of instruction c) for an instruction c of the shard."""
    tasks = []
    for k in range(-(-len(rows_of) // per_shard)):
        busy = {i for row in rows_of[k * per_shard:(k + 1) * per_shard] for i in row}
        tasks += [[g, k] for g, members in enumerate(groups) if busy & set(members)]
    return tasks


def answering(cfg: Config, ratings: Ratings, n: int, iteration: int, policy: int | None):
    """(authors (n, S), judges per instruction) of the method."""
    if cfg.method == "sparta":
        pairs = make_duels(ratings.rating, n, cfg.matchmaking, cfg.tribe.seed, iteration)
        duels = pairs.tolist()
        if cfg.judge.panel_size is not None:  # beyond the paper: k of the M - 2, drawn at the start's ratings
            panels = draw_panels(pairs, len(cfg.members), cfg.judge.panel_size, cfg.judge.panel_sampling,
                                 ratings.rating, cfg.tribe.seed, iteration)
            return duels, panels.tolist()
        judges = [[j for j in range(len(cfg.members)) if cfg.reputation.duelists_judge or j not in pair]
                  for pair in duels]
        return duels, judges
    authors = [[policy] * methods.samples(cfg) for _ in range(n)]
    judges = [[policy] for _ in range(n)] if cfg.method in methods.POINTWISE else [[] for _ in range(n)]
    return authors, judges


def make_plan(cfg: Config, iteration: int, ratings: Ratings, used_ids: set[str], policy: int | None = None,
              instructions: list | None = None) -> Plan:
    if instructions is None:
        instructions = load_instructions(cfg.instructions)
    same = cfg.instructions.each_iteration == "same"  # every iteration: iteration 0's draw
    used = np.array([it.id in used_ids and not same for it in instructions], dtype=bool)
    n = cfg.tribe.duels_per_iteration
    picked = draw_instructions(len(instructions), n, used, cfg.tribe.seed, 0 if same else iteration)
    authors, judges = answering(cfg, ratings, n, iteration, policy)
    groups = cfg.base_groups()
    per_shard = {"generate": cfg.generate.duels_per_shard, "judge": cfg.judge.duels_per_shard}
    if cfg.method == "sppo":  # one preference model compares each instruction's answers
        judge_tasks = [[0, k] for k in range(-(-n // per_shard["judge"]))]
    else:
        judge_tasks = shard_tasks(judges, groups, per_shard["judge"])
    return Plan({
        "iteration": iteration,
        "method": cfg.method,
        "members": cfg.member_names(),
        "groups": groups,
        "instructions": [{"index": int(i), "id": instructions[i].id, "text": instructions[i].text,
                          "reference": instructions[i].reference} for i in picked],
        "authors": authors,  # (n, S): who answers each of an instruction's S slots (SPARTA: the duel)
        "judges": judges,  # who scores each answer of an instruction, 1..10
        # recorded here so that every task of the iteration reads the same shard layout
        "duels_per_shard": per_shard,
        "generate_tasks": shard_tasks(authors, groups, per_shard["generate"]),
        "judge_tasks": judge_tasks,
    })


def run(cfg: Config, paths: RunPaths, iteration: int) -> dict | None:
    """Write the iteration's plan; returns the pool's decontamination record (None: planned already)."""
    if paths.is_done(iteration, "plan"):
        return None
    if iteration == 0 and not paths.ratings(0).exists():
        atomic_write_json(paths.ratings(0), ratings_to_json(cfg.member_names(), initial_ratings(cfg)))
    check_file(paths, paths.ratings(iteration))
    names, ratings = load_ratings(paths.ratings(iteration))
    if names != cfg.member_names():
        raise RuntimeError(f"{paths.ratings(iteration)} lists members {names}, the config {cfg.member_names()}")
    used = {row["id"] for t in range(iteration) for row in read_checked_json(paths, paths.plan(t))["instructions"]}
    # against the eval tasks of this moment (a resume may change eval.*); the plan records the counts
    instructions, pool = decontaminate(cfg, load_instructions(cfg.instructions))
    for line in report_lines(pool) if pool.get("split") else []:  # checked against some evaluation task
        log.info("iteration %d: %s", iteration, line)
    plan = make_plan(cfg, iteration, ratings, used, methods.policy(cfg, paths), instructions)
    plan["decontaminated"] = pool
    atomic_write_json(paths.plan(iteration), plan)
    marker = paths.marker(iteration, "plan")
    record_files(paths, iteration, "plan", marker,
                 [paths.plan(iteration)] + ([paths.ratings(0)] if iteration == 0 else []))
    mark_done(marker)
    log.info("iteration %d (%s): planned %d instructions x %d answers, %d generate and %d judge tasks", iteration,
             cfg.method, len(plan["authors"]), len(plan["authors"][0]) if plan["authors"] else 0,
             len(plan.tasks("generate")), len(plan.tasks("judge")))
    return pool
