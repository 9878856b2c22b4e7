"""`sparta-hpc replay` end to end through the command line, good and bad input."""

import json
import subprocess
import sys

import pytest

from sparta_hpc.cli import main

RATINGS = {
    "lima": {"rating": 100.0, "deviation": 0.5, "history": []},
    "cot": {"rating": 100.0, "deviation": 0.5, "history": []},
    "oasst1": {"rating": 120.0, "deviation": 0.5, "history": [0.1]},
    "flan_v2": {"rating": 80.0, "deviation": 0.5, "history": []},
}
DUELS = [
    {"a": "lima", "b": "cot", "scores": {"oasst1": [7, 5], "flan_v2": [None, 6.5]}},
    {"a": "oasst1", "b": "flan_v2", "scores": {"lima": [None, None], "cot": [None, 4]}},
    {"a": "cot", "b": "flan_v2", "scores": {"lima": [6, 6], "oasst1": [6, 6]}},
    {"a": "flan_v2", "b": "lima", "scores": {"cot": [3, 9], "oasst1": [4, 8]}},
]


def write_inputs(tmp_path, duels=DUELS, ratings=RATINGS):
    d, r = tmp_path / "duels.jsonl", tmp_path / "ratings.json"
    d.write_text("".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in duels))
    r.write_text(json.dumps(ratings))
    return d, r


def test_replay_writes_ratings_pairs_and_scores(tmp_path):
    d, r = write_inputs(tmp_path)
    out = tmp_path / "out.json"
    assert main([ "replay", str(d), "--ratings", str(r), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["ratings"]) == set(RATINGS)
    # duel 0: only oasst1 is valid (flan_v2 missed a's score) -> 7 vs 5
    assert result["weighted_scores"][0] == [7.0, 5.0]
    assert result["weighted_scores"][1] is None  # no valid judge
    assert result["weighted_scores"][2] == [6.0, 6.0]  # tie
    prefs = result["preferences"]
    assert [(p["duel"], p["chosen"], p["rejected"]) for p in prefs] == [(0, "lima", "cot"), (3, "lima", "flan_v2")]
    assert prefs[0]["score_chosen"] == 7.0 and prefs[0]["score_rejected"] == 5.0
    assert result["ratings"]["lima"]["rating"] > 100 > result["ratings"]["cot"]["rating"]
    assert len(result["ratings"]["oasst1"]["history"]) == 1  # did not duel with a valid judge
    assert len(result["ratings"]["lima"]["history"]) == 2


def test_replay_parameters_change_the_result(tmp_path):
    d, r = write_inputs(tmp_path)
    base, uniform = tmp_path / "base.json", tmp_path / "uniform.json"
    main(["replay", str(d), "--ratings", str(r), "--out", str(base)])
    main(["replay", str(d), "--ratings", str(r), "--out", str(uniform),
          "--set", "reputation.weighting=uniform", "--set", "reputation.initial_k=40"])
    b, u = json.loads(base.read_text()), json.loads(uniform.read_text())
    assert b["weighted_scores"][3] != u["weighted_scores"][3]  # (120*4+100*3)/220 vs 3.5
    assert u["weighted_scores"][3] == [3.5, 8.5]
    assert u["ratings"]["lima"]["rating"] != b["ratings"]["lima"]["rating"]


@pytest.mark.parametrize("duels, ratings, message", [
    (["{not json\n"], RATINGS, "duels.jsonl:1: not valid JSON"),
    ([DUELS[0], {"a": "lima", "b": "zephyr", "scores": {}}], RATINGS, "duels.jsonl:2: field 'b': unknown member 'zephyr'"),
    ([{"a": "lima", "b": "cot", "scores": {"lima": [5, 6]}}], RATINGS, "judge 'lima' is one of the duelists"),
    ([{"a": "lima", "b": "cot", "scores": {"oasst1": [5, 11]}}], RATINGS, "field 'scores.oasst1[1]': 11 is outside 1..10"),
    ([{"a": "lima", "b": "cot", "scores": {"oasst1": [5, "7"]}}], RATINGS, "expected a number"),
    ([{"a": "lima", "b": "cot", "scores": {"gpt": [5, 7]}}], RATINGS, "unknown judge 'gpt'"),
    ([{"a": "lima", "scores": {}}], RATINGS, "field 'b' is missing"),
    ([{"a": "lima", "b": "lima", "scores": {}}], RATINGS, "cannot duel itself"),
    ([DUELS[0]], {k: v for k, v in RATINGS.items() if k != "cot"}, "unknown member 'cot'"),
    ([DUELS[0]], {**RATINGS, "cot": {"deviation": 0.5}}, "member 'cot': field 'rating' is missing"),
    ([], RATINGS, "holds no duels"),
])
def test_bad_input_exits_nonzero_names_the_place_and_writes_nothing(tmp_path, caplog, duels, ratings, message):
    d, r = write_inputs(tmp_path, duels, ratings)
    out = tmp_path / "out.json"
    assert main(["replay", str(d), "--ratings", str(r), "--out", str(out)]) == 2
    assert message in caplog.text, caplog.text
    assert not out.exists()


def test_the_command_line_program_exits_2_on_bad_input(tmp_path):
    d, r = write_inputs(tmp_path, ["{not json\n"])
    proc = subprocess.run([sys.executable, "-m", "sparta_hpc.cli", "replay", str(d), "--ratings", str(r),
                           "--out", str(tmp_path / "out.json")], capture_output=True, text=True)
    assert proc.returncode == 2 and "duels.jsonl:1: not valid JSON" in proc.stderr, proc.stderr


@pytest.mark.parametrize("override, message", [
    ("reputation.decay=0.5", "unknown config field 'reputation.decay'"),
    ("reputation.window_size=2.5", "reputation.window_size: expected an integer"),
    ("reputation.weighting=elo", "reputation.weighting must be one of"),
    ("reputation.floor=0", "reputation.floor must be > 0"),
    ("reputation", "not of the form"),
])
def test_bad_parameter_is_refused(tmp_path, caplog, override, message):
    d, r = write_inputs(tmp_path)
    out = tmp_path / "out.json"
    assert main(["replay", str(d), "--ratings", str(r), "--out", str(out), "--set", override]) == 2
    assert message in caplog.text, caplog.text
    assert not out.exists()
