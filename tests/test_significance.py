"""The paired bootstrap against BEST INIT, and what compare prints of it (fast tier).

The p-value on hand-made paired scores (against an exact enumeration of every resample), then
compare on two hand-made run directories whose per-item test scores are known: the marks, N and
standard errors of the markdown, the CSV's columns, and --selection best-dev vs last with the
number of candidates each row was chosen among. The suite table and compare on scripted-model runs
are checked in tests/test_suite.py and tests/test_methods.py.
"""

import csv
import io
import itertools
import json
import math
from contextlib import redirect_stdout

import numpy as np
import pytest
import yaml

from sparta_hpc import cli
from sparta_hpc.commands.compare import compare
from sparta_hpc.eval.significance import item_scores, paired_bootstrap, paired_test, stars
from sparta_hpc.eval.table import headline, load
from sparta_hpc.rundir.paths import INITIAL, RunPaths

from .conftest import SAMPLES

# ------------------------------------------------------------------ the p-value


def exact_p(base: list[int], other: list[int]) -> float:
    """P(|mean of a resample of the differences - their mean| >= |their mean|), over every one of the
    n^n equally likely resamples: in integer sums, so no rounding decides a tie."""
    diff = [o - b for b, o in zip(base, other)]
    n, total = len(diff), sum(diff)
    # |s/n - total/n| >= |total/n|  <=>  |s - total| >= |total|
    hits = sum(abs(sum(diff[i] for i in draw) - total) >= abs(total) for draw in itertools.product(range(n), repeat=n))
    return hits / n ** n


def test_identical_systems_give_p_1_and_no_mark():
    scores = [1, 0, 1, 1, 0, 0, 1, 0]
    p, se = paired_bootstrap(scores, scores)
    assert p == 1.0 and se == 0.0 and stars(p) == ""


def test_a_large_consistent_difference_gives_p_below_0001():
    base = np.zeros(100)
    other = np.r_[np.ones(60), np.zeros(40)]  # better on 60 items, worse on none
    p, se = paired_bootstrap(base, other)
    assert p < 0.001 and p == pytest.approx(1 / 10_001) and stars(p) == "***"
    assert se == pytest.approx(math.sqrt(0.6 * 0.4 / 100), rel=0.05)  # the binomial standard error
    assert paired_bootstrap(other, base)[0] == p  # two-sided: the sign does not matter


def test_a_small_example_matches_the_exact_enumeration_of_its_resamples():
    base, other = [0, 0, 1, 0, 1, 1], [1, 1, 1, 0, 0, 1]  # two items gained, one lost
    want = exact_p(base, other)
    assert 0.2 < want < 0.9
    p, _ = paired_bootstrap(base, other, resamples=10_000, seed=0)
    assert p == pytest.approx(want, abs=0.015)  # 3 standard errors of a 10,000-resample estimate
    # ratings, not 0/1: a larger example against the enumeration too (5^5 resamples)
    base, other = [7, 5, 6, 8, 4], [8, 5, 8, 7, 6]
    assert paired_bootstrap(base, other)[0] == pytest.approx(exact_p(base, other), abs=0.015)


def test_a_seeded_result_is_reproducible_and_the_seed_matters():
    rng = np.random.default_rng(7)
    base, other = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    assert paired_bootstrap(base, other, seed=3) == paired_bootstrap(base, other, seed=3)
    assert paired_bootstrap(base, other, seed=3)[0] != paired_bootstrap(base, other, seed=4)[0]


def test_stars_follow_the_legend_thresholds():
    assert [stars(p) for p in (0.0009, 0.001, 0.009, 0.01, 0.049, 0.05, None)] == \
        ["***", "**", "**", "*", "*", "", ""]


