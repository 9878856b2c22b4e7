import math

import pytest

from sparta_hpc.algorithm.judging import expected_score, judge_messages, parse_score


@pytest.mark.parametrize("text, score", [
    ('{"score": 7}', 7.0),
    ("{'score': '8'}", 8.0),
    ('Sure! {"score" : 10}', 10.0),
    ("Score: 7", 7.0),
    ("**Score:** 6\nThe answer is fine.", 6.0),
    ("Rating: 9", 9.0),
    ("I would give it a score of 3.", 3.0),
    ("7/10", 7.0),
    ("The response deserves 8 / 10 because it is correct.", 8.0),
    ("I rate it 4 out of 10", 4.0),
    ("I rate this response a 5", 5.0),
    ("7.5/10", 7.5),
    ("9", 9.0),
    ("  2. ", 2.0),
    ('{"score": 7} and later Score: 2', 7.0),
])
def test_parse_accepts_common_forms(text, score):
    assert parse_score(text) == score


@pytest.mark.parametrize("text", [
    "", "The answer is good.", "It uses 3 examples and 2 steps.",
    '{"score": 0}', '{"score": 11}', "Score: 12", "15/10", "score: 3/5",
    "Step 1: add 12 and 30.",
])
def test_parse_returns_missing_never_a_default(text):
    assert parse_score(text) is None


def test_expected_score_is_the_mean_of_the_normalised_distribution():
    assert expected_score({7: 0.0}) == 7.0
    assert expected_score({3: math.log(0.25), 9: math.log(0.25)}) == pytest.approx(6.0)
    # log-probabilities need not sum to one: they are renormalised over the candidates
    assert expected_score({s: -20.0 for s in range(1, 11)}) == pytest.approx(5.5)
    assert expected_score({1: -math.inf, 10: -3.0}) == 10.0


def test_expected_score_refuses_nothing_to_average():
    with pytest.raises(ValueError):
        expected_score({})
    with pytest.raises(ValueError):
        expected_score({5: -math.inf})
    with pytest.raises(ValueError):
        expected_score({11: 0.0})


def test_judge_messages_carry_the_instruction_and_response():
    messages = judge_messages("What is 2+2?", "4")
    assert [m["role"] for m in messages] == ["user"]
    assert "What is 2+2?" in messages[0]["content"] and '{"score": N}' in messages[0]["content"]
    few = judge_messages("What is 2+2?", "4", few_shot=True)
    assert [m["role"] for m in few] == ["user", "assistant"] * 3 + ["user"]
    assert all(parse_score(m["content"]) is not None for m in few if m["role"] == "assistant")
