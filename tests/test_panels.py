"""Judge panels (judge.panel_size, beyond the paper): the draw, the config checks, the plan, simulate."""

import re
import subprocess
import sys

import numpy as np
import pytest

from sparta_hpc.algorithm.matchmaking import MatchConfig, draw_panels, make_duels
from sparta_hpc.algorithm.reputation import Ratings, ReputationConfig
from sparta_hpc.algorithm.variants import run_iteration
from sparta_hpc.commands.simulate import SimulationConfig, panel_sweep
from sparta_hpc.config.checks import validate
from sparta_hpc.config.schema import load_config
from sparta_hpc.errors import ConfigError
from sparta_hpc.stages import plan

from .test_config import write_config


def duels_of(m: int, n: int, seed: int = 0) -> np.ndarray:
    return make_duels(np.full(m, 100.0), n, MatchConfig(alpha=1.0), seed, 0)


@pytest.mark.parametrize("sampling", ["uniform", "reputation"])
def test_a_panel_is_k_distinct_members_outside_the_duel_and_a_pure_function_of_seed_iteration_and_duel(sampling):
    m, k = 9, 4
    duels = duels_of(m, 300)
    weights = np.linspace(20, 200, m)
    panels = draw_panels(duels, m, k, sampling, weights, seed=42, iteration=3)
    assert panels.shape == (300, k)
    for (a, b), panel in zip(duels, panels):
        assert list(panel) == sorted(set(panel)) and a not in panel and b not in panel
    assert (panels == draw_panels(duels, m, k, sampling, weights, 42, 3)).all()
    assert not (panels == draw_panels(duels, m, k, sampling, weights, 42, 4)).all()
    assert not (panels == draw_panels(duels, m, k, sampling, weights, 43, 3)).all()
    # duel c's panel reads row c of the stream only: fewer duels leave the first panels as they were
    assert (draw_panels(duels[:50], m, k, sampling, weights, 42, 3) == panels[:50]).all()
    # k = M - 2: everyone outside the duel
    full = draw_panels(duels, m, m - 2, sampling, weights, 42, 3)
    assert all(sorted(set(range(m)) - {a, b}) == list(p) for (a, b), p in zip(duels, full))


def test_uniform_panels_include_everyone_equally_and_reputation_panels_favour_the_reputable():
    m, k, n = 8, 2, 6000
    duels = np.tile([[0, 1]], (n, 1))  # judges 2..7
    weights = np.array([100, 100, 10, 20, 40, 80, 160, 320], dtype=float)
    share = np.bincount(draw_panels(duels, m, k, "uniform", weights, 1, 0).ravel(), minlength=m)[2:] / n
    assert np.allclose(share, k / 6, atol=0.03)
    # k = 1: chosen with probability proportional to reputation among the six
    one = np.bincount(draw_panels(duels, m, 1, "reputation", weights, 1, 0).ravel(), minlength=m)[2:] / n
    assert np.allclose(one, weights[2:] / weights[2:].sum(), atol=0.02)
    two = np.bincount(draw_panels(duels, m, k, "reputation", weights, 1, 0).ravel(), minlength=m)[2:] / n
    assert (np.diff(two) > 0).all()  # more reputation, more often on the panel


def test_bad_panels_are_refused():
    duels = duels_of(5, 4)
    for k in (0, 4):
        with pytest.raises(ValueError, match="1..3"):
            draw_panels(duels, 5, k, "uniform", None, 0, 0)
    with pytest.raises(ValueError, match="sampling"):
        draw_panels(duels, 5, 2, "best", None, 0, 0)
    with pytest.raises(ValueError, match="weight > 0"):
        draw_panels(duels, 5, 2, "reputation", np.zeros(5), 0, 0)


