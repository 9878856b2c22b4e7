"""reputation.variant=authors (their behaviours (a)-(d) and the static class) and reputation.frozen,
against values derived by hand from their code's formulas.

Most cases use K constant (decay_rate=1), u = 1 (duelists 100+ apart, so
erf(z / sqrt 2) rounds to 1.0) and K / scale = 1, so that one update is
delta * tanh(sigma); t below is tanh(0.5), every member's starting sigma.
"""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from sparta_hpc.algorithm.reputation import Ratings, ReputationConfig
from sparta_hpc.algorithm.reputation_authors import static_multipliers
from sparta_hpc.algorithm.variants import run_iteration
from sparta_hpc.cli import main
from sparta_hpc.commands.simulate import SimulationConfig, simulate
from sparta_hpc.rundir.paths import RunPaths

from .test_replay import RATINGS, write_inputs

NAN = np.nan
t = math.tanh(0.5)  # 0.46211715726000974
A, B, C, D = range(4)
# K = 10 at every position, K / scale = 1
SIMPLE = dict(initial_k=10, min_k=0, decay_rate=1.0, scaling_factor=10)
SPEC = ReputationConfig(**SIMPLE)
AUTHORS = ReputationConfig(variant="authors", **SIMPLE)


def scores_for(n_members, table):
    """table: {duel: {judge: (s_a, s_b)}} -> (n, M, 2) with NaN elsewhere."""
    out = np.full((len(table), n_members, 2), NAN)
    for c, judges in table.items():
        for j, pair in judges.items():
            out[c, j] = pair
    return out


def ratings(rating, deviation=None, history=None):
    deviation = [0.5] * len(rating) if deviation is None else deviation
    history = [[] for _ in rating] if history is None else history
    return Ratings(np.array(rating, float), np.array(deviation, float), history)


def test_a_sigma_is_recomputed_after_every_duel():
    start = ratings([200, 100, 100, 100])
    table = {0: {C: (7, 5), D: (7, 5)},  # A beats B: delta 2, u = 1 -> A + 2t, B - 2t
             1: {C: (5, 7), D: (5, 7)},  # B beats A: delta -2 -> A and B back to 200 and 100
             2: {B: (6, 5), D: (6, 5)}}  # A beats C: delta 1
    duels = [[A, B], [A, B], [A, C]]
    authors = run_iteration(start, duels, scores_for(4, table), AUTHORS)
    spec = run_iteration(start, duels, scores_for(4, table), SPEC)
    # After duel 2 A's history is [2t, -2t]: population std 2t = 0.924, so duel 3
    # moves A by tanh(2t) = 0.728 (theirs) instead of tanh(0.5) = 0.462 (spec).
    assert authors.changes[2] == pytest.approx([math.tanh(2 * t), -t])
    assert spec.changes[2] == pytest.approx([t, -t])
    assert authors.ratings.rating == pytest.approx([200 + math.tanh(2 * t), 100, 100 - t, 100])
    # at the end: A's three changes, B's two; C has one change so keeps 0.5
    assert authors.ratings.deviation == pytest.approx(
        [np.std([2 * t, -2 * t, math.tanh(2 * t)]), 2 * t, 0.5, 0.5])
    assert spec.ratings.deviation == pytest.approx([np.std([2 * t, -2 * t, t]), 2 * t, 0.5, 0.5])


