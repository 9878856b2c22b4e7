"""Hypothesis properties of match-making and the reputation system."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sparta_hpc.algorithm.matchmaking import MatchConfig, closest_members, make_duels
from sparta_hpc.algorithm.reputation import Ratings, ReputationConfig
from sparta_hpc.algorithm.variants import run_iteration


@st.composite
def iterations(draw, min_members=3, max_members=6):
    m = draw(st.integers(min_members, max_members))
    n = draw(st.integers(1, 12))
    rating = draw(st.lists(st.floats(10, 300), min_size=m, max_size=m))
    deviation = draw(st.lists(st.floats(0.1, 3), min_size=m, max_size=m))
    duels, scores = [], np.full((n, m, 2), np.nan)
    for c in range(n):
        a, b = draw(st.lists(st.integers(0, m - 1), min_size=2, max_size=2, unique=True))
        duels.append([a, b])
        for j in range(m):
            if j in (a, b):
                continue
            pair = draw(st.tuples(st.none() | st.integers(1, 10), st.none() | st.integers(1, 10)))
            scores[c, j] = [np.nan if s is None else s for s in pair]
    cfg = ReputationConfig(
        weighting=draw(st.sampled_from(["reputation", "uniform"])),
        initial_k=draw(st.floats(1, 50)), scaling_factor=draw(st.floats(0.5, 30)),
        floor=draw(st.floats(0.1, 100)), window_size=draw(st.integers(1, 5)))
    start = Ratings(np.array(rating), np.array(deviation), [[] for _ in range(m)])
    return start, np.array(duels), scores, cfg


@settings(max_examples=2 * settings.default.max_examples, deadline=None)
@given(iterations())
def test_swapping_a_and_b_mirrors_the_result(case):
    start, duels, scores, cfg = case
    plain = run_iteration(start, duels, scores, cfg)
    swapped = run_iteration(start, duels[:, ::-1], scores[:, :, ::-1], cfg)
    np.testing.assert_allclose(swapped.ratings.rating, plain.ratings.rating)
    np.testing.assert_allclose(swapped.ratings.deviation, plain.ratings.deviation)
    np.testing.assert_allclose(swapped.update_scores, plain.update_scores[:, ::-1])
    np.testing.assert_allclose(swapped.changes, plain.changes[:, ::-1])
    assert swapped.pairs.tolist() == plain.pairs.tolist()
    assert swapped.pair_duels.tolist() == plain.pair_duels.tolist()


@settings(max_examples=2 * settings.default.max_examples, deadline=None)
@given(iterations())
def test_uniform_weighting_is_the_plain_mean(case):
    start, duels, scores, cfg = case
    cfg = ReputationConfig(weighting="uniform")
    result = run_iteration(start, duels, scores, cfg)
    for c in range(len(duels)):
        valid = [j for j in range(scores.shape[1]) if not np.isnan(scores[c, j]).any()]
        if not valid:
            assert np.isnan(result.update_scores[c]).all()
            continue
        mean = [sum(scores[c, j, s] for j in valid) / len(valid) for s in (0, 1)]
        np.testing.assert_allclose(result.update_scores[c], mean)
        np.testing.assert_allclose(result.final_scores[c], mean)


@settings(max_examples=2 * settings.default.max_examples, deadline=None)
@given(iterations())
def test_ratings_never_fall_below_the_floor(case):
    start, duels, scores, cfg = case
    start.rating = np.maximum(start.rating, cfg.floor)
    result = run_iteration(start, duels, scores, cfg)
    assert (result.ratings.rating >= cfg.floor).all()
    assert (result.ratings.deviation >= min(cfg.min_deviation, start.deviation.min())).all()


@settings(max_examples=2 * settings.default.max_examples, deadline=None)
@given(st.lists(st.floats(0, 300), min_size=2, max_size=12), st.integers(0, 40),
       st.floats(0, 1), st.integers(1, 12), st.integers(0, 2**31), st.integers(0, 20))
def test_matchmaking_never_pairs_a_member_with_itself(rating, n, alpha, k, seed, iteration):
    duels = make_duels(np.array(rating), n, MatchConfig(alpha=alpha, k=k), seed, iteration)
    assert duels.shape == (n, 2)
    assert (duels[:, 0] != duels[:, 1]).all()
    assert ((duels >= 0) & (duels < len(rating))).all()


@settings(max_examples=2 * settings.default.max_examples, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=3, max_size=12), st.integers(1, 40),
       st.integers(1, 12), st.integers(0, 2**31))
def test_alpha_zero_picks_only_among_the_k_closest(rating, n, k, seed):
    rating = np.array(rating, dtype=float)
    duels = make_duels(rating, n, MatchConfig(alpha=0.0, k=k), seed, 3)
    for a, b in duels:
        gap = abs(rating[b] - rating[a])
        others = np.delete(rating, a)
        # b is among the k closest: fewer than k others are strictly closer
        assert (np.abs(others - rating[a]) < gap).sum() < k
        assert b in closest_members(rating, a, min(k, len(rating) - 1))
