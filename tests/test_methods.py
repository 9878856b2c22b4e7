"""The self-alignment baselines: their pair builders on hand-made arrays, and each method through the
whole pipeline in this process on the scripted model (fast tier)."""

import json
import math

import numpy as np
import pytest
import yaml

from sparta_hpc import driver
from sparta_hpc.methods.pairs import (
    best_vs_worst,
    judge_pairs,
    meta_candidates,
    spin_pairs,
    sppo_pairs,
    symmetric_preference,
    win_rates,
)
from sparta_hpc.rundir.archive import read_archive
from sparta_hpc.rundir.files import read_json
from sparta_hpc.rundir.paths import INITIAL, STAGES, RunPaths

from .conftest import SAMPLES
from .scripted_model import scripted_models

NAN = math.nan


def test_self_rewarding_pairs_best_vs_worst_by_the_models_own_scores_ties_dropped():
    scores = np.array([[7.0, 3.0, 9.0, 3.0],  # best 2, worst 1 (the first of the tied worst)
                       [5.0, 5.0, 5.0, 5.0],  # all tied: no pair
                       [NAN, 6.0, NAN, NAN],  # one valid score: no pair
                       [NAN, 4.0, 8.5, 2.0]])
    assert best_vs_worst(scores) == [(0, 2, 1, 9.0, 3.0), (3, 2, 3, 8.5, 2.0)]


def test_meta_rewarding_compares_disagreeing_judgments_and_makes_judge_pairs():
    parsed = np.array([[[8.0, 3.0, 5.0], [6.0, 6.0, NAN]]])  # (n=1, S=2, R=3)
    rounds = meta_candidates(parsed)
    assert rounds.tolist() == [[[0, 1], [-1, -1]]]  # answer 1's judgments agree: nothing to compare
    # the meta-judge finds the low judgment (round 1) better: it is chosen
    assert judge_pairs(parsed, rounds, np.array([[0.2, NAN]])) == [(0, 0, 1, 0, 0.8)]
    assert judge_pairs(parsed, rounds, np.array([[0.9, NAN]])) == [(0, 0, 0, 1, 0.9)]
    assert judge_pairs(parsed, rounds, np.array([[0.5, NAN]])) == []  # no preference, no pair


def test_sppo_targets_follow_from_the_win_probabilities():
    p_first = np.array([[[NAN, 0.9, 0.8], [0.3, NAN, 0.6], [0.1, 0.5, NAN]]])
    prob = symmetric_preference(p_first)  # both orders: (P(i first) + 1 - P(j first)) / 2
    assert prob[0, 0, 1] == pytest.approx((0.9 + 1 - 0.3) / 2) and prob[0, 1, 0] == pytest.approx(1 - prob[0, 0, 1])
    rates = win_rates(prob)
    assert rates[0].tolist() == pytest.approx([(0.8 + 0.85) / 2, (0.2 + 0.55) / 2, (0.15 + 0.45) / 2])
    (pair,) = sppo_pairs(prob)
    assert pair[:3] == (0, 0, 2) and pair[3] == pytest.approx(rates[0, 0]) and pair[4] == pytest.approx(rates[0, 2])
    assert sppo_pairs(np.full((1, 2, 2), 0.5)) == []  # equal win rates: no pair


def test_spin_pairs_use_the_reference_answer_unless_the_sample_already_is_it():
    assert spin_pairs(["42", "Paris", ""], ["41", " Paris ", "x"]) == [0]


# ------------------------------------------------------------------ each method end to end

