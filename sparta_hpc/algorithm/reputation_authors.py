"""The authors' own rating code, as their pipeline ran it (`reputation.variant: authors`).

This project follows SPEC 1.5-1.7 (`reputation.py`). The authors' code
(github.com/yurujiang2003/sparta: `src1/rating_system.py`, called by
`src1/competition.py` once per duel) departs from it in four ways, which this
module reproduces for those who must match their numbers:

(a) sigma is recomputed after *every* duel from the member's last W changes
    (their `update_ratings_from_judges` handles one duel and ends with the
    deviation update), not once per iteration; with W=10 and changes of a few
    hundredths it sits at sigma_min, so ratings move 4-5x slower;
(b) a judge that lacks a score for either response counts 5 for *both* and
    keeps its weight (their `judge.py` turns a failed round into [5, 5] and a
    judge without a good round into ave_scores [5, 5]); so every duel updates,
    and one whose judges all failed appends a change of 0 to both histories;
(c) within a duel the first duelist is updated first and the second duelist's
    update reads the first one's *new* rating;
(d) the change history starts empty every iteration (`competition.py` loads
    `rating_deltas.json`, which nothing writes), while sigma carries over in
    `model_info.json`.

`reputation.authors_static` adds the "static" class their `run_pipeline.sh`
selects (`RatingSystemStaticWeighted`), see `static_multipliers`.

Every floating-point operation is done in their order (sums over judges in
member order, Phi(z) - Phi(-z) as a difference of two CDF values, np.std), so
on the same duels the ratings agree with theirs to the last bit, not merely
to rounding. Their floor (10), and in the static class d, D, scale and
sigma_min, are literals; here they are the configured values, equal to theirs
at the defaults.
"""

from __future__ import annotations

import math
from operator import mul
from typing import Sequence

import numpy as np

from .reputation import Ratings, ReputationConfig, judge_weights, ratings_before_each_duel

FAILED_JUDGE_SCORE = 5.0  # (b)
STATIC_PICKS_UNTIL = 7  # their static weights are fixed from iteration 7 on (iteration >= 8 reloads 7's)
STATIC_STEP = 0.1  # the k-th member picked (k = 0, 1, ...) gets multiplier 0.1 * k


