"""The variant dispatch: one iteration of the reputation system as `reputation.variant` and
`reputation.frozen` configure it (SPEC 1.5-1.7, the authors' code, or nothing moving).

Its own module so that the three implementations build on `reputation`'s types without
importing each other: `reputation` knows no variant, the variants know only `reputation`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import reputation_fast
from .reputation import (
    IterationResult,
    Ratings,
    ReputationConfig,
    check_inputs,
    judge_weights,
    preference_pairs,
    update_ratings,
    valid_judges,
    weighted_scores,
)
from .reputation_authors import run_authors


def run_iteration(
    start: Ratings, duels: np.ndarray, scores: np.ndarray, cfg: ReputationConfig, *,
    iteration: int | None = None, ratings_after: Sequence[np.ndarray] = (), fast: bool | None = None,
) -> IterationResult:
    """One iteration of SPEC 1.5-1.7 (or of the configured variant) on recorded judgments.

    iteration and ratings_after (ratings_after[k]: the ratings at the end of
    iteration k < iteration) are read only by reputation.authors_static.
    fast (variant spec): True runs the numba-compiled loop, False the pure-Python
    one, None picks by size (reputation_fast.use_fast); the two agree to rounding.
    """
    duels = np.asarray(duels, dtype=np.int64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=float)
    check_inputs(duels, scores, start.rating, cfg.duelists_judge)
    if cfg.variant == "authors":
        end, update_scores, changes, final_scores = run_authors(start, duels, scores, cfg, iteration, ratings_after)
        n_judges = valid_judges(scores).sum(axis=1)
    elif cfg.frozen:  # nothing moves: the scores use the starting weights, history and sigma stay
        end, changes = start.copy(), np.zeros((len(duels), 2))
        update_scores = final_scores = weighted_scores(scores, judge_weights(start.rating, cfg))
        n_judges = valid_judges(scores).sum(axis=1)
    else:
        if reputation_fast.use_fast(len(duels), len(start.rating), fast):  # numba installed and worth it
            end, update_scores, n_judges, changes, final_scores = reputation_fast.spec_iteration(
                start, duels, scores, cfg)
        else:
            end, update_scores, n_judges, changes = update_ratings(start, duels, scores, cfg)
            final_scores = weighted_scores(scores, judge_weights(end.rating, cfg))
    pairs, pair_duels, pair_scores = preference_pairs(duels, final_scores)
    return IterationResult(end, update_scores, final_scores, n_judges, changes, pairs, pair_duels, pair_scores)