def test_b_a_failed_judge_counts_5_for_both_and_keeps_its_weight():
    start = ratings([100, 300, 300, 100])
    table = {0: {C: (8, NAN), D: (9, 5)},     # C (weight 300) missed b's score
             1: {C: (NAN, NAN), D: (NAN, 4)}}  # every judge failed
    authors = run_iteration(start, [[A, B], [A, B]], scores_for(4, table), AUTHORS)
    spec = run_iteration(start, [[A, B], [A, B]], scores_for(4, table), SPEC)
    # duel 1, theirs: s_a = (300*5 + 100*9) / 400 = 6, s_b = (300*5 + 100*5) / 400 = 5, delta 1
    assert authors.update_scores[0] == pytest.approx([6, 5])
    assert spec.update_scores[0] == pytest.approx([9, 5])  # spec: only D counts, delta 4
    # duel 2, theirs: 5 vs 5, delta 0, but both histories get a 0:
    # A: [t, 0] -> sigma = std = t / 2; spec: nothing happens, A's history is [4t]
    assert authors.update_scores[1] == pytest.approx([5, 5]) and np.isnan(spec.update_scores[1]).all()
    assert authors.ratings.rating == pytest.approx([100 + t, 300 - t, 300, 100])
    assert authors.ratings.history[:2] == [[pytest.approx(t), 0.0], [pytest.approx(-t), 0.0]]
    assert authors.ratings.deviation == pytest.approx([t / 2, t / 2, 0.5, 0.5])
    assert spec.ratings.rating == pytest.approx([100 + 4 * t, 300 - 4 * t, 300, 100])
    assert spec.ratings.history[:2] == [[pytest.approx(4 * t)], [pytest.approx(-4 * t)]]
    # pairs: end weights C = 300, D = 100 again give 6 vs 5; the all-failed duel is a tie, no pair
    assert authors.pair_duels.tolist() == [0] and authors.pair_scores[0] == pytest.approx([6, 5])
    assert authors.n_judges.tolist() == spec.n_judges.tolist() == [1, 0]  # valid judges, as recorded


def test_c_the_second_duelist_reads_the_first_ones_new_rating():
    cfg = ReputationConfig(variant="authors", initial_k=10, min_k=0, decay_rate=1.0, scaling_factor=1)
    start = ratings([100, 100, 100])
    result = run_iteration(start, [[A, B]], scores_for(3, {0: {C: (8, 6)}}), cfg)
    # A first: z = 0, u = eps: A = 100 + 10 * 2 * t * 0.01 = 100 + 0.2t
    # B then sees R_A = 100 + 0.2t: z / sqrt 2 = -0.2t / (sqrt 2 * sqrt(0.25 + 0.25)) = -0.2t,
    # u = erf(0.2t) = 0.1039, B = 100 - 10 * 2 * t * erf(0.2t) = 100 - 0.960
    assert result.ratings.rating == pytest.approx([100 + 0.2 * t, 100 - 20 * t * math.erf(0.2 * t), 100])
    spec = run_iteration(start, [[A, B]], scores_for(3, {0: {C: (8, 6)}}),
                         ReputationConfig(initial_k=10, min_k=0, decay_rate=1.0, scaling_factor=1))
    assert spec.ratings.rating == pytest.approx([100 + 0.2 * t, 100 - 0.2 * t, 100])
    # so their update is not symmetric in a and b
    swapped = run_iteration(start, [[B, A]], scores_for(3, {0: {C: (6, 8)}}), cfg)
    assert swapped.ratings.rating[A] == pytest.approx(100 + 20 * t * math.erf(0.2 * t))


def test_d_history_starts_empty_each_iteration_sigma_carries_over():
    start = ratings([100, 100, 100], [0.7, 0.5, 0.5], [[5.0, -5.0], [], [1.0, 2.0]])
    table = {0: {C: (6, 6)}}  # a tie: A and B change by 0
    authors = run_iteration(start, [[A, B]], scores_for(3, table), AUTHORS)
    spec = run_iteration(start, [[A, B]], scores_for(3, table), SPEC)
    # theirs: A's history is [0.0] alone, too short for a std: sigma stays 0.7 (carried, not reset)
    assert authors.ratings.history == [[0.0], [0.0], []]
    assert authors.ratings.deviation.tolist() == [0.7, 0.5, 0.5]
    # spec: [5, -5, 0] -> std = sqrt(50 / 3)
    assert spec.ratings.history[A] == [5.0, -5.0, 0.0]
    assert spec.ratings.deviation[A] == pytest.approx(math.sqrt(50 / 3))


