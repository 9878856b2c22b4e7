"""The `spec` reputation update (SPEC 1.5-1.7) as a numba-compiled loop, for tribes with many judges.

The update is sequential by definition: each duel's judges are weighted by the
reputations of that moment, so duel c needs the ratings after duel c - 1 and
the loop cannot be vectorised over duels. `reputation.update_ratings` runs it
over plain Python floats; with 98 judges a duel that is a 98-term dot product
per duel in the interpreter (about 50 us). Here the same loop runs compiled
over plain arrays, with each duel's valid judges listed sparsely (CSR: duel c's
judges are judge[indptr[c]:indptr[c + 1]], with their two scores), so a judge
panel of k costs k, not M, per duel.

Results equal `update_ratings`' to rounding (sums in the same member order;
the weight total is summed over the valid judges instead of subtracted from
the sum over all members): tests/test_reputation_fast.py holds them to 1e-12.

numba is optional. Without it, or for problems too small to repay its import
and compile time (FAST_MIN_JUDGMENTS), run_iteration keeps the pure-Python
loop; a missing numba is logged once, where it would have been used.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from .reputation import Ratings, ReputationConfig, append_history, k_factors

log = logging.getLogger(__name__)

# Below this many (duel, member) entries the pure-Python loop (about 0.5 us per entry with many
# judges) takes less time than importing numba and loading the cached kernel (about 1.5 s on a
# 2-core test machine; compiling it the first time, about 5 s): the paper's 1000 duels x 10 members stay in
# Python, 100,000 x 100 use the kernel. bench/bench_reputation.py measures both.
FAST_MIN_JUDGMENTS = 2_000_000

_kernels: tuple | None = None
_missing_logged = False


def _update(duels: np.ndarray, indptr: np.ndarray, judge: np.ndarray, s_a: np.ndarray, s_b: np.ndarray,
            rating: np.ndarray, tanh_dev: np.ndarray, dev_sq: np.ndarray, ks: np.ndarray, by_reputation: bool,
            eps: float, scale: float, floor: float, changes: np.ndarray, used: np.ndarray) -> None:
    """SPEC 1.6 over the duels in plan order; rating is updated in place, changes and used filled.

    The arithmetic mirrors update_ratings' term by term, so that the two agree to rounding.
    """
    root2 = math.sqrt(2.0)
    for c in range(duels.shape[0]):
        lo, hi = indptr[c], indptr[c + 1]
        if lo == hi:  # no valid judge: nothing changes, but c still counts (ks is indexed by c)
            used[c, 0] = np.nan
            used[c, 1] = np.nan
            continue
        total = 0.0
        dot = 0.0
        sum_a = 0.0
        sum_b = 0.0
        for i in range(lo, hi):  # judges in member order, like the reference's sum over members
            w = rating[judge[i]] if by_reputation else 1.0
            total += w
            dot += w * (s_a[i] - s_b[i])
            sum_a += w * s_a[i]
            sum_b += w * s_b[i]
        used[c, 0] = sum_a / total
        used[c, 1] = sum_b / total
        # reputation: R . (S_a - S_b) / R . valid, as update_ratings; uniform: s_a - s_b of the plain means
        delta = dot / total if by_reputation else used[c, 0] - used[c, 1]
        a, b = duels[c, 0], duels[c, 1]
        r_a, r_b = rating[a], rating[b]
        z = (r_a - r_b) / math.sqrt(dev_sq[a] + dev_sq[b])
        u = max(abs(math.erf(z / root2)), eps)  # Phi(z) - Phi(-z) == erf(z / sqrt(2))
        step = ks[c] * delta * u / scale
        new_a = max(floor, r_a + step * tanh_dev[a])
        new_b = max(floor, r_b - step * tanh_dev[b])
        rating[a] = new_a
        rating[b] = new_b
        changes[c, 0] = new_a - r_a
        changes[c, 1] = new_b - r_b


def _weighted(indptr: np.ndarray, judge: np.ndarray, s_a: np.ndarray, s_b: np.ndarray, weights: np.ndarray,
              out: np.ndarray) -> None:
    """out[c] = each duel's weighted mean scores over its valid judges (NaN: none), fixed weights."""
    for c in range(indptr.shape[0] - 1):
        total = 0.0
        sum_a = 0.0
        sum_b = 0.0
        for i in range(indptr[c], indptr[c + 1]):
            w = weights[judge[i]]
            total += w
            sum_a += w * s_a[i]
            sum_b += w * s_b[i]
        out[c, 0] = sum_a / total if total > 0 else np.nan
        out[c, 1] = sum_b / total if total > 0 else np.nan


