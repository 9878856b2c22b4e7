"""Plan: the iteration's instructions, duels and the shards of the array jobs (SPEC 1.1-1.2).

Runs in the driver (it is cheap and needs no model). Output: RUN/iter_t/plan.json.
"""

from __future__ import annotations

import logging

import numpy as np

from ..algorithm.matchmaking import draw_instructions, make_duels
from ..algorithm.reputation import Ratings
from ..config import Config
from ..instructions import load_instructions
from ..io_utils import atomic_write_json, mark_done, read_json
from ..paths import RunPaths
from ..ratings_file import load_ratings, ratings_to_json

log = logging.getLogger(__name__)


def initial_ratings(cfg: Config) -> Ratings:
    start = [m.initial_rating or cfg.reputation.initial_rating for m in cfg.members]
    return Ratings.initial(len(cfg.members), cfg.reputation, start)


def shard_tasks(duels: np.ndarray, groups: list[list[int]], per_shard: int, as_judge: bool) -> list[list[int]]:
    """[group, shard] array tasks that have work: a group generates for its duelists, judges the others' duels."""
    tasks = []
    for k in range(-(-len(duels) // per_shard)):
        rows = duels[k * per_shard:(k + 1) * per_shard]
        for g, members in enumerate(groups):
            if as_judge:
                busy = any(j not in pair for pair in rows.tolist() for j in members)
            else:
                busy = bool(np.isin(rows, members).any())
            if busy:
                tasks.append([g, k])
    return tasks


def make_plan(cfg: Config, iteration: int, ratings: Ratings, used_ids: set[str]) -> dict:
    instructions = load_instructions(cfg.instructions)
    used = np.array([it.id in used_ids for it in instructions])
    n = cfg.tribe.duels_per_iteration
    picked = draw_instructions(len(instructions), n, used, cfg.tribe.seed, iteration)
    duels = make_duels(ratings.rating, n, cfg.matchmaking, cfg.tribe.seed, iteration)
    groups = cfg.base_groups()
    return {
        "iteration": iteration,
        "members": cfg.member_names(),
        "groups": groups,
        "instructions": [{"index": int(i), "id": instructions[i].id, "text": instructions[i].text,
                          "reference": instructions[i].reference} for i in picked],
        "duels": duels.tolist(),
        # recorded here so that every task of the iteration reads the same shard layout
        "duels_per_shard": {"generate": cfg.generate.duels_per_shard, "judge": cfg.judge.duels_per_shard},
        "generate_tasks": shard_tasks(duels, groups, cfg.generate.duels_per_shard, as_judge=False),
        "judge_tasks": shard_tasks(duels, groups, cfg.judge.duels_per_shard, as_judge=True),
    }


def run(cfg: Config, paths: RunPaths, iteration: int) -> None:
    if paths.is_done(iteration, "plan"):
        return
    if iteration == 0 and not paths.ratings(0).exists():
        atomic_write_json(paths.ratings(0), ratings_to_json(cfg.member_names(), initial_ratings(cfg)))
    names, ratings = load_ratings(paths.ratings(iteration))
    if names != cfg.member_names():
        raise RuntimeError(f"{paths.ratings(iteration)} lists members {names}, the config {cfg.member_names()}")
    used = {row["id"] for t in range(iteration) for row in read_json(paths.plan(t))["instructions"]}
    plan = make_plan(cfg, iteration, ratings, used)
    atomic_write_json(paths.plan(iteration), plan)
    mark_done(paths.marker(iteration, "plan"))
    log.info("iteration %d: planned %d duels, %d generate and %d judge tasks", iteration, len(plan["duels"]),
             len(plan["generate_tasks"]), len(plan["judge_tasks"]))