def test_static_multipliers_follow_the_lowest_rated_of_earlier_iterations():
    after = [np.array([50, 60, 70, 80.0]),     # iteration 0: never read
             np.array([100, 90, 110, 120.0]),  # 1: B lowest -> 0.0
             np.array([95, 10, 100, 95.0]),    # 2: of A, C, D: A and D tie at 95, member order -> A 0.1
             np.array([1, 1, 130, 125.0]),     # 3: of C, D: D -> 0.2
             np.array([1, 1, 1, 1.0]),         # 4: C -> 0.1 * 3
             np.array([1, 1, 1, 1.0])]         # 5: nobody left
    assert static_multipliers(0, after, 4).tolist() == [1, 1, 1, 1]
    assert static_multipliers(1, after, 4).tolist() == [1, 1, 1, 1]
    assert static_multipliers(2, after, 4).tolist() == [1, 0.0, 1, 1]
    assert static_multipliers(3, after, 4).tolist() == [0.1, 0.0, 1, 1]
    assert static_multipliers(4, after, 4).tolist() == [0.1, 0.0, 1, 0.2]
    assert static_multipliers(6, after, 4).tolist() == [0.1, 0.0, 0.1 * 3, 0.2]
    with pytest.raises(ValueError, match="iterations 1..3"):
        static_multipliers(4, after[:3], 4)


def test_static_multipliers_stop_after_iteration_6s_ratings():
    after = [np.arange(100, 180, 10.0)] * 12  # 8 members; the lowest not yet picked is the next one
    six = [0.0, 0.1, 0.2, 0.1 * 3, 0.4, 0.5, 1, 1]
    assert static_multipliers(6, after, 8).tolist() == six[:5] + [1, 1, 1]
    assert static_multipliers(7, after, 8).tolist() == six  # iterations 1..6 pick one each
    assert static_multipliers(8, after, 8).tolist() == six  # iteration 7's ratings are never read
    assert static_multipliers(11, after, 8).tolist() == six


def test_static_scales_the_duelists_own_scores_in_the_update_only():
    cfg = ReputationConfig(variant="authors", authors_static=True, **SIMPLE)
    start = ratings([100, 300, 100, 100])
    after = [np.array([100, 100, 100, 100.0]), np.array([50, 200, 100, 100.0])]  # A lowest after 1
    table = {0: {C: (8, 6), D: (NAN, 7)}}
    result = run_iteration(start, [[A, B]], scores_for(4, table), cfg, iteration=2, ratings_after=after)
    # A's scores x 0.0, B's x 1.0; D failed: (5, 5) -> (0, 5)
    # delta = (100 * (0 - 6) + 100 * (0 - 5)) / 200 = -5.5: A loses though C preferred it
    assert result.update_scores[0] == pytest.approx([0, 5.5])
    assert result.ratings.rating == pytest.approx([100 - 5.5 * t, 300 + 5.5 * t, 100, 100])
    # the pairs use the plain scores: (8 + 5) / 2 = 6.5 vs (6 + 5) / 2 = 5.5, A chosen
    assert result.pairs.tolist() == [[A, B]] and result.pair_scores[0] == pytest.approx([6.5, 5.5])
    # iteration 1: no multipliers yet, delta = (100 * 2 + 100 * 0) / 200 = 1
    first = run_iteration(start, [[A, B]], scores_for(4, table), cfg, iteration=1, ratings_after=after[:1])
    assert first.ratings.rating == pytest.approx([100 + t, 300 - t, 100, 100])
    with pytest.raises(ValueError, match="iteration number"):
        run_iteration(start, [[A, B]], scores_for(4, table), cfg)


@pytest.mark.parametrize("variant", ["spec", "authors"])
def test_frozen_keeps_every_rating_and_weighs_judges_by_the_start(variant):
    cfg = ReputationConfig(variant=variant, frozen=True, **SIMPLE)
    start = ratings([100, 100, 300, 100], [0.5, 0.6, 0.7, 0.8], [[1.0, 2.0], [], [], [3.0]])
    table = {0: {C: (8, 6), D: (4, 6)}, 1: {C: (8, 6), D: (4, NAN)}}
    result = run_iteration(start, [[A, B], [A, B]], scores_for(4, table), cfg)
    assert result.ratings.rating.tolist() == [100, 100, 300, 100]
    assert result.ratings.deviation.tolist() == [0.5, 0.6, 0.7, 0.8]
    assert result.ratings.history == [[1.0, 2.0], [], [], [3.0]]
    assert result.changes.tolist() == [[0, 0], [0, 0]]
    # duel 1: (300 * 8 + 100 * 4) / 400 = 7 vs (300 * 6 + 100 * 6) / 400 = 6
    # duel 2, D missed b's score: spec 8 vs 6 (C alone); authors D counts 5, 5 -> 7.25 vs 5.75
    second = [8, 6] if variant == "spec" else [7.25, 5.75]
    assert result.final_scores == pytest.approx(np.array([[7, 6], second]))
    assert result.update_scores == pytest.approx(result.final_scores)
    assert result.pairs.tolist() == [[A, B], [A, B]]


