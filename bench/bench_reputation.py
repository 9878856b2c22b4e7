"""Throughput of the reputation update (SPEC 1.5-1.7) against a straightforward version.

    .venv/bin/python bench/bench_reputation.py [--duels 100000 --judges 10]

The baseline below is the spec written out duel by duel with dicts keyed by
member name, as one would write it first; both are run on the same synthetic
judgments in the same process and must agree to 1e-9. The last line times
`reputation.variant: authors` on the same judgments (no baseline: it is checked
against the authors' code itself, see docs/algorithm.md).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from sparta_hpc.algorithm.reputation import Ratings, ReputationConfig, run_iteration


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duels", type=int, default=100_000)
    parser.add_argument("--judges", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    m, duels, scores = synthetic(args.duels, args.judges, args.seed)
    names = [f"m{i}" for i in range(m)]
    start = Ratings(np.linspace(60, 140, m), np.full(m, 0.5), [[] for _ in range(m)])
    print(f"{args.duels} duels, {m} members ({args.judges} judges per duel), 5% of judgments missing")
    for weighting in ("reputation", "uniform"):
        cfg = ReputationConfig(weighting=weighting)
        t0 = time.perf_counter()
        result = run_iteration(start, duels, scores, cfg)
        fast = time.perf_counter() - t0

        judgments = [
            {names[j]: (None if np.isnan(scores[c, j]).any() else tuple(scores[c, j].tolist()))
             for j in range(m) if j not in duels[c]}
            for c in range(len(duels))
        ]
        pairs = [(names[a], names[b]) for a, b in duels.tolist()]
        t0 = time.perf_counter()
        ref_rating, ref_dev = baseline(
            names, dict(zip(names, start.rating.tolist())), dict(zip(names, start.deviation.tolist())),
            {n: [] for n in names}, pairs, judgments, cfg)
        slow = time.perf_counter() - t0

        np.testing.assert_allclose(result.ratings.rating, [ref_rating[n] for n in names], rtol=0, atol=1e-9)
        np.testing.assert_allclose(result.ratings.deviation, [ref_dev[n] for n in names], rtol=0, atol=1e-9)
        print(f"  weighting={weighting:10s}  sparta_hpc: {args.duels / fast:10,.0f} duels/s ({fast:.2f} s, "
              f"incl. preference pairs)   per-duel dicts: {args.duels / slow:10,.0f} duels/s ({slow:.2f} s)   "
              f"speed-up x{slow / fast:.1f}   ratings agree to 1e-9")
    t0 = time.perf_counter()
    run_iteration(start, duels, scores, ReputationConfig(variant="authors"))
    took = time.perf_counter() - t0
    print(f"  variant=authors       sparta_hpc: {args.duels / took:10,.0f} duels/s ({took:.2f} s, "
          f"incl. preference pairs)")


if __name__ == "__main__":
    main()
