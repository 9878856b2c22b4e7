"""Reputation-weighted scores, the reputation update and preference pairs (SPEC 1.5-1.7).

Inputs are arrays indexed by member number:

- duels: int array (n, 2), the duelists a and b of each duel in plan order;
- scores: float array (n, M, 2), scores[c, j] = judge j's score of a's and of
  b's response in duel c (already averaged over rounds), NaN where missing and
  always NaN for the duelists themselves.

The update is sequential by definition (each duel's judges are weighted by the
reputations of that moment), so it runs as one tight loop over plain Python
floats with everything that is constant within an iteration precomputed;
large problems (many duels x many judges) run the same loop compiled with numba
where it is installed (`reputation_fast.py`). `bench/bench_reputation.py`
compares both against a per-duel dict-based version.

`reputation.variant: authors` runs the authors' own rating code instead
(`reputation_authors.py`); `variants.run_iteration` picks the one configured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from operator import mul

import numpy as np

WEIGHTINGS = ("reputation", "uniform")
VARIANTS = ("spec", "authors")


@dataclass(frozen=True)
class ReputationConfig:
    """SPEC 1.6 parameters; defaults from the authors' code."""

    initial_rating: float = 100.0  # R_0
    initial_deviation: float = 0.5  # sigma_0
    initial_k: float = 10.0  # K_0
    min_k: float = 5.0  # K_min
    decay_rate: float = 0.9  # d
    decay_steps: float = 10.0  # D
    scaling_factor: float = 20.0  # scale
    epsilon: float = 0.01  # eps
    window_size: int = 10  # W
    min_deviation: float = 0.1  # sigma_min
    floor: float = 10.0  # R_floor
    weighting: str = "reputation"  # or "uniform" (the paper's ablation)
    variant: str = "spec"  # or "authors": the authors' rating code, docs/algorithm.md "Variants"
    authors_static: bool = False  # variant authors only: their "static" class (scaled-down duelist scores)
    frozen: bool = False  # ablation: ratings never change, judges keep their starting weights
    # the duelists judge their own duel too (their own answer included): the only possible
    # judges of a tribe of 2 (the paper's tribe-size ablation); SPEC: never
    duelists_judge: bool = False

    def validate(self) -> None:
        positive = ("initial_rating", "initial_deviation", "initial_k", "decay_steps",
                    "scaling_factor", "epsilon", "window_size", "min_deviation")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"reputation.{name} must be > 0, got {getattr(self, name)}")
        if self.min_k < 0:
            raise ValueError(f"reputation.min_k must be >= 0, got {self.min_k}")
        if not 0 < self.decay_rate <= 1:
            raise ValueError(f"reputation.decay_rate must be in (0, 1], got {self.decay_rate}")
        if not self.floor > 0:
            raise ValueError(f"reputation.floor must be > 0 (a judge's weight is its reputation), got {self.floor}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"reputation.weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"reputation.variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.authors_static and self.variant != "authors":
            raise ValueError("reputation.authors_static reproduces the authors' 'static' rating class and "
                             f"needs reputation.variant=authors (got {self.variant!r})")
        if self.duelists_judge and self.variant != "spec":
            raise ValueError("reputation.duelists_judge is a variant of the SPEC rules: use variant spec")
        if self.authors_static and self.frozen:
            raise ValueError("reputation.authors_static only changes the rating update, which "
                             "reputation.frozen switches off: set one of them, not both")


@dataclass
class Ratings:
    """Every member's reputation R, deviation sigma and recent rating changes."""

    rating: np.ndarray  # (M,) float
    deviation: np.ndarray  # (M,) float
    history: list[list[float]] = field(default_factory=list)

    @classmethod
    def initial(cls, n_members: int, cfg: ReputationConfig, ratings=None) -> "Ratings":
        rating = np.full(n_members, cfg.initial_rating) if ratings is None else np.array(ratings, float)
        return cls(rating, np.full(n_members, cfg.initial_deviation), [[] for _ in range(n_members)])

    def copy(self) -> "Ratings":
        return Ratings(self.rating.copy(), self.deviation.copy(), [list(h) for h in self.history])


@dataclass
class IterationResult:
    ratings: Ratings  # after the iteration
    update_scores: np.ndarray  # (n, 2) weighted scores used by the update, NaN: no valid judge
    final_scores: np.ndarray  # (n, 2) weighted scores at end-of-iteration reputations
    n_judges: np.ndarray  # (n,) valid judges per duel
    changes: np.ndarray  # (n, 2) actual rating change of a and b (after the floor)
    pairs: np.ndarray  # (p, 2) chosen, rejected member of each preference pair
    pair_duels: np.ndarray  # (p,) the duel each pair comes from
    pair_scores: np.ndarray  # (p, 2) weighted score of chosen and rejected


def k_factors(n: int, cfg: ReputationConfig) -> np.ndarray:
    """K for duel positions c = 1..n: max(K_min, K_0 * d ** (c / D))."""
    c = np.arange(1, n + 1, dtype=float)
    return np.maximum(cfg.min_k, cfg.initial_k * cfg.decay_rate ** (c / cfg.decay_steps))


def valid_judges(scores: np.ndarray) -> np.ndarray:
    """(n, M) mask: the judge gave both scores of the duel."""
    return ~np.isnan(scores).any(axis=2)


def weighted_scores(scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n, 2) weighted mean score of a and b over each duel's valid judges, NaN if none."""
    valid = valid_judges(scores)
    w = np.where(valid, weights, 0.0)  # weights: (M,) or per duel (n, M)
    total = w.sum(axis=1)
    summed = np.einsum("nj,njs->ns", w, np.where(valid[:, :, None], scores, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = summed / total[:, None]
    out[total == 0] = np.nan
    return out


def judge_weights(rating: np.ndarray, cfg: ReputationConfig) -> np.ndarray:
    return np.asarray(rating, float) if cfg.weighting == "reputation" else np.ones(len(rating))


def check_inputs(duels: np.ndarray, scores: np.ndarray, ratings: np.ndarray, duelists_judge: bool = False) -> None:
    n, n_members = len(duels), len(ratings)
    if duels.shape != (n, 2) or scores.shape != (n, n_members, 2):
        raise ValueError(f"duels {duels.shape} / scores {scores.shape} do not fit {n} duels of {n_members} members")
    if n and (duels.min() < 0 or duels.max() >= n_members or (duels[:, 0] == duels[:, 1]).any()):
        raise ValueError("duels must pair two different members")
    if not (ratings > 0).all():
        raise ValueError("reputations must be > 0: a judge's weight is its reputation")
    if ((scores < 1) | (scores > 10)).any():  # NaN compares False: missing scores pass
        raise ValueError("judge scores must lie in 1..10 (NaN for missing)")
    rows = np.arange(n)
    if duelists_judge:
        return
    if (~np.isnan(scores[rows, duels[:, 0]])).any() or (~np.isnan(scores[rows, duels[:, 1]])).any():
        raise ValueError("a duelist cannot judge its own duel (reputation.duelists_judge allows it)")


def update_ratings(
    start: Ratings, duels: np.ndarray, scores: np.ndarray, cfg: ReputationConfig
) -> tuple[Ratings, np.ndarray, np.ndarray, np.ndarray]:
    """Process the duels in plan order (SPEC 1.6).

    Returns the ratings after the iteration, the weighted scores each update
    used, the number of valid judges per duel and each duelist's actual change.
    """
    n, m = len(duels), len(start.rating)
    valid = valid_judges(scores)
    n_judges = valid.sum(axis=1)
    by_reputation = cfg.weighting == "reputation"
    # The loop needs only delta = s_a - s_b = (R . (S_a - S_b)) / (R . valid):
    # two dot products per duel over plain Python lists. numpy calls on
    # 10-element rows inside a sequential loop would cost more than they save.
    if by_reputation:
        gap = np.where(valid, scores[:, :, 0] - scores[:, :, 1], 0.0).tolist()
        # R . valid = sum(R) - R_a - R_b - (R of the judges that missed a score):
        # only those few judges need listing, per duel that has any.
        silent = ~valid
        silent[np.arange(n), duels[:, 0]] = False
        silent[np.arange(n), duels[:, 1]] = False
        silent[n_judges == 0] = False
        missing: dict[int, list[int]] = {}
        for c, j in zip(*(x.tolist() for x in np.nonzero(silent))):
            missing.setdefault(c, []).append(j)
    else:  # uniform weights never change: every delta is known up front
        fixed = weighted_scores(scores, np.ones(m))
        fixed_delta = (fixed[:, 0] - fixed[:, 1]).tolist()
    has_judge = (n_judges > 0).tolist()

    rating = start.rating.astype(float).tolist()
    tanh_dev = np.tanh(start.deviation).tolist()  # sigma is constant within an iteration
    dev_sq = (start.deviation ** 2).tolist()
    ks = k_factors(n, cfg).tolist()
    eps, scale, floor, root2 = cfg.epsilon, cfg.scaling_factor, cfg.floor, math.sqrt(2.0)
    changes = np.zeros((n, 2))
    change_a, change_b = [0.0] * n, [0.0] * n
    pairs = duels.tolist()

    for c in range(n):
        if not has_judge[c]:
            continue  # no valid judge: nothing changes, but c still counts
        a, b = pairs[c]
        r_a, r_b = rating[a], rating[b]
        if by_reputation:
            total = sum(rating) - r_a - r_b
            if c in missing:
                total -= sum(map(rating.__getitem__, missing[c]))
            delta = sum(map(mul, rating, gap[c])) / total
        else:
            delta = fixed_delta[c]
        z = (r_a - r_b) / math.sqrt(dev_sq[a] + dev_sq[b])
        u = max(abs(math.erf(z / root2)), eps)  # Phi(z) - Phi(-z) == erf(z / sqrt(2))
        step = ks[c] * delta * u / scale
        new_a = max(floor, r_a + step * tanh_dev[a])
        new_b = max(floor, r_b - step * tanh_dev[b])
        rating[a], rating[b] = new_a, new_b
        change_a[c], change_b[c] = new_a - r_a, new_b - r_b

    changes = np.stack([change_a, change_b], axis=1).reshape(n, 2)
    used_scores = (weighted_scores(scores, ratings_before_each_duel(start.rating, duels, changes))
                   if by_reputation else fixed)
    end = start.copy()
    end.rating = np.array(rating)
    append_history(end, duels, n_judges > 0, changes, cfg)
    return end, used_scores, n_judges, changes


def ratings_before_each_duel(rating: np.ndarray, duels: np.ndarray, changes: np.ndarray) -> np.ndarray:
    """(n, M): the reputations at the moment of each duel, rebuilt from the changes."""
    n, m = len(duels), len(rating)
    steps = np.zeros((n, m))
    rows = np.arange(n)
    np.add.at(steps, (rows, duels[:, 0]), changes[:, 0])
    np.add.at(steps, (rows, duels[:, 1]), changes[:, 1])
    before = np.cumsum(steps, axis=0) - steps
    return rating[None, :] + before


def append_history(ratings: Ratings, duels: np.ndarray, scored: np.ndarray, changes: np.ndarray,
                    cfg: ReputationConfig) -> None:
    """SPEC 1.6 end of iteration: each duelling member's changes, in plan order, join its history."""
    # One stable sort groups the changes by member in plan order (a member is never both sides of a
    # duel), instead of one pass over all duels per member: 100 members x 100,000 duels took 0.2 s.
    members, values = duels[scored].ravel(), changes[scored].ravel()
    order = np.argsort(members, kind="stable")
    bounds = np.searchsorted(members[order], np.arange(len(ratings.rating) + 1))
    for member in range(len(ratings.rating)):
        lo, hi = int(bounds[member]), int(bounds[member + 1])
        if lo == hi:
            continue  # did not duel with a valid judge: history and sigma stay
        kept = order[max(lo, hi - cfg.window_size):hi]  # only the last W can stay
        history = (ratings.history[member] + values[kept].tolist())[-cfg.window_size:]
        ratings.history[member] = history
        if len(history) >= 2:
            ratings.deviation[member] = max(float(np.std(history)), cfg.min_deviation)


def preference_pairs(duels: np.ndarray, final_scores: np.ndarray):
    """(pairs, pair_duels, pair_scores): chosen/rejected per duel, ties and judge-less duels dropped."""
    s_a, s_b = final_scores[:, 0], final_scores[:, 1]
    keep = np.flatnonzero(~np.isnan(s_a) & (s_a != s_b))
    a_wins = s_a[keep] > s_b[keep]
    pairs = np.where(a_wins[:, None], duels[keep], duels[keep][:, ::-1])
    pair_scores = np.where(a_wins[:, None], final_scores[keep], final_scores[keep][:, ::-1])
    return pairs.reshape(-1, 2), keep, pair_scores.reshape(-1, 2)
