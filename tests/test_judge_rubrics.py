"""Judges that reason, and the other prompts (judge.rubric, judge.reasoning): the prompts as their
sources give them, the score read from the end of a reasoned reply, the settings that cannot go
with them refused, and a tribe and a Self-Rewarding baseline run through them (scripted model)."""

import re

import numpy as np
import pytest
import yaml

from sparta_hpc import driver
from sparta_hpc.algorithm.judging import judge_messages, judge_prompt, parse_judgment
from sparta_hpc.config.checks import validate
from sparta_hpc.config.schema import load_config
from sparta_hpc.errors import ConfigError
from sparta_hpc.rundir.archive import read_archive
from sparta_hpc.rundir.paths import RunPaths

from .scripted_model import scripted_models


def test_the_authors_prompt_is_theirs_verbatim():
    # src1/judge.py:100-108 at 05a2aab, rendered
    assert judge_prompt("What is 2+2?", "4", "authors") == (
        "\nPlease judge the following response based on the question and the response to be evaluated.\n"
        "Question: What is 2+2?\nResponse to be evaluated: 4\n\n"
        "Operation: Output ONLY a JSON object with one score in this exact format. Score must be in the range "
        "of 1 to 10.\nYour output should be like this:\n{\"score\": score}\n")


def test_the_additive_prompt_is_self_rewardings_and_reasoning_changes_only_the_ending():
    text = judge_prompt("Name a colour.", "Blue.", "additive5")
    assert text.startswith("Review the user’s question and the corresponding response using the additive 5-point")
    assert "User: Name a colour.\n<response>Blue.</response>\n" in text
    assert "- Conclude with the score using the format: “Score: <total points>”" in text
    plain, reasoned = judge_prompt("Q", "A"), judge_prompt("Q", "A", reasoning=True)
    assert plain.splitlines()[:4] == reasoned.splitlines()[:4] and "First justify your rating briefly" in reasoned
    assert 'Reply with only a JSON object' not in reasoned
    assert judge_messages("Q", "A", few_shot=False, rubric="authors") == [
        {"role": "user", "content": judge_prompt("Q", "A", "authors")}]
    # worked examples (small judges need them) answer in the format asked: words, then the verdict
    shots = judge_messages("Q", "A", few_shot=True, reasoning=True)
    assert len(shots) == 7 and shots[1]["content"] == 'The sum is correct and stated directly. {"score": 9}'
    assert parse_judgment(shots[1]["content"], "spec", True) == 9
    additive = judge_messages("Q", "A", few_shot=True, rubric="additive5")
    assert additive[3]["content"] == "Berlin is wrong: the capital of France is Paris. Score: 1"
    assert judge_messages("Q", "A", few_shot=True)[1]["content"] == '{"score": 9}'  # the bare verdict, as before


@pytest.mark.parametrize("text, rubric, reasoning, score", [
    ('Step 2 is wrong, so a score of 9 would be too kind. {"score": 4}', "spec", True, 4.0),
    ("The answer covers 3 of the 5 points. Score: 3", "additive5", False, 3.0),
    ("Score: 4\nOn reflection, Score: 2", "additive5", False, 2.0),  # the last verdict counts
    ("Score: 7", "additive5", False, None),  # beyond 5 points: no valid score
    ("It is fine.", "spec", True, None),  # no verdict: missing, never a default
    ('{"score": 8}', "authors", False, 8.0),
])
def test_the_score_of_a_reasoned_reply_is_read_from_its_end(text, rubric, reasoning, score):
    assert parse_judgment(text, rubric, reasoning) == score


@pytest.mark.parametrize("change, message", [
    ({"judge": {"reasoning": True, "score": "expected"}}, "set judge.score: parsed"),
    ({"judge": {"rubric": "additive5", "answer_prefix": '{"score": '}}, "set judge.answer_prefix: ''"),
])
def test_what_cannot_go_with_a_reasoning_judge_is_refused(fake_model, tmp_path, change, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tribe": {"members": [{"name": n, "model": str(fake_model)} for n in "abc"]},
                                    **change}))
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(load_config(path))


def _run(tmp_path, method: str, judge: dict) -> RunPaths:
    (tmp_path / "base").mkdir(exist_ok=True)
    (tmp_path / "base" / "config.json").write_text("{}")
    config = {"tribe": {"iterations": 1, "duels_per_iteration": 4,
                        "members": [{"name": n, "model": str(tmp_path / "base"), "temperature": 0.7}
                                    for n in ("ada", "bo", "cy")]},
              "generate": {"duels_per_shard": 4},
              "judge": {"duels_per_shard": 4, "max_new_tokens": 256, "temperature": 0.7, **judge},
              "baseline": {"samples": 3, "member": "bo"}, "cluster": {"executor": "debug"}}
    path = tmp_path / f"{method}.yaml"
    path.write_text(yaml.safe_dump(config))
    paths = RunPaths(tmp_path / method)
    with scripted_models():
        assert driver.main(["--config", str(path), f"run.dir={paths.root}", f"method={method}"]) == 0
    return paths


def test_a_tribe_with_reasoning_judges_and_self_rewarding_with_the_additive_rubric(tmp_path):
    tribe = read_archive(_run(tmp_path, "sparta", {"reasoning": True}).archive(0))
    raw, parsed = tribe["judgments/raw"], tribe["judgments/parsed"]
    written = raw != ""
    reasoned = [t for t in raw[written].tolist() if "the reasoning holds up" in t]
    assert reasoned and len(reasoned) > written.sum() * 0.6  # scripted judges are silent on 1 in 8
    valid = parsed[written & ~np.isnan(parsed)]
    assert valid.size == len(reasoned)  # "7 steps" in the words is not the score: the verdict at the end is
    assert valid.size and ((valid >= 1) & (valid <= 10)).all()

    paths = _run(tmp_path, "self_rewarding", {"rubric": "additive5"})
    baseline = read_archive(paths.archive(0))
    raw, parsed = baseline["judgments/raw"], baseline["judgments/parsed"]
    written = raw != ""
    scored = [t for t in raw[written].tolist() if "Score: " in t]  # the rest: the judge said nothing usable
    assert scored and all(t.split("Score: ")[0].strip() for t in scored)  # a justification before the points
    valid = parsed[written & ~np.isnan(parsed)]
    assert valid.size == len(scored)
    assert valid.size and ((valid >= 0) & (valid <= 5)).all()  # additive points, not a 1..10 rating
    assert paths.pairs(0).read_text().strip()  # best vs worst by those points made pairs
