"""The single-model baselines' pair builders, pure functions on the archive's arrays.

Each returns index tuples (instruction c, chosen, rejected, ...) that
`sparta_hpc.methods.rows` turns into TRL rows; a pair needs a strict
preference: ties and missing scores give none.
"""

from __future__ import annotations

import numpy as np


def best_vs_worst(scores: np.ndarray) -> list[tuple[int, int, int, float, float]]:
    """Self-Rewarding (Yuan et al. 2024): per instruction, the response the model scored highest vs
    the one it scored lowest. `scores` (n, S), NaN where the model gave no score; instructions with
    fewer than two scores, or whose best and worst tie, give no pair. Ties between several best
    (or worst) responses go to the lowest index (a fixed, seed-free rule)."""
    pairs = []
    for c, row in enumerate(np.asarray(scores, float)):
        valid = np.flatnonzero(~np.isnan(row))
        if len(valid) < 2:
            continue
        best = valid[np.argmax(row[valid])]
        worst = valid[np.argmin(row[valid])]
        if row[best] > row[worst]:
            pairs.append((c, int(best), int(worst), float(row[best]), float(row[worst])))
    return pairs


def length_controlled(scores: np.ndarray, lengths: np.ndarray, rho: float) -> list[tuple[int, int, int, float, float]]:
    """Meta-Rewarding's length control (Wu et al. 2024, "length-control"): the chosen response is the
    shortest one whose score lies in the top tier [(1 - rho) S_max + rho S_min, S_max], the rejected one
    the lowest scored (the longest of those, on a tie). rho 0: best vs worst, the shortest of the best on
    a tie. `lengths` (n, S): the responses' lengths in words. Instructions whose scores all tie give no
    pair, as in best_vs_worst."""
    pairs = []
    for c, row in enumerate(np.asarray(scores, float)):
        valid = np.flatnonzero(~np.isnan(row))
        if len(valid) < 2:
            continue
        high, low = row[valid].max(), row[valid].min()
        if high == low:
            continue
        tier = [int(s) for s in valid if row[s] >= (1 - rho) * high + rho * low]
        chosen = min(tier, key=lambda s: (lengths[c][s], s))
        rejected = max((int(s) for s in valid if row[s] == low), key=lambda s: (lengths[c][s], -s))
        if row[chosen] > row[rejected]:
            pairs.append((c, chosen, rejected, float(row[chosen]), float(row[rejected])))
    return pairs


def judge_pairs(judge_scores: np.ndarray, meta_rounds: np.ndarray, p_first_better: np.ndarray):
    """Meta-Rewarding (Wu et al. 2024): the judge's own judgments become pairs too.

    For each response (c, s) the model judged in R rounds; its two most different
    judgments (rounds meta_rounds[c, s] = [hi, lo]) were compared by the model as a
    meta-judge, in both orders: `p_first_better[c, s]` is its probability that
    judgment `hi` is the better one. A judgment pair is (c, s, chosen round, rejected
    round, p) when the meta-judge prefers one side (p != 0.5); none where no two
    judgments differed (meta_rounds = -1)."""
    pairs = []
    n, S = meta_rounds.shape[:2]
    for c in range(n):
        for s in range(S):
            hi, lo = (int(x) for x in meta_rounds[c, s])
            p = float(p_first_better[c, s])
            if hi < 0 or np.isnan(p) or p == 0.5:
                continue
            chosen, rejected = (hi, lo) if p > 0.5 else (lo, hi)
            pairs.append((c, s, chosen, rejected, max(p, 1 - p)))
    return pairs


def meta_candidates(judge_scores: np.ndarray) -> np.ndarray:
    """For each response (c, s): the rounds [highest, lowest] of its judgments (n, S, R) whose
    parsed scores differ, else [-1, -1]: only disagreeing judgments are worth a meta-judgment."""
    judge_scores = np.asarray(judge_scores, float)
    n, S, _ = judge_scores.shape
    out = np.full((n, S, 2), -1, dtype=np.int64)
    for c in range(n):
        for s in range(S):
            row = judge_scores[c, s]
            valid = np.flatnonzero(~np.isnan(row))
            if len(valid) >= 2 and row[valid].max() > row[valid].min():
                out[c, s] = [valid[np.argmax(row[valid])], valid[np.argmin(row[valid])]]
    return out


def win_rates(prob: np.ndarray) -> np.ndarray:
    """SPPO: each response's estimated win rate against the model's others, mean over j != i of
    P(i beats j) (`prob` (n, S, S), the preference model's probabilities, diagonal ignored)."""
    prob = np.asarray(prob, float)
    S = prob.shape[1]
    off = ~np.eye(S, dtype=bool)
    return np.array([row[off].reshape(S, S - 1).mean(axis=1) for row in prob])


def sppo_pairs(prob: np.ndarray) -> list[tuple[int, int, int, float, float]]:
    """SPPO: per instruction, the response with the highest win rate
    vs the one with the lowest, with their win rates; equal win rates give no pair."""
    return best_vs_worst(win_rates(prob))


def symmetric_preference(p_first: np.ndarray) -> np.ndarray:
    """P(i beats j) from the judge's P(first wins) for both orders (i first, j first), which cancels
    its position bias: (p_first[i, j] + 1 - p_first[j, i]) / 2. `p_first` (n, S, S)."""
    p_first = np.asarray(p_first, float)
    return (p_first + 1 - np.swapaxes(p_first, 1, 2)) / 2


def spin_pairs(references: list[str], samples: list[str]) -> list[int]:
    """SPIN (Chen et al. 2024): the instructions whose reference answer becomes the chosen and the
    model's own sample the rejected response; none where the sample already is the reference."""
    return [c for c, (ref, own) in enumerate(zip(references, samples, strict=True))
            if ref.strip() and " ".join(ref.split()) != " ".join(own.split())]
