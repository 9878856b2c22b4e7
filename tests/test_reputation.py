"""SPEC 1.5-1.7 against values computed by hand from the formulas."""

import math

import numpy as np
import pytest

from sparta_hpc.algorithm.reputation import Ratings, ReputationConfig, k_factors
from sparta_hpc.algorithm.variants import run_iteration

NAN = np.nan


def scores_for(n_members, table):
    """table: {duel: {judge: (s_a, s_b)}} -> (n, M, 2) with NaN elsewhere."""
    out = np.full((len(table), n_members, 2), NAN)
    for c, judges in table.items():
        for j, pair in judges.items():
            out[c, j] = pair
    return out


def ratings(rating, deviation):
    return Ratings(np.array(rating, float), np.array(deviation, float), [[] for _ in rating])


def test_one_duel_with_defaults():
    # A=0, B=1, judge C=2 scores A 8 and B 6; equal ratings so z=0 and u=eps.
    start = ratings([100, 100, 100], [0.5, 0.5, 0.5])
    result = run_iteration(start, [[0, 1]], scores_for(3, {0: {2: (8, 6)}}), ReputationConfig())
    k1 = 10 * 0.9 ** (1 / 10)  # 9.895192582062144
    step = k1 * 2 * 0.01 / 20 * math.tanh(0.5)  # 0.0045727383
    assert step == pytest.approx(0.0045727383, abs=1e-9)
    assert result.ratings.rating == pytest.approx([100 + step, 100 - step, 100])
    assert result.update_scores[0] == pytest.approx([8, 6])
    # one change each: fewer than 2 in the history, so sigma stays
    assert result.ratings.deviation == pytest.approx([0.5, 0.5, 0.5])
    assert result.ratings.history == [[pytest.approx(step)], [pytest.approx(-step)], []]
    assert result.pairs.tolist() == [[0, 1]]
    assert result.pair_scores[0] == pytest.approx([8, 6])
    assert start.rating.tolist() == [100, 100, 100], "the input ratings must not be modified"


def test_three_duels_k_decay_floor_and_deviation():
    cfg = ReputationConfig(initial_k=10, min_k=3, decay_rate=0.5, decay_steps=1, scaling_factor=1,
                           epsilon=0.01, window_size=2, min_deviation=0.1, floor=10)
    assert k_factors(3, cfg).tolist() == [5.0, 3.0, 3.0]  # 10*0.5, max(3, 2.5), max(3, 1.25)
    A, B, C, D = range(4)
    start = ratings([30, 10.5, 20, 25], [0.5, 0.5, 1.0, 0.8])
    table = {
        0: {C: (9, 2), D: (8, 1)},   # A beats B by a lot
        1: {A: (4, 6), B: (5, 5)},   # C vs D, judged by A (now stronger) and B (at the floor)
        2: {B: (7, NAN), D: (7, 3)},  # A vs C: B gave only one score, so only D counts
    }
    result = run_iteration(start, [[A, B], [C, D], [A, C]], scores_for(4, table), cfg)

    # duel 1: weights C=20, D=25 -> s_a = 380/45, s_b = 65/45, delta = 7
    u1 = max(abs(math.erf((30 - 10.5) / math.sqrt(0.5) / math.sqrt(2))), 0.01)  # == 1.0
    assert u1 == 1.0
    r_a = 30 + 5 * 7 * u1 * math.tanh(0.5)  # 46.174...
    r_b = 10.0  # 10.5 - 16.17 is below the floor
    # duel 2: weights A=r_a, B=10
    s_c = (r_a * 4 + 10 * 5) / (r_a + 10)
    s_d = (r_a * 6 + 10 * 5) / (r_a + 10)
    z2 = (20 - 25) / math.sqrt(1.0 + 0.64)
    u2 = abs(math.erf(z2 / math.sqrt(2)))
    r_c = 20 + 3 * (s_c - s_d) * u2 * math.tanh(1.0)
    r_d = 25 - 3 * (s_c - s_d) * u2 * math.tanh(0.8)
    # duel 3: only D (7 vs 3), delta = 4
    z3 = (r_a - r_c) / math.sqrt(0.25 + 1.0)
    u3 = abs(math.erf(z3 / math.sqrt(2)))
    r_a3 = r_a + 3 * 4 * u3 * math.tanh(0.5)
    r_c3 = max(10.0, r_c - 3 * 4 * u3 * math.tanh(1.0))  # 7.1: C hits the floor too
    assert r_c3 == 10.0

    assert result.ratings.rating == pytest.approx([r_a3, r_b, r_c3, r_d])
    assert result.update_scores[0] == pytest.approx([380 / 45, 65 / 45])
    assert result.update_scores[1] == pytest.approx([s_c, s_d])
    assert result.changes[0] == pytest.approx([r_a - 30, -0.5])
    # histories (window 2) and population std; B and D have one change each
    hist_a = [r_a - 30, r_a3 - r_a]
    hist_c = [r_c - 20, r_c3 - r_c]
    assert result.ratings.history[A] == pytest.approx(hist_a)
    assert result.ratings.history[B] == pytest.approx([-0.5])
    assert result.ratings.deviation == pytest.approx(
        [max(np.std(hist_a), 0.1), 0.5, max(np.std(hist_c), 0.1), 0.8])
    # end-of-iteration weights decide the pairs
    w_a, w_b = r_a3, 10.0
    assert result.final_scores[1] == pytest.approx(
        [(w_a * 4 + w_b * 5) / (w_a + w_b), (w_a * 6 + w_b * 5) / (w_a + w_b)])
    assert result.pairs.tolist() == [[A, B], [D, C], [A, C]]
    assert result.n_judges.tolist() == [2, 2, 1]