MEMBERS = ["ada", "bo", "cy"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("methods")
    (folder / "base").mkdir()
    (folder / "base" / "config.json").write_text("{}")
    config = {"tribe": {"iterations": 1, "duels_per_iteration": 6,
                        "members": [{"name": n, "model": str(folder / "base"), "temperature": 0.7} for n in MEMBERS]},
              "instructions": {"source": "demo", "with_reference_only": True},
              "generate": {"duels_per_shard": 4}, "judge": {"duels_per_shard": 3, "rounds": 2, "temperature": 0.7,
                                                           "answer_prefix": '{"score": '},
              "baseline": {"samples": 3},
              "eval": {"tasks": ["gsm8k", "medqa"], "data_dir": str(SAMPLES), "limit": 2},
              "cluster": {"executor": "debug"}}
    path = folder / "methods.yaml"
    path.write_text(yaml.safe_dump(config))
    return folder, path


BASELINES = ["self_rewarding", "meta_rewarding", "spin", "sppo"]


@pytest.fixture(scope="module")
def runs(base):
    """One iteration of every baseline, and of SPARTA, on the same tribe and instructions."""
    folder, config = base
    out = {}
    for method in ["sparta"] + BASELINES:
        paths = RunPaths(folder / method)
        with scripted_models() as opened:
            assert driver.main(["--config", str(config), f"run.dir={paths.root}", f"method={method}"]) == 0
        out[method] = paths, opened
    return out


@pytest.mark.parametrize("method", BASELINES)
def test_every_baseline_runs_through_the_same_stages_and_trains_only_its_model(runs, method):
    paths, opened = runs[method]
    policy = read_json(paths.policy)
    assert policy["member"] in MEMBERS and "BEST INIT" in policy["why"]  # picked by the initial evaluation
    assert all(paths.is_done(0, s) for s in STAGES)
    plan = read_json(paths.plan(0))
    p = MEMBERS.index(policy["member"])
    assert plan["method"] == method and {a for row in plan["authors"] for a in row} == {p}
    assert len(plan["authors"][0]) == (1 if method == "spin" else 3)
    # only the aligned model trains and is evaluated after training
    trained = [m for m in MEMBERS if paths.is_done(0, "train", m)]
    assert trained == [policy["member"]]
    assert sorted(read_json(paths.eval_summary(0))["scores"]) == [policy["member"]]
    assert sorted(read_json(paths.eval_summary(INITIAL))["scores"]) == sorted(MEMBERS)
    pairs = [json.loads(x) for x in paths.pairs(0).read_text().splitlines()]
    a = read_archive(paths.archive(0))
    assert a["attrs"]["method"] == method and a["responses/author"].shape == (6, len(plan["authors"][0]))
    assert pairs and [json.loads(x) for x in a["pairs/json"]] == pairs
    for row in pairs:
        c = row["duel"]
        assert row["chosen"] != row["rejected"]
        if row["kind"] == "response":
            assert row["prompt"] == [{"role": "user", "content": plan["instructions"][c]["text"]}]
            assert row["rejected"][0]["content"] == a["responses/text"][c, row["rejected_slot"]]
    if method == "spin":  # chosen: the reference answer
        assert all(r["chosen"][0]["content"] == plan["instructions"][r["duel"]]["reference"] for r in pairs)
        assert not a["judgments/raw"].any()  # nobody judges
    if method in ("self_rewarding", "meta_rewarding"):  # the model judged its own answers, every round
        raw = a["judgments/raw"]
        assert all(raw[:, p].ravel()) and not raw[:, [j for j in range(3) if j != p]].any()
        assert all(r["score_chosen"] > r["score_rejected"] for r in pairs if r["kind"] == "response")
    if method == "meta_rewarding":  # judge pairs: two of its own judgments of one answer
        judge_rows = [r for r in pairs if r["kind"] == "judge"]
        assert judge_rows and all("[Response]" in r["prompt"][-1]["content"] for r in judge_rows)
        assert (a["meta/rounds"] >= 0).any()
    if method == "sppo":
        assert np.isfinite(a["comparisons/prob"][:, 0, 1:]).all()
        assert all(r["score_chosen"] > r["score_rejected"] for r in pairs)  # win rates
    summary = read_json(paths.summary(0))
    assert summary["method"] == method and summary["pairs"] == sum(r["kind"] == "response" for r in pairs)
    loads = {slot.split("-")[0] for slot, _, _ in opened}
    assert "generate" in loads and ("judge" in loads) == (method != "spin")


@pytest.mark.parametrize("change, message", [
    (["method=spin", "instructions.with_reference_only=false"], "have none"),
    (["method=meta_rewarding", "judge.rounds=1"], "judge.rounds >= 2"),
    (["method=self_rewarding", "eval.tasks=[]"], "BEST INIT needs the initial evaluation"),
    (["method=sppo", "baseline.samples=1"], "need >= 2"),
    (["method=self_rewarding", "baseline.member=zed"], "no member 'zed'"),
    (["train.loss_type=dpo"], "train.loss_type: must be one of"),
    (["method=self_rewarding", "baseline.length_control=0.2"], "baseline.length_control: Meta-Rewarding's"),
])
def test_bad_method_settings_are_refused_before_any_job(base, tmp_path, caplog, change, message):
    _, config = base
    assert driver.main(["--config", str(config), f"run.dir={tmp_path / 'run'}", *change]) == 2
    assert message in caplog.text and not (tmp_path / "run").exists()


def test_compare_prints_one_row_per_method_and_a_column_per_task(runs, capsys):
    from sparta_hpc import cli

    capsys.readouterr()
    assert cli.main(["compare", *(str(paths.root) for paths, _ in runs.values())]) == 0
    table = capsys.readouterr().out
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0] == "| method | gsm8k | medqa | vs BEST INIT | selected among |"
    labels = [line.split(" | ")[0][2:] for line in lines[1:]]
    assert labels == ["BEST INIT"] + [f"{m} ({m})" for m in ["sparta"] + BASELINES]
    assert "**" in table  # the best value per column is marked
    # each value with its standard error and N (eval.limit 2), the significance legend, and among how many
    # checkpoints each row chose: the 3 experts at the start (each run evaluated them: counted once), the
    # tribe's 3 members after its 1 iteration, a baseline's one model
    assert all(line.count(" (N=2)") == 2 and line.count(" ± ") == 2 for line in lines[1:])
    assert "`***` p < 0.001: the difference from BEST INIT in a two-sided paired bootstrap" in table
    assert [line.split(" | ")[-1] for line in lines[1:]] == ["3 checkpoints |"] * 2 + ["1 checkpoint |"] * 4
    # the instructions are the same for every method (seed, iteration)
    texts = {m: [r["text"] for r in read_json(paths.plan(0))["instructions"]] for m, (paths, _) in runs.items()}
    assert all(t == texts["sparta"] for t in texts.values())


