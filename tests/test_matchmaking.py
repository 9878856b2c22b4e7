import numpy as np
import pytest

from sparta_hpc.algorithm.matchmaking import MatchConfig, closest_members, draw_instructions, make_duels


def test_deterministic_in_seed_and_iteration():
    r = np.array([100.0, 90, 110, 95, 105])
    cfg = MatchConfig()
    one = make_duels(r, 23, cfg, seed=42, iteration=3)
    assert (one == make_duels(r, 23, cfg, seed=42, iteration=3)).all()
    assert not (one == make_duels(r, 23, cfg, seed=42, iteration=4)).all()
    assert not (one == make_duels(r, 23, cfg, seed=43, iteration=3)).all()


def test_rounds_give_every_member_one_first_slot():
    duels = make_duels(np.full(5, 100.0), 23, MatchConfig(), seed=1, iteration=0)
    for r in range(4):  # 4 full rounds of 5, then 3 left-over slots
        assert sorted(duels[5 * r:5 * r + 5, 0]) == [0, 1, 2, 3, 4]
    assert len(duels) == 23


def test_closest_members_breaks_ties_by_index():
    r = np.array([100.0, 105, 95, 120, 100])
    assert closest_members(r, 0, 1).tolist() == [4]
    assert closest_members(r, 0, 3).tolist() == [4, 1, 2]


def test_alpha_one_is_uniform_over_all_others():
    # with alpha=1 the far-away member 3 is an opponent about 1/3 of the time
    r = np.array([100.0, 101, 102, 500])
    duels = make_duels(r, 6000, MatchConfig(alpha=1.0, k=1), seed=0, iteration=0)
    share = np.mean(duels[duels[:, 0] == 0, 1] == 3)
    assert 0.28 < share < 0.39
    # with alpha=0 and k=1 member 0 always meets member 1, its closest
    duels = make_duels(r, 400, MatchConfig(alpha=0.0, k=1), seed=0, iteration=0)
    assert set(duels[duels[:, 0] == 0, 1]) == {1}


def test_draw_instructions_prefers_unused_ones():
    used = np.zeros(10, dtype=bool)
    used[:6] = True
    picked = draw_instructions(10, 6, used, seed=42, iteration=1)
    assert sorted(picked[:4]) == [6, 7, 8, 9]  # all four fresh ones first
    assert len(set(picked)) == 6
    again = draw_instructions(10, 25, used, seed=42, iteration=1)
    assert len(again) == 25 and (again == draw_instructions(10, 25, used, 42, 1)).all()


def test_bad_match_config():
    with pytest.raises(ValueError, match="alpha"):
        MatchConfig(alpha=1.5).validate()
    with pytest.raises(ValueError, match="k"):
        MatchConfig(k=0).validate()