def test_a_judge_outside_the_panel_is_no_judge_of_the_duel():
    start = Ratings.initial(5, ReputationConfig())
    scores = np.full((1, 5, 2), np.nan)
    scores[0, 3] = 9, 2  # the panel is member 3 alone
    result = run_iteration(start, [[0, 1]], scores, ReputationConfig())
    assert result.n_judges.tolist() == [1] and result.update_scores[0].tolist() == [9, 2]


@pytest.mark.parametrize("override, message", [
    (["judge.panel_size=0"], "judge.panel_size: must be in 1..2"),
    (["judge.panel_size=3"], "judge.panel_size: must be in 1..2"),
    (["judge.panel_size=1", "method=self_rewarding"], "method self_rewarding has its own judge"),
    (["judge.panel_size=1", "reputation.variant=authors"], "use variant spec"),
    (["judge.panel_size=1", "judge.panel_sampling=best"], "judge.panel_sampling: must be one of"),
])
def test_bad_panel_settings_are_refused(tmp_path, fake_model, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(load_config(write_config(tmp_path, fake_model), override))


def test_the_plan_lists_each_duels_panel_and_only_groups_with_work(tmp_path, fake_model):
    cfg = load_config(write_config(tmp_path, fake_model),  # the tiny tribe: 4 members
                      ["judge.panel_size=1", "judge.panel_sampling=reputation", "tribe.duels_per_iteration=40"])
    validate(cfg)
    p = plan.make_plan(cfg, 0, plan.initial_ratings(cfg), set())
    assert all(len(j) == 1 and j[0] not in pair for j, pair in zip(p["judges"], p["authors"]))
    assert p["judges"] == plan.make_plan(cfg, 0, plan.initial_ratings(cfg), set())["judges"]
    full = load_config(write_config(tmp_path, fake_model), ["tribe.duels_per_iteration=40"])
    assert all(len(j) == 2 for j in plan.make_plan(full, 0, plan.initial_ratings(full), set())["judges"])


def test_panel_sweep_counts_judgments_and_the_simulate_command_prints_it():
    cfg = SimulationConfig(members=6, iterations=2, duels=200, seed=3)
    rows = panel_sweep(cfg, [1, None])
    assert [(r.panel_size, r.sampling, r.judgments) for r in rows] == \
        [(1, "uniform", 400), (1, "reputation", 400), (None, "uniform", 1600)]
    assert all(0 < r.pair_accuracy <= 1 for r in rows)
    proc = subprocess.run([sys.executable, "-m", "sparta_hpc.cli", "simulate", "--members", "6", "--iterations",
                           "2", "--duels", "200", "--seed", "3", "--panel-sizes", "1,all"],
                          capture_output=True, text=True, check=True)
    lines = proc.stdout.splitlines()
    assert any(line.split()[:2] == ["1", "400"] for line in lines)
    assert any(line.split()[:2] == ["all", "1,600"] for line in lines)
    bad = subprocess.run([sys.executable, "-m", "sparta_hpc.cli", "simulate", "--members", "6", "--panel-sizes",
                          "5"], capture_output=True, text=True)
    assert bad.returncode == 2 and "must be in 1..4" in bad.stderr


def test_a_panel_iteration_aggregates_on_its_panels_scores_alone(tmp_path):
    from sparta_hpc.rundir.archive import read_archive
    from sparta_hpc.stages import aggregate

    from .scripted_model import scripted_models
    from .test_stage_requests import make_config, run_iteration_stages

    cfg = make_config(tmp_path / "run", members=6, groups=2, duels=12, gen_shard=4, judge_shard=5, rounds=1,
                      panel_size=2, panel_sampling="reputation")
    with scripted_models():
        paths = run_iteration_stages(cfg)
    aggregate.run(cfg, paths, 0)
    a = read_archive(paths.archive(0))
    judged = ~np.isnan(a["judgments/score"]).any(axis=2)
    assert (judged.sum(axis=1) <= 2).all()
    assert a["weighted_scores/n_judges"].tolist() == judged.sum(axis=1).tolist()
    assert paths.ratings(1).exists() and paths.is_done(0, "aggregate")
