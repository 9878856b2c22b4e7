"""The numba kernel of the spec reputation update against the pure-Python loop (fast tier).

The kernel's code runs twice here: as plain Python (always, so a machine without numba still
checks its logic) and compiled (where numba is installed).
"""

import logging
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparta_hpc.algorithm import reputation_fast
from sparta_hpc.algorithm.reputation import Ratings, ReputationConfig, judge_weights, update_ratings, weighted_scores
from sparta_hpc.algorithm.variants import run_iteration

HAS_NUMBA = reputation_fast.kernels() is not None


@st.composite
def iterations(draw):
    """Random tribes, duels and judgments: missing scores, ratings near a binding floor, short windows,
    earlier histories, both weightings."""
    m = draw(st.integers(3, 9))
    n = draw(st.integers(1, 30))
    floor = draw(st.floats(0.5, 80))
    rating = draw(st.lists(st.floats(floor, 300), min_size=m, max_size=m))
    deviation = draw(st.lists(st.floats(0.05, 3), min_size=m, max_size=m))
    history = [draw(st.lists(st.floats(-5, 5), max_size=4)) for _ in range(m)]
    duels = np.array([draw(st.lists(st.integers(0, m - 1), min_size=2, max_size=2, unique=True))
                      for _ in range(n)])
    missing = draw(st.sampled_from([0.0, 0.3, 0.9]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # integer and fractional scores (rounds averaged, expected scores)
    scores = rng.choice([1, 2, 5, 5.5, 7, 7.25, 10], size=(n, m, 2)).astype(float)
    scores[rng.random((n, m, 2)) < missing] = np.nan
    rows = np.arange(n)
    scores[rows, duels[:, 0]] = np.nan
    scores[rows, duels[:, 1]] = np.nan
    cfg = ReputationConfig(
        weighting=draw(st.sampled_from(["reputation", "uniform"])), floor=floor,
        initial_k=draw(st.floats(1, 200)), min_k=draw(st.floats(0, 5)), decay_rate=draw(st.floats(0.3, 1)),
        decay_steps=draw(st.floats(1, 20)), scaling_factor=draw(st.floats(0.5, 30)),
        epsilon=draw(st.floats(0.001, 0.5)), window_size=draw(st.integers(1, 5)),
        min_deviation=draw(st.floats(0.01, 1)))
    return Ratings(np.array(rating), np.array(deviation), history), duels, scores, cfg


def assert_same(fast, start, duels, scores, cfg):
    """fast = spec_iteration's output; the reference is update_ratings + weighted_scores. Compiled, erf
    and the order of the weight sum differ in the last bit, which 30 duels with K up to 200 grow to a
    few 1e-14 of a rating: hence a relative 1e-12."""
    end, used, n_judges, changes, final = fast
    ref_end, ref_used, ref_n, ref_changes = update_ratings(start, duels, scores, cfg)
    ref_final = weighted_scores(scores, judge_weights(ref_end.rating, cfg))
    np.testing.assert_allclose(end.rating, ref_end.rating, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(end.deviation, ref_end.deviation, rtol=1e-12, atol=1e-12)
    assert len(end.history) == len(ref_end.history)
    for h, ref_h in zip(end.history, ref_end.history):
        np.testing.assert_allclose(h, ref_h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(changes, ref_changes, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(used, ref_used, rtol=1e-12, atol=1e-12)  # NaN where no valid judge, in both
    np.testing.assert_allclose(final, ref_final, rtol=1e-12, atol=1e-12)
    assert n_judges.tolist() == ref_n.tolist()


@settings(max_examples=2 * settings.default.max_examples, deadline=None)
@given(iterations())
def test_the_kernels_code_equals_the_python_loop(case):
    start, duels, scores, cfg = case
    before = start.copy()
    assert_same(reputation_fast.spec_iteration(start, duels, scores, cfg, compiled=False), start, duels, scores, cfg)
    assert start.rating.tolist() == before.rating.tolist() and start.history == before.history, "input modified"


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (pip install numba)")
@settings(max_examples=2 * settings.default.max_examples, deadline=None)
@given(iterations())
def test_the_compiled_kernel_equals_the_python_loop(case):
    start, duels, scores, cfg = case
    assert_same(reputation_fast.spec_iteration(start, duels, scores, cfg), start, duels, scores, cfg)
    fast = run_iteration(start, duels, scores, cfg, fast=True)
    slow = run_iteration(start, duels, scores, cfg, fast=False)
    # the pairs agree wherever the reference's verdict is not a tie to rounding
    margin = slow.final_scores[:, 0] - slow.final_scores[:, 1]
    clear = set(np.flatnonzero(np.abs(margin) > 1e-9).tolist())
    assert {c for c in fast.pair_duels.tolist() if c in clear} == {c for c in slow.pair_duels.tolist() if c in clear}


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (pip install numba)")
def test_a_large_problem_takes_the_kernel_and_a_small_one_the_loop(monkeypatch):
    taken = []
    real = reputation_fast.spec_iteration
    monkeypatch.setattr(reputation_fast, "spec_iteration", lambda *a, **k: taken.append(1) or real(*a, **k))
    m = 12
    n = -(-reputation_fast.FAST_MIN_JUDGMENTS // m)
    rng = np.random.default_rng(0)
    duels = np.stack([np.arange(n) % m, (np.arange(n) + 1 + rng.integers(0, m - 1, n)) % m], axis=1)
    scores = np.full((n, m, 2), 6.0)
    scores[np.arange(n), duels[:, 0]] = np.nan
    scores[np.arange(n), duels[:, 1]] = np.nan
    run_iteration(Ratings.initial(m, ReputationConfig()), duels[:100], scores[:100], ReputationConfig())
    assert taken == []
    run_iteration(Ratings.initial(m, ReputationConfig()), duels, scores, ReputationConfig())
    assert taken == [1]


def test_without_numba_the_python_loop_runs_and_says_so_once(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    monkeypatch.setattr(reputation_fast, "_kernels", None)
    monkeypatch.setattr(reputation_fast, "_missing_logged", False)
    start = Ratings.initial(3, ReputationConfig())
    scores = np.full((1, 3, 2), np.nan)
    scores[0, 2] = 8, 6
    with caplog.at_level(logging.INFO, logger="sparta_hpc"):
        one = run_iteration(start, [[0, 1]], scores, ReputationConfig(), fast=True)
        two = run_iteration(start, [[0, 1]], scores, ReputationConfig(), fast=True)
    assert sum("numba is not installed" in r.getMessage() for r in caplog.records) == 1
    assert one.ratings.rating.tolist() == two.ratings.rating.tolist() == \
        run_iteration(start, [[0, 1]], scores, ReputationConfig(), fast=False).ratings.rating.tolist()