def test_items_pair_on_what_was_asked_and_a_cell_without_items_is_refused():
    base = {("q1", 1): 1.0, ("q2", 1): 0.0, ("q3", 1): 1.0}
    other = {("q3", 1): 1.0, ("q2", 1): 1.0}  # another order, one item fewer
    test = paired_test(base, other)
    assert test["n_paired"] == 2 and "paired on the 2 items" in test["note"] and "BEST INIT 3" in test["note"]
    assert paired_test(base, dict(base))["note"] == "" and paired_test(base, dict(base))["p"] == 1.0
    assert paired_test(base, {("q1", 1): 0.0})["p"] is None  # one shared item: no test
    assert paired_test(None, other)["note"] == "no per-item samples file: no test"


# ------------------------------------------------------------------ compare on hand-made runs

ITEMS = 200
# per (member, point): its dev score and which test items it answered right
INIT_A = [int(i % 2 == 0) for i in range(ITEMS)]  # 0.50
BETTER = [int(i % 2 == 0 or i % 10 < 6) for i in range(ITEMS)]  # 0.80: right wherever INIT_A is, and more
SPARTA = {(INITIAL, "a"): (0.50, INIT_A), (INITIAL, "b"): (0.40, [1 - c for c in INIT_A]),
          (0, "a"): (0.80, BETTER), (0, "b"): (0.45, INIT_A),
          (1, "a"): (0.55, BETTER), (1, "b"): (0.60, INIT_A)}  # the last point's dev-best: b, as good as BEST INIT
MIXED = [int((i % 2 == 0) != (i % 20 in (0, 1, 3))) for i in range(ITEMS)]  # some items gained, fewer lost
BASELINE = {(0, "a"): (0.52, MIXED), (1, "a"): (0.51, INIT_A)}


def write_run(root, method: str, points: dict, answered=range(ITEMS)):
    """A finished run directory: its config, every point's summary and the test samples."""
    paths = RunPaths(root)
    root.mkdir(parents=True)
    config = {"method": method, "tribe": {"iterations": 2, "members": [{"name": n, "model": "/m"} for n in "ab"]},
              "eval": {"tasks": ["gsm8k"], "data_dir": str(SAMPLES)}}
    paths.config.write_text(yaml.safe_dump(config))
    summaries: dict = {}
    for (point, member), (dev, correct) in points.items():
        kept = [correct[i] for i in answered]
        test = sum(kept) / len(kept)
        summaries.setdefault(point, {})[member] = {"gsm8k": {
            "dev": {"score": dev, "n": 50, "stderr": 0.07, "missing": 0, "metric": "exact_match"},
            "test": {"score": test, "n": len(kept), "stderr": math.sqrt(test * (1 - test) / (len(kept) - 1)),
                     "missing": 0, "metric": "exact_match"}}}
        samples = paths.eval_samples(point, member, "gsm8k", "test")
        samples.parent.mkdir(parents=True, exist_ok=True)
        samples.write_text("".join(json.dumps({"doc_index": k, "correct": correct[i], "response": "",
                                               "prompt": [{"role": "user", "content": f"question {i}"}]}) + "\n"
                                   for k, i in enumerate(answered)))
    for point, scores in summaries.items():
        paths.eval_summary(point).write_text(json.dumps({"point": point, "scores": scores}))
    return paths


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("significance")
    # the baseline answered 190 of the items, in another order: it pairs on those
    return (write_run(folder / "tribe", "sparta", SPARTA),
            write_run(folder / "base", "self_rewarding", BASELINE, answered=list(range(ITEMS - 1, 9, -1))))


def run_compare(runs, *argv) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["compare", *(str(p.root) for p in runs), *argv]) == 0
    return out.getvalue()


def row_of(text: str, label: str) -> list[str]:
    (line,) = [x for x in text.splitlines() if x.startswith(f"| {label} |")]
    return [c.strip() for c in line.strip("|").split("|")]


