"""Throughput of the reputation update (SPEC 1.5-1.7): dict baseline, pure-Python loop, numba kernel.

    .venv/bin/python bench/bench_reputation.py [--duels 100000 --judges 10,98]

For each tribe (judges per duel + the 2 duelists) and weighting, three implementations run on the
same synthetic judgments in one process:

- per-duel dicts: the spec written out duel by duel with dicts keyed by member name, as one would
  write it first (the loop alone: building its dicts is not timed);
- python: `run_iteration(..., fast=False)`, the pure-Python loop of `reputation.update_ratings`;
- numba: `run_iteration(..., fast=True)`, the compiled loop of `reputation_fast.py`.

Both sparta_hpc rows time the whole iteration (input checks, update, end-of-iteration scores,
preference pairs), so they include more than the baseline does. Ratings and deviations must agree
with the baseline to 1e-9. numba's import and cache load (or compile) time is measured first, on
a tiny input, and reported apart, and once more in a child process with an empty numba cache (the
first compile after an install). The last lines per tribe time `reputation.variant: authors`
(no baseline: it is checked against the authors' code itself, see docs/algorithm.md) and the
compiled path's steps one by one. Each time is the best of --repeat runs.
Output: bench/results/bench_reputation.txt.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from record import recorded  # bench/record.py: a script's own folder is on sys.path

from sparta_hpc.algorithm import reputation_fast
from sparta_hpc.algorithm.reputation import Ratings, ReputationConfig
from sparta_hpc.algorithm.variants import run_iteration


def baseline(names, rating, deviation, history, duels, judgments, cfg):
    """Per-duel, dict-based: judgments[c] = {judge_name: (s_a, s_b) or None}."""
    rating, history = dict(rating), {n: list(h) for n, h in history.items()}
    changes = {n: [] for n in names}
    phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    for c, ((a, b), scores) in enumerate(zip(duels, judgments), start=1):
        valid = {j: s for j, s in scores.items() if s is not None and None not in s}
        if not valid:
            continue
        if cfg.weighting == "reputation":
            weights = {j: rating[j] for j in valid}
        else:
            weights = {j: 1.0 for j in valid}
        total = sum(weights.values())
        s_a = sum(weights[j] * valid[j][0] for j in valid) / total
        s_b = sum(weights[j] * valid[j][1] for j in valid) / total
        k = max(cfg.min_k, cfg.initial_k * cfg.decay_rate ** (c / cfg.decay_steps))
        delta = s_a - s_b
        z = (rating[a] - rating[b]) / math.sqrt(deviation[a] ** 2 + deviation[b] ** 2)
        u = max(abs(phi(z) - phi(-z)), cfg.epsilon)
        new_a = max(cfg.floor, rating[a] + k * delta * math.tanh(deviation[a]) * u / cfg.scaling_factor)
        new_b = max(cfg.floor, rating[b] + k * -delta * math.tanh(deviation[b]) * u / cfg.scaling_factor)
        changes[a].append(new_a - rating[a])
        changes[b].append(new_b - rating[b])
        rating[a], rating[b] = new_a, new_b
    deviation = dict(deviation)
    for n in names:
        if changes[n]:
            history[n] = (history[n] + changes[n])[-cfg.window_size:]
            if len(history[n]) >= 2:
                deviation[n] = max(statistics.pstdev(history[n]), cfg.min_deviation)
    return rating, deviation


def synthetic(n_duels: int, n_judges: int, seed: int):
    m = n_judges + 2
    rng = np.random.default_rng(seed)
    duels = np.stack([rng.integers(0, m, n_duels), np.zeros(n_duels, dtype=np.int64)], axis=1)
    duels[:, 1] = (duels[:, 0] + rng.integers(1, m, n_duels)) % m
    scores = rng.integers(1, 11, size=(n_duels, m, 2)).astype(float)
    scores[rng.random((n_duels, m, 2)) < 0.05] = np.nan  # some missing judgments
    rows = np.arange(n_duels)
    scores[rows, duels[:, 0]] = np.nan
    scores[rows, duels[:, 1]] = np.nan
    return m, duels, scores


def dict_judgments(names, duels, scores):
    """The baseline's input, built from plain lists (numpy calls per entry would take minutes)."""
    out = []
    for (a, b), row in zip(duels.tolist(), scores.tolist()):
        out.append({names[j]: (None if math.isnan(s[0]) or math.isnan(s[1]) else (s[0], s[1]))
                    for j, s in enumerate(row) if j != a and j != b})
    return out


def warm_up() -> str:
    """Import numba and compile (or load from its cache) the kernels; what it cost, in words."""
    t0 = time.perf_counter()
    kernels = reputation_fast.kernels()
    if kernels is None:
        return "numba is not installed: the 'numba' rows run the pure-Python loop (pip install numba)"
    imported = time.perf_counter() - t0
    scores = np.full((1, 3, 2), np.nan)
    scores[0, 2] = 7, 5
    t0 = time.perf_counter()
    run_iteration(Ratings.initial(3, ReputationConfig()), [[0, 1]], scores, ReputationConfig(), fast=True)
    first = time.perf_counter() - t0
    import numba

    hits = sum(sum(k.stats.cache_hits.values()) for k in kernels)
    how = "loaded from numba's cache" if hits == len(kernels) else "compiled"
    return (f"numba {numba.__version__}: import {imported:.2f} s, kernels {how} in {first:.2f} s "
            "(not included below)")


