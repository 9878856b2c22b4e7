"""`sparta-hpc suite plan`: every run of a suite with its run directory, overrides, jobs and cost.

Nothing is submitted or written. The cost is sparta_hpc.report.cost's (tokens per stage, DPO steps,
evaluation items, GPU-hours, disk), for each run and summed over the suite; it needs neither
the models nor the data (assumed sizes stand in, and it says so).
"""

from __future__ import annotations

import math
from collections import Counter

from ...config.checks import validate
from ...config.schema import Config
from ...errors import ConfigError
from ...eval import plan as eval_plan
from .spec import Run, Suite

try:  # the cost model is a module of its own; a checkout without it still plans
    from ...report import cost
except ImportError:  # pragma: no cover - only before sparta_hpc.report.cost exists
    cost = None


def jobs_line(cfg: Config) -> str:
    """The jobs of one iteration and of one evaluation point, as the driver will submit them."""
    groups = len(cfg.base_groups()) if cfg.method == "sparta" else 1
    n = cfg.tribe.duels_per_iteration
    gen = groups * math.ceil(n / cfg.generate.duels_per_shard)
    judge = groups * math.ceil(n / cfg.judge.duels_per_shard)
    train = len(cfg.members) if cfg.method == "sparta" else 1
    points = eval_plan.eval_points(cfg)
    evaluation = (f"; {len(points)} evaluation point(s), each: evaluate array ({groups} group(s) x "
                  f"{len(cfg.eval.tasks)} task(s) x shards of {cfg.eval.items_per_shard}), rate array where "
                  "rated, 1 score job") if points else "; no evaluation"
    return (f"{cfg.tribe.iterations} iteration(s), each: generate array {gen}, judge array {judge}, gather 1, "
            f"aggregate 1, train {train} (~{gen + judge + 2 + train} jobs)" + evaluation)


def run_cost(cfg: Config) -> dict | None:
    if cost is None:
        return None
    return cost.run_cost(cfg)


def totals(figures: dict | None) -> dict[str, float]:
    """The whole run's tokens (by kind) and GPU-hours, from cost.run_cost's `total`."""
    total = (figures or {}).get("total", {})
    return {k: v for k, v in total.items() if isinstance(v, (int, float)) and (k.endswith("tokens")
                                                                               or k == "gpu_hours")}


def _count(x: float) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.1f} {unit}"
    return f"{x:.0f}"


def check(run: Run) -> str | None:
    """What the driver would refuse before starting (missing models, data), without loading a model."""
    if run.error:
        return run.error
    try:
        validate(run.cfg)
    except ConfigError as err:
        return str(err)
    return None


def render(suite: Suite, runs: list[Run]) -> str:
    table_runs = [r for r in runs if not r.entry.ablation]
    lines = [f"suite {suite.path}: {len(runs)} run(s) = {len(suite.tasks)} task(s) x "
             f"{len({r.entry.name for r in table_runs})} method(s)"
             + (f" + {len(suite.ablation_tasks)} task(s) x {len({r.entry.name for r in runs if r.entry.ablation})}"
                " ablation(s)" if len(runs) > len(table_runs) else ""),
             f"run directories under {suite.dir}; data {suite.data} (<task>/train.jsonl, eval/)", ""]
    for what, folder in (("data folder", suite.data), ("suite directory", suite.dir)):
        if "$" in str(folder):
            lines.insert(1, f"warning: the {what} {folder} names a variable that is not set")
    sums: Counter = Counter()
    refused: Counter = Counter()
    for run in runs:
        lines.append(f"{run.name}  ({run.entry.name} on {run.task}{', ablation' if run.entry.ablation else ''})")
        lines.append(f"  run dir   {run.dir}")
        lines.append(f"  config    {run.entry.config} " + " ".join(run.overrides[1:]))
        if run.waits_on:
            chosen = (f"BEST INIT is {run.member}" if run.member else "BEST INIT not chosen yet: submitted once "
                      "it is, with baseline.member=<BEST INIT> eval.initial=false")
            lines.append(f"  waits on  {run.waits_on} (its initial evaluation chooses BEST INIT: "
                         f"baseline.member); {chosen}")
        if run.cfg is None:
            lines.append(f"  REFUSED   {run.error}")
            continue
        lines.append(f"  jobs      {jobs_line(run.cfg)}")
        figures = run_cost(run.cfg)
        if figures is None:
            lines.append("  cost      (sparta_hpc.report.cost is not available in this checkout)")
        else:
            lines += ["  " + x for x in cost.cost_lines(run.cfg)] if hasattr(cost, "cost_lines") else []
            sums.update(totals(figures))
        problem = check(run)
        if problem:
            refused[problem.splitlines()[0]] += 1
    lines.append("")
    if sums:
        gpu = sums.pop("gpu_hours", 0.0)
        lines.append(f"suite total: {len(runs)} runs, " + ", ".join(f"{_count(v)} {k.replace('_', ' ')}"
                                                                    for k, v in sorted(sums.items()))
                     + f", {gpu:,.{0 if gpu >= 100 else 2}f} GPU-hours")
    else:
        lines.append(f"suite total: {len(runs)} runs (no cost figures: sparta_hpc.report.cost is not available)")
    for problem, n in refused.most_common():
        lines.append(f"warning: {n} run(s) would be refused as configured now: {problem}")
    return "\n".join(lines)