def test_compare_marks_the_significant_difference_with_n_and_stderr(hand_made):
    text = run_compare(hand_made)
    assert "| method | gsm8k | vs BEST INIT | selected among |" in text
    assert row_of(text, "BEST INIT") == ["BEST INIT", "0.500 ± 0.035 (N=200)", "", "2 checkpoints"]
    assert row_of(text, "sparta (tribe)") == ["sparta (tribe)", "**0.800** ± 0.028 (N=200) ***", "+60.0%",
                                              "4 checkpoints"]
    base = row_of(text, "self_rewarding (base)")
    assert base[1].startswith("0.547 ± 0.036 (N=190)") and base[3] == "2 checkpoints"
    assert "`*` p < 0.05, `**` p < 0.01, `***` p < 0.001: the difference from BEST INIT in a two-sided paired " \
           "bootstrap over the test items (10,000 resamples, seed 0)" in text
    assert "note: gsm8k, self_rewarding (base): paired on the 190 items both have a score for (BEST INIT 200, " \
           "this model 190)" in text


def test_compare_csv_has_the_p_value_n_and_stderr_columns(hand_made):
    rows = [r for r in csv.reader(io.StringIO(run_compare(hand_made, "--format", "csv"))) if r]
    assert rows[0] == ["method", "gsm8k", "improvement_over_best_init", "gsm8k_stderr", "gsm8k_n", "gsm8k_p_value",
                       "gsm8k_n_paired", "gsm8k_candidates"]
    got = {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}
    assert got["BEST INIT"]["gsm8k_p_value"] == "" and got["BEST INIT"]["gsm8k_candidates"] == "2"
    sparta = got["sparta (tribe)"]
    assert float(sparta["gsm8k"]) == 0.8 and sparta["gsm8k_n"] == "200" and float(sparta["gsm8k_p_value"]) < 0.001
    assert float(sparta["gsm8k_stderr"]) == pytest.approx(math.sqrt(0.16 / 199))
    tribe, base = hand_made
    want = paired_test(item_scores(tribe.eval_samples(INITIAL, "a", "gsm8k", "test")),
                       item_scores(base.eval_samples(0, "a", "gsm8k", "test")))
    assert float(got["self_rewarding (base)"]["gsm8k_p_value"]) == pytest.approx(want["p"])
    assert got["self_rewarding (base)"]["gsm8k_n_paired"] == "190"


def test_the_seed_is_the_compares_and_fixes_its_p_values(hand_made):
    p = {seed: compare([r.root for r in hand_made], seed=seed)["rows"][2]["tests"]["gsm8k"]["p"] for seed in (0, 1)}
    assert p[0] == compare([r.root for r in hand_made])["rows"][2]["tests"]["gsm8k"]["p"] and p[0] != p[1]
    assert "(10,000 resamples, seed 1)" in run_compare(hand_made, "--seed", "1")


def test_selection_last_picks_the_last_iterations_member_and_says_among_how_many(hand_made):
    tribe, base = hand_made
    (dev,) = headline(load(tribe))
    (last,) = headline(load(tribe), "last")
    assert dev["sparta"][:2] == ("a", 0) and last["sparta"][:2] == ("b", 1)
    assert dev["candidates"] == {"best_init": [("a", INITIAL), ("b", INITIAL)],
                                 "sparta": [("a", 0), ("b", 0), ("a", 1), ("b", 1)]}
    assert last["candidates"] == {"best_init": [("a", INITIAL), ("b", INITIAL)], "sparta": [("a", 1), ("b", 1)]}
    assert headline(load(base), "last")[0]["sparta"][:2] == ("a", 1)
    text = run_compare(hand_made, "--selection", "last")
    assert "among the last evaluated iteration's members" in text
    # b @ iter 1 answered exactly BEST INIT's items right: no difference, no mark (every row ties: all bold)
    assert row_of(text, "sparta (tribe)") == ["sparta (tribe)", "**0.500** ± 0.035 (N=200)", "+0.0%", "2 checkpoints"]
    assert row_of(text, "self_rewarding (base)")[3] == "1 checkpoint"
    assert compare([r.root for r in hand_made], "last")["rows"][1]["tests"]["gsm8k"]["p"] == 1.0
    with pytest.raises(SystemExit):
        run_compare(hand_made, "--selection", "first")