def cold_warm_up() -> str:
    """warm_up() in a child process whose numba cache is empty: what the first run after an install pays."""
    with tempfile.TemporaryDirectory() as cache:
        child = subprocess.run([sys.executable, __file__, "--warm-up-only"], capture_output=True, text=True,
                               env=dict(os.environ, NUMBA_CACHE_DIR=cache), check=True)
    return f"with an empty cache (NUMBA_CACHE_DIR): {child.stdout.strip()}"


def timed(fn, repeat: int = 1):
    """(the last result, the best time of `repeat` runs): the machine's other load only adds time."""
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def where_time_goes(start, duels, scores, cfg, repeat: int) -> str:
    """The compiled path's steps, timed one by one: what is left once the loop is compiled."""
    from sparta_hpc.algorithm.reputation import append_history, check_inputs, k_factors, preference_pairs

    indptr, judge, s_a, s_b = reputation_fast.sparse_judges(scores)
    update, weighted = reputation_fast.kernels()
    n = len(duels)
    changes, used, final = np.zeros((n, 2)), np.empty((n, 2)), np.empty((n, 2))
    args = (np.tanh(start.deviation), start.deviation ** 2, k_factors(n, cfg), True,
            cfg.epsilon, cfg.scaling_factor, cfg.floor, changes, used)
    steps = {
        "input checks": lambda: check_inputs(duels, scores, start.rating),
        "CSR lists": lambda: reputation_fast.sparse_judges(scores),
        "update kernel": lambda: update(duels, indptr, judge, s_a, s_b, start.rating.copy(), *args),
        "end scores kernel": lambda: weighted(indptr, judge, s_a, s_b, start.rating, final),
        "histories, sigma": lambda: append_history(start.copy(), duels, np.diff(indptr) > 0, changes, cfg),
        "preference pairs": lambda: preference_pairs(duels, final),
    }
    return ", ".join(f"{name} {timed(fn, repeat)[1]:.3f} s" for name, fn in steps.items())


def bench_tribe(n_duels: int, n_judges: int, seed: int, has_numba: bool, repeat: int) -> None:
    m, duels, scores = synthetic(n_duels, n_judges, seed)
    names = [f"m{i}" for i in range(m)]
    start = Ratings(np.linspace(60, 140, m), np.full(m, 0.5), [[] for _ in range(m)])
    judgments = dict_judgments(names, duels, scores)
    pairs = [(names[a], names[b]) for a, b in duels.tolist()]
    print(f"\n{n_duels:,} duels, {m} members ({n_judges} judges per duel), 5% of judgments missing")
    print(f"  {'weighting':10s}  {'implementation':16s}  {'duels/s':>10s}  {'seconds':>7s}  {'vs dicts':>8s}  "
          f"{'vs python':>9s}")
    for weighting in ("reputation", "uniform"):
        cfg = ReputationConfig(weighting=weighting)
        (ref_rating, ref_dev), slow = timed(lambda: baseline(
            names, dict(zip(names, start.rating.tolist())), dict(zip(names, start.deviation.tolist())),
            {n: [] for n in names}, pairs, judgments, cfg), repeat)
        rows = [("per-duel dicts", slow)]
        python, took = timed(lambda: run_iteration(start, duels, scores, cfg, fast=False), repeat)
        rows.append(("python", took))
        results = [python]
        if has_numba:
            fast, took = timed(lambda: run_iteration(start, duels, scores, cfg, fast=True), repeat)
            rows.append(("numba", took))
            results.append(fast)
        for result in results:
            np.testing.assert_allclose(result.ratings.rating, [ref_rating[n] for n in names], rtol=0, atol=1e-9)
            np.testing.assert_allclose(result.ratings.deviation, [ref_dev[n] for n in names], rtol=0, atol=1e-9)
        for name, took in rows:
            print(f"  {weighting:10s}  {name:16s}  {n_duels / took:10,.0f}  {took:7.2f}  x{slow / took:7.1f}  "
                  f"x{rows[1][1] / took:8.1f}")
    _, took = timed(lambda: run_iteration(start, duels, scores, ReputationConfig(variant="authors")), repeat)
    print(f"  {'reputation':10s}  {'variant=authors':16s}  {n_duels / took:10,.0f}  {took:7.2f}")
    print("  ratings and deviations agree with the dict baseline to 1e-9")
    if has_numba:
        print("  numba path, reputation weighting, step by step: "
              + where_time_goes(start, duels, scores, ReputationConfig(), repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duels", type=int, default=100_000)
    parser.add_argument("--judges", default="10,98", help="judges per duel, one tribe each (M = judges + 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    parser.add_argument("--warm-up-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warm_up_only:  # the child of cold_warm_up
        print(warm_up())
        return
    with recorded("bench_reputation"):
        print(warm_up())
        if reputation_fast.kernels() is not None:
            print(cold_warm_up())
        print(f"times: the best of {args.repeat} runs")
        for n_judges in map(int, args.judges.split(",")):
            bench_tribe(args.duels, n_judges, args.seed, reputation_fast.kernels() is not None, args.repeat)


if __name__ == "__main__":
    main()
