"""The evaluation plan's shards and the table's selection rule, on hand-made figures (fast tier)."""

import pytest

from sparta_hpc.eval.plan import cut_shards
from sparta_hpc.eval.table import headline
from sparta_hpc.rundir.paths import INITIAL


def test_items_are_cut_into_shards_that_span_small_tasks():
    items = [{"name": "a", "n": 3}, {"name": "b", "n": 1}, {"name": "c", "n": 4}]
    shards = cut_shards(items, range(3), 3)
    assert [s["segments"] for s in shards] == [[[0, 0, 3]], [[1, 0, 1], [2, 0, 2]], [[2, 2, 4]]]
    assert len({s["name"] for s in shards}) == 3
    only_c = cut_shards(items, [2], 3)
    assert [s["segments"] for s in only_c] == [[[2, 0, 3]], [[2, 3, 4]]]
    # appending an item keeps the earlier shards (and their names): their results are reused
    more = cut_shards(items + [{"name": "d", "n": 2}], range(4), 3)
    assert more[:2] == shards[:2] and more[2]["segments"] == [[2, 2, 4], [3, 0, 1]]


def f(score, n=100):
    return {"score": score, "n": n, "stderr": 0.01, "missing": 0, "metric": "exact_match"}


def test_both_sides_are_selected_on_dev_and_reported_on_test():
    scores = {
        INITIAL: {"x": {"gsm8k": {"dev": f(0.50), "test": f(0.60)}},
                  "y": {"gsm8k": {"dev": f(0.55), "test": f(0.52)}}},  # best on dev, worse on test
        0: {"x": {"gsm8k": {"dev": f(0.70), "test": f(0.57)}}, "y": {"gsm8k": {"dev": f(0.60), "test": f(0.80)}}},
        1: {"x": {"gsm8k": {"dev": f(0.65), "test": f(0.90)}}, "y": {"gsm8k": {"dev": f(0.40), "test": f(0.40)}}},
    }
    (row,) = headline(scores)
    assert (row["select"], row["report"]) == ("dev", "test")
    assert row["best_init"][:2] == ("y", INITIAL) and row["best_init"][2]["score"] == 0.52
    assert row["sparta"][:2] == ("x", 0) and row["sparta"][2]["score"] == 0.57  # not the test-best (x @ 1)
    assert row["change"] == pytest.approx(0.57 / 0.52 - 1)


def test_a_single_split_serves_both_roles():
    scores = {INITIAL: {"x": {"com2": {"test": f(5.0)}}}, 0: {"x": {"com2": {"test": f(6.0)}}}}
    (row,) = headline(scores)
    assert (row["select"], row["report"]) == ("test", "test") and row["change"] == pytest.approx(0.2)


def test_a_selected_point_without_its_test_result_says_how_to_get_it():
    scores = {INITIAL: {"x": {"gsm8k": {"dev": f(0.5), "test": f(0.5)}}},
              0: {"x": {"gsm8k": {"dev": f(0.9)}}}}  # dev only, as during a run with eval.split=dev
    (row,) = headline(scores)
    assert row["sparta"][:2] == ("x", 0) and row["sparta"][2] is None and row["change"] is None