def judged_scores(duels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(b): (filled (n, M, 2), judges (n, M)).

    Every member other than the duelists judges; a judge missing either score
    scores 5 for both. The duelists' entries are 0, so that terms over all
    members (in member order, as their dict of judges is) add exactly nothing.
    """
    rows = np.arange(len(duels))
    judges = np.ones(scores.shape[:2], dtype=bool)
    judges[rows, duels[:, 0]] = False
    judges[rows, duels[:, 1]] = False
    failed = np.isnan(scores).any(axis=2)
    filled = np.where(failed[:, :, None], FAILED_JUDGE_SCORE, scores)
    filled[~judges] = 0.0
    return filled, judges


def weighted_in_order(filled: np.ndarray, judges: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n, 2) weighted mean scores over each duel's judges, NaN if none.

    Summed judge by judge in member order like their `select_preference_response`,
    so a tie there is a tie here (einsum's order could break it by one ulp).
    weights: (M,) or one row per duel (n, M).
    """
    w = np.broadcast_to(weights, judges.shape) * judges
    summed, total = np.zeros((len(judges), 2)), np.zeros(len(judges))
    for j in range(judges.shape[1]):
        summed += w[:, j, None] * filled[:, j]
        total += w[:, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = summed / total[:, None]
    out[total == 0] = np.nan
    return out


def static_multipliers(iteration: int, ratings_after: Sequence[np.ndarray], n_members: int) -> np.ndarray:
    """Their static class's per-member multipliers of the duelists' own scores at iteration t.

    `_calculate_static_weights`: for k = 1 .. min(t, 7) - 1, the member with the
    lowest rating at the end of iteration k, among those not picked before
    (ties: member order, Python's stable sort), is picked; the i-th pick gets
    0.1 * i (0.0, 0.1, 0.2, ...), everyone else 1.0. So iterations 0 and 1 use
    1.0 throughout and from iteration 7 on the picks of iterations 1..6 stay.
    ratings_after[k]: the ratings at the end of iteration k.
    """
    last = min(iteration, STATIC_PICKS_UNTIL) - 1
    if last >= 1 and len(ratings_after) <= last:
        raise ValueError(f"reputation.authors_static at iteration {iteration} needs the ratings at the end of "
                         f"iterations 1..{last}; got {len(ratings_after)} earlier iterations")
    multipliers = np.ones(n_members)
    picked: list[int] = []
    for k in range(1, last + 1):
        remaining = [i for i in range(n_members) if i not in picked]
        if not remaining:
            break
        lowest = min(remaining, key=lambda i: ratings_after[k][i])
        multipliers[lowest] = STATIC_STEP * len(picked)
        picked.append(lowest)
    return multipliers


def _certainty(r_self: float, r_other: float, dev_self: float, dev_other: float, eps: float) -> float:
    """max(|Phi(z) - Phi(-z)|, eps) as their code computes it: two CDF values subtracted."""
    spread = math.sqrt(2) * math.sqrt(dev_self ** 2 + dev_other ** 2)
    forward = 0.5 * (1 + math.erf((r_self - r_other) / spread))
    backward = 0.5 * (1 + math.erf((r_other - r_self) / spread))
    return max(abs(forward - backward), eps)


def _deviation(kept: list[float], min_deviation: float) -> float:
    """(a)'s max(np.std(kept), sigma_min), bit for bit as theirs, at a fraction of np.std's cost.

    (a) pins sigma at sigma_min for most updates. A plain two-pass std differs
    from np.std only in summation order (a few ulps of max|x|), so where it is
    clearly below sigma_min the answer is sigma_min either way; np.std itself
    is called only where its last bits can matter.
    """
    mean = sum(kept) / len(kept)
    spread = [x - mean for x in kept]
    rough = math.sqrt(sum(map(mul, spread, spread)) / len(kept))
    if rough + 1e-9 * (min_deviation + max(map(abs, kept))) < min_deviation:
        return min_deviation
    return max(float(np.std(kept)), min_deviation)


def update_ratings_authors(start: Ratings, duels: np.ndarray, filled: np.ndarray, judges: np.ndarray,
                           cfg: ReputationConfig, multipliers: np.ndarray | None = None
                           ) -> tuple[Ratings, np.ndarray, np.ndarray]:
    """Their per-duel update over the duels in plan order, on `judged_scores`' output.

    Returns the ratings after the iteration, the weighted scores each update
    used (static multipliers included) and each duelist's actual change.
    """
    n, m = len(duels), len(start.rating)
    if multipliers is not None:  # static: score_a *= w[a], score_b *= w[b] for every judge
        filled = filled * np.stack([multipliers[duels[:, 0]], multipliers[duels[:, 1]]], axis=1)[:, None, :]
    gaps = (filled[:, :, 0] - filled[:, :, 1]).tolist()
    judge_rows = judges.astype(float).tolist()
    has_judge = judges.any(axis=1).tolist()

    rating = start.rating.astype(float).tolist()
    deviation = start.deviation.astype(float).tolist()  # (d): sigma carries over ...
    history: list[list[float]] = [[] for _ in range(m)]  # (d): ... the history does not
    by_reputation = cfg.weighting == "reputation"
    weights = rating if by_reputation else [1.0] * m  # the same list: judges weigh in at their current rating
    eps, scale, floor, window = cfg.epsilon, cfg.scaling_factor, cfg.floor, cfg.window_size
    changes = np.zeros((n, 2))
    pairs = duels.tolist()

    for c in range(n):
        # K counts every duel (their update_count grows on every call)
        k = max(cfg.min_k, cfg.initial_k * cfg.decay_rate ** ((c + 1) / cfg.decay_steps))
        if not has_judge[c]:
            continue  # fewer than 3 members: their `denominator == 0`, nothing happens
        a, b = pairs[c]
        # (b): every member but a and b judges, a failed one at 5-5 with its full weight
        diff = sum(map(mul, weights, gaps[c])) / sum(map(mul, weights, judge_rows[c]))
        r_a, r_b, dev_a, dev_b = rating[a], rating[b], deviation[a], deviation[b]
        step_a = k * diff * math.tanh(dev_a) * _certainty(r_a, r_b, dev_a, dev_b, eps)
        new_a = max(floor, r_a + step_a / scale)
        rating[a] = new_a
        # (c): b's update reads a's new rating
        step_b = k * -diff * math.tanh(dev_b) * _certainty(r_b, new_a, dev_b, dev_a, eps)
        new_b = max(floor, r_b + step_b / scale)
        rating[b] = new_b
        changes[c] = new_a - r_a, new_b - r_b
        # (a): sigma after every duel, from the last W changes (population std, as np.std)
        for member, change in ((a, new_a - r_a), (b, new_b - r_b)):
            kept = history[member]
            kept.append(change)
            del kept[:-window]
            if len(kept) >= 2:
                deviation[member] = _deviation(kept, cfg.min_deviation)

    end = Ratings(np.array(rating), np.array(deviation), history)
    before = ratings_before_each_duel(start.rating, duels, changes) if by_reputation else np.ones(m)
    return end, weighted_in_order(filled, judges, before), changes


def run_authors(start: Ratings, duels: np.ndarray, scores: np.ndarray, cfg: ReputationConfig,
                iteration: int | None, ratings_after: Sequence[np.ndarray]
                ) -> tuple[Ratings, np.ndarray, np.ndarray, np.ndarray]:
    """(ratings after, update scores, changes, end-of-iteration scores) of the authors' variant."""
    multipliers = None
    if cfg.authors_static:
        if iteration is None:
            raise ValueError("reputation.authors_static needs the iteration number and the ratings at the "
                             "end of the earlier iterations (run_iteration(..., iteration=, ratings_after=))")
        multipliers = static_multipliers(iteration, ratings_after, len(start.rating))
    filled, judges = judged_scores(duels, scores)
    if cfg.frozen:  # their freeze_ratings: the update returns at once; weights stay at the start values
        used = weighted_in_order(filled, judges, judge_weights(start.rating, cfg))
        return start.copy(), used, np.zeros((len(duels), 2)), used
    end, used, changes = update_ratings_authors(start, duels, filled, judges, cfg, multipliers)
    # Their preference pairs use the plain scores (no static multipliers), (b)'s 5s included.
    return end, used, changes, weighted_in_order(filled, judges, judge_weights(end.rating, cfg))