def test_window_keeps_last_changes_and_min_deviation():
    cfg = ReputationConfig(window_size=2, min_deviation=0.3)
    start = ratings([100, 100, 100], [0.5, 0.5, 0.5])
    start.history[0] = [5.0, -5.0]
    result = run_iteration(start, [[0, 1]], scores_for(3, {0: {2: (6, 6)}}), cfg)
    # a tie changes nothing, but A duelled: its 0.0 is appended, the oldest entry dropped
    assert result.ratings.history[0] == [-5.0, 0.0]
    assert result.ratings.deviation[0] == pytest.approx(2.5)
    assert result.ratings.history[1] == [0.0]
    assert result.ratings.deviation[1] == 0.5


def test_duel_without_valid_judge_changes_nothing_but_counts():
    cfg = ReputationConfig(initial_k=10, min_k=1, decay_rate=0.5, decay_steps=1, scaling_factor=1)
    start = ratings([100, 100, 100], [0.5, 0.5, 0.5])
    table = {0: {2: (NAN, 4)}, 1: {2: (9, 4)}}  # duel 0: the judge missed one score
    result = run_iteration(start, [[0, 1], [0, 1]], scores_for(3, table), cfg)
    assert np.isnan(result.update_scores[0]).all() and result.n_judges[0] == 0
    assert result.changes[0].tolist() == [0.0, 0.0]
    k2 = 10 * 0.5 ** 2  # the second position, not the first
    step = k2 * 5 * 0.01 * math.tanh(0.5)
    assert result.ratings.rating == pytest.approx([100 + step, 100 - step, 100])
    assert result.pair_duels.tolist() == [1]
    # the judge-less duel adds nothing to the history
    assert result.ratings.history[0] == [pytest.approx(step)]


def test_tie_gives_no_pair_and_no_change():
    start = ratings([120, 80, 100, 90], [0.5, 0.5, 0.5, 0.5])
    result = run_iteration(start, [[0, 1]], scores_for(4, {0: {2: (7, 5), 3: (5, 7)}}),
                           ReputationConfig(weighting="uniform"))
    assert result.update_scores[0].tolist() == [6.0, 6.0]
    assert result.ratings.rating.tolist() == [120, 80, 100, 90]
    assert len(result.pairs) == 0


def test_bad_inputs_are_refused():
    start = ratings([100, 100, 100], [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="own duel"):
        run_iteration(start, [[0, 1]], scores_for(3, {0: {0: (5, 5)}}), ReputationConfig())
    with pytest.raises(ValueError, match="1..10"):
        run_iteration(start, [[0, 1]], scores_for(3, {0: {2: (11, 5)}}), ReputationConfig())
    with pytest.raises(ValueError, match="different members"):
        run_iteration(start, [[1, 1]], scores_for(3, {0: {2: (5, 5)}}), ReputationConfig())
    with pytest.raises(ValueError, match="weighting"):
        ReputationConfig(weighting="elo").validate()