@pytest.mark.parametrize("fields, message", [
    (dict(variant="elo"), "reputation.variant must be one of"),
    (dict(authors_static=True), "needs reputation.variant=authors"),
    (dict(variant="authors", authors_static=True, frozen=True), "frozen"),
])
def test_bad_combinations_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        ReputationConfig(**fields).validate()


def test_replay_accepts_the_authors_variant(tmp_path):
    d, r = write_inputs(tmp_path)
    out = tmp_path / "out.json"
    assert main(["replay", str(d), "--ratings", str(r), "--out", str(out), "--set", "reputation.variant=authors"]) == 0
    result = json.loads(out.read_text())
    # duel 0: flan_v2 (80) missed a's score, counts 5, 5: (120 * 7 + 80 * 5) / 200 = 6.2 vs 5
    assert result["update_scores"][0] == pytest.approx([6.2, 5.0])
    assert result["update_scores"][1] == [5.0, 5.0]  # no valid judge: every judge counts 5, 5
    assert result["ratings"]["oasst1"]["history"] == [0.0]  # (d) and (b): a fresh history with that 0


def test_replay_static_reads_the_earlier_ratings_of_a_run(tmp_path):
    d, r = write_inputs(tmp_path)
    run = RunPaths(tmp_path / "run")
    run.ratings(1).parent.mkdir(parents=True)
    for k in (1, 2):  # lima lowest after iteration 1 (the ratings file of iteration 2)
        ratings = {n: {**v, "rating": 50.0 if (n == "lima" and k == 2) else 100.0} for n, v in RATINGS.items()}
        run.ratings(k).write_text(json.dumps(ratings))
    args = ["replay", str(d), "--ratings", str(r), "--set", "reputation.variant=authors"]
    static = args + ["--set", "reputation.authors_static=true"]
    assert main(static + ["--out", str(tmp_path / "no.json")]) == 2  # no --iteration / --run-dir
    assert not (tmp_path / "no.json").exists()
    assert main(static + ["--out", str(tmp_path / "s.json"), "--iteration", "2", "--run-dir", str(run.root)]) == 0
    assert main(args + ["--out", str(tmp_path / "p.json")]) == 0
    s, p = (json.loads((tmp_path / f).read_text()) for f in ("s.json", "p.json"))
    # duel 0, lima's own scores x 0.0: 0 vs (120 * 5 + 80 * 5) / 200 = 5
    assert s["update_scores"][0] == pytest.approx([0.0, 5.0])
    assert s["ratings"]["lima"]["rating"] < 100 < p["ratings"]["lima"]["rating"]
    assert main(static + ["--out", str(tmp_path / "x.json"), "--iteration", "3", "--run-dir", str(run.root)]) == 2


def test_simulate_runs_the_authors_variant():
    cfg = SimulationConfig(members=6, iterations=4, duels=300, seed=7,
                           reputation=ReputationConfig(variant="authors", authors_static=True))
    one = simulate(cfg)
    assert one == simulate(cfg) and one != simulate(SimulationConfig(members=6, iterations=4, duels=300, seed=7))
    proc = subprocess.run([sys.executable, "-m", "sparta_hpc.cli", "simulate", "--members", "5", "--iterations", "2",
                           "--duels", "100", "--set", "reputation.variant=authors",
                           "--set", "reputation.authors_static=true"], capture_output=True, text=True, check=True)
    rows = proc.stdout.splitlines()
    assert any(row.strip().startswith("0  authors+static") for row in rows)
    assert any(row.strip().startswith("spec") for row in rows)