@pytest.mark.parametrize("previous", [True, False])
def test_spin_trains_iteration_1_on_its_pairs_and_iteration_0s_unless_told_not_to(base, tmp_path, capsys, previous):
    """SPIN's iterations 1-3 train on the previous iteration's synthetic data too (uclaml/SPIN README:203):
    iteration 1's rows are iteration 0's pairs.jsonl as written, then iteration 1's; the marker counts them."""
    from sparta_hpc.config.schema import load_config
    from sparta_hpc.stages import train

    _, config = base
    paths = RunPaths(tmp_path / "run")
    overrides = ["method=spin", "tribe.iterations=2", "baseline.member=bo", "eval.tasks=[]",
                 f"run.dir={paths.root}", f"baseline.spin_previous={str(previous).lower()}"]
    assert driver.main(["--config", str(config), *overrides, "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "method spin: instructions.source demo, the pool SPARTA draws from, only its instructions with a " \
           "reference" in plan
    # the cost: 6 pairs in iteration 0, 6 + 6 from iteration 1 on
    assert "train 6 pairs x 1 member(s)" in plan
    assert ("train from iteration 1 on: 12 pairs (with iteration t-1's" in plan) == previous
    with scripted_models():
        assert driver.main(["--config", str(config), *overrides]) == 0
    cfg = load_config(config, overrides)
    lines = {t: paths.pairs(t).read_text().splitlines() for t in (0, 1)}
    assert lines[0] and lines[1]
    rows, earlier = train.training_rows_for(cfg, paths, 1, MEMBERS.index("bo"))
    own = train.training_rows(paths.pairs(1), None)
    assert rows[-len(own):] == own
    marker = read_json(paths.marker(1, "train", "bo"))
    summary = read_json(paths.summary(1))
    if previous:  # previous first, then current: iteration 0's rows, their texts byte for byte
        assert earlier == len(lines[0]) and len(rows) == len(lines[0]) + len(lines[1])
        for row, line in zip(rows, lines[0]):
            pair = json.loads(line)
            assert (row["prompt"], row["chosen"], row["rejected"]) == (pair["prompt"], pair["chosen"], pair["rejected"])
        assert (marker["pairs"], marker["pairs_previous"]) == (len(lines[0]) + len(lines[1]), len(lines[0]))
        assert summary["pairs_previous"] == len(lines[0])
    else:
        assert earlier == 0 and rows == own
        assert (marker["pairs"], marker["pairs_previous"]) == (len(lines[1]), 0) and "pairs_previous" not in summary
    # iteration 0 has no previous data; iteration 1 starts from iteration 0's model
    assert read_json(paths.marker(0, "train", "bo"))["pairs_previous"] == 0
    assert read_json(paths.adapter(1, "bo") / "scripted.json")["started_from"] == str(paths.adapter(0, "bo"))


def test_meta_rewardings_length_control_chooses_the_shortest_of_the_top_tier():
    from sparta_hpc.methods.pairs import length_controlled

    scores = np.array([[9.0, 8.0, 3.0, 2.0],   # top tier at rho 0.2: >= 0.8 * 9 + 0.2 * 2 = 7.6: answers 0 and 1
                       [5.0, 5.0, 5.0, 5.0],   # all tied: no pair
                       [NAN, 7.0, 7.0, 1.0]])  # two best tie: the shorter one
    lengths = np.array([[120, 40, 10, 80], [1, 2, 3, 4], [5, 50, 20, 9]])
    assert length_controlled(scores, lengths, 0.2) == [(0, 1, 3, 8.0, 2.0), (2, 2, 3, 7.0, 1.0)]
    # rho 0: only the best count, which is best vs worst
    assert length_controlled(scores, lengths, 0.0) == [(0, 0, 3, 9.0, 2.0), (2, 2, 3, 7.0, 1.0)]
    assert length_controlled(scores, lengths, 0.0)[:1] == best_vs_worst(scores)[:1]