def kernels(compiled: bool = True) -> tuple | None:
    """(update, weighted): numba-compiled, or None without numba; compiled=False: the plain Python
    functions (the same code, for tests on machines without numba)."""
    global _kernels, _missing_logged
    if not compiled:
        return _update, _weighted
    if _kernels is None:
        try:
            import numba  # imported here: it costs about half a second and only large tribes need it
        except ImportError:
            if not _missing_logged:
                log.info("numba is not installed: the reputation update runs as a pure-Python loop "
                         "(pip install numba for large tribes; docs/algorithm.md, Speed)")
                _missing_logged = True
            return None
        # cache=True keeps the machine code next to this file (or in NUMBA_CACHE_DIR): a later
        # process loads it instead of compiling again
        jit = numba.njit(cache=True, nogil=True, error_model="numpy")
        _kernels = (jit(_update), jit(_weighted))
    return _kernels


def use_fast(n_duels: int, n_members: int, fast: bool | None = None) -> bool:
    """Whether run_iteration takes the compiled loop: numba is installed and the problem is large
    (fast None) or asked for (fast True)."""
    wanted = n_duels * n_members >= FAST_MIN_JUDGMENTS if fast is None else fast
    return wanted and kernels() is not None


def sparse_judges(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(indptr (n+1,), judge, s_a, s_b) of the judges that gave both scores, duel by duel in member order."""
    s_a, s_b = scores[:, :, 0], scores[:, :, 1]
    valid = ~(np.isnan(s_a) | np.isnan(s_b))
    indptr = np.zeros(len(scores) + 1, dtype=np.int64)
    np.cumsum(valid.sum(axis=1), out=indptr[1:])
    # row-major, so duel by duel with judges ascending; contiguous (np.nonzero's columns are strided
    # views, which would make numba compile a second, slower variant of the kernels)
    judge = np.broadcast_to(np.arange(scores.shape[1]), valid.shape)[valid]
    return indptr, judge, s_a[valid], s_b[valid]


def spec_iteration(start: Ratings, duels: np.ndarray, scores: np.ndarray, cfg: ReputationConfig,
                   compiled: bool = True) -> tuple[Ratings, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """update_ratings plus the end-of-iteration scores, on the kernels.

    Returns the ratings after the iteration, the weighted scores each update used, the number of
    valid judges per duel, each duelist's actual change and the end-of-iteration weighted scores.
    """
    update, weighted = kernels(compiled)
    n = len(duels)
    indptr, judge, s_a, s_b = sparse_judges(scores)
    by_reputation = cfg.weighting == "reputation"
    rating = start.rating.astype(np.float64)  # a copy: the kernel updates it in place
    deviation = start.deviation.astype(np.float64)  # sigma is constant within an iteration
    changes, used = np.zeros((n, 2)), np.empty((n, 2))
    update(np.ascontiguousarray(duels, dtype=np.int64), indptr, judge, s_a, s_b, rating,
           np.tanh(deviation), deviation ** 2, k_factors(n, cfg), by_reputation,
           float(cfg.epsilon), float(cfg.scaling_factor), float(cfg.floor), changes, used)
    n_judges = np.diff(indptr)
    end = start.copy()
    end.rating = rating
    append_history(end, duels, n_judges > 0, changes, cfg)
    final = np.empty((n, 2))
    weighted(indptr, judge, s_a, s_b, rating if by_reputation else np.ones(len(rating)), final)
    return end, used, n_judges, changes, final
