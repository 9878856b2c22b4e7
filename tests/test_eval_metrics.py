"""Answer extraction and metrics of the evaluation tasks, through lm-eval's own task objects.

Every response is scored the way EvalTask.score scores it: an lm-eval task
built from the package's YAML (over in-memory rows), its filters, its metric.
The rows are made up here, not taken from the data samples.
"""

from __future__ import annotations

import math

import pytest

from sparta_hpc.eval import evaluator_messages, harness, load_task, normalize_text, overlap
from sparta_hpc.eval.answers import extract_letter, last_boxed


def score(lm_eval_task: str, doc: dict, response: str) -> dict:
    """The one sample of scoring `response` to `doc`."""
    task = harness.build_task(lm_eval_task, rows=[doc])
    return harness.score(task, [response])[3][0]


# ---------------------------------------------------------------- GSM8K

GSM = {"question": "How many?", "answer": "1234", "id": 7, "domain": "gsm8k"}


@pytest.mark.parametrize("response, extracted", [
    ("The answer is 1234.", "1234"),
    ("She has 1,234 coins in total.", "1,234"),
    ("Adding up: 1000 + 234 = 1234.", "1234"),
    ("#### 1234", "1234"),
    ("Step 1: 600 + 634.\n#### 1,234\nThat took 2 steps.", "1,234"),
    ("The answer is $1,234.", "1,234"),
    ("The answer is: **1234**", "1234"),
    ("Final answer: 1234 dollars", "1234"),
    ("The answer is 1234.00", "1234.00"),
    ("The answer is $\\boxed{1234}$.", "1234"),
    ("The answer is 1234. Check: 617 * 2 = 1234, and 3 steps.", "1234"),
])
def test_gsm8k_right(response, extracted):
    sample = score("sparta_gsm8k", GSM, response)
    assert sample == {"doc_index": 0, "extracted": extracted, "correct": 1}


@pytest.mark.parametrize("response", [
    "The answer is 1235.",
    "1234 is what I first thought, but it is 1200.",
    "The answer is 12345.",
    "#### 123.4",
])
def test_gsm8k_wrong(response):
    assert score("sparta_gsm8k", GSM, response)["correct"] == 0


def test_gsm8k_unparsable_counts_as_wrong():
    assert score("sparta_gsm8k", GSM, "I cannot tell.") == {"doc_index": 0, "extracted": None, "correct": 0}


@pytest.mark.parametrize("gold, response", [
    ("-5", "The temperature ends at -5 degrees."),
    ("18", "Total: $18.00"),
    ("2.5", "It takes 2.50 hours."),
    ("72", "Natalia sold 48/2 = 24 clips in May.\n48 + 24 = 72\n#### 72"),
    ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "The answer is 72."),  # an HF-style gold
])
def test_gsm8k_normalization(gold, response):
    assert score("sparta_gsm8k", {**GSM, "answer": gold}, response)["correct"] == 1


# ---------------------------------------------------------------- multiple choice

MC = {"question": "Is it acceptable?", "choices": {"A": "yes", "B": "no", "C": "neutral"}, "answer": "B", "id": "1"}


@pytest.mark.parametrize("response", [
    "B", "(B)", "B: no", "B. no", "B)", "The answer is B", "The answer is B.", "Answer: (B)", "answer: B",
    "**B**", "The correct answer is **B**.", "The best option is B", "$\\boxed{B}$",
    "A is tempting, but the answer is B.", "I would pick (B) here.", "The answer is option B.",
    "Option A is wrong; option B is correct.", "Correct choice: B", "Final Answer: B",
    "No", "no.", "No, it is not acceptable there.", "NO",
])
def test_mc_accepted_formats(response):
    sample = score("sparta_medqa", MC, response)
    assert sample == {"doc_index": 0, "extracted": "B", "correct": 1}


@pytest.mark.parametrize("response, extracted", [
    ("A", "A"), ("(C)", "C"), ("The answer is A.", "A"), ("Yes, it is fine.", "A"), ("neutral", "C"),
])
def test_mc_wrong(response, extracted):
    assert score("sparta_medqa", MC, response) == {"doc_index": 0, "extracted": extracted, "correct": 0}


@pytest.mark.parametrize("response", [
    "",
    "I do not know.",              # "no" inside "not" is not the option "no"
    "Yes or no, hard to say.",     # two options named: ambiguous
    "The answer is D.",            # D is not an option of this row
    "A patient would say nothing.",  # "A" as an article, not a letter
    "Between (A) and (C), hard to say.",
    "Option A is wrong.",
    "the answer is a matter of taste",  # lowercase "a" is a word, not a letter
])
def test_mc_unparsable_counts_as_wrong(response):
    assert score("sparta_medqa", MC, response) == {"doc_index": 0, "extracted": None, "correct": 0}


def test_mc_many_options_and_nested_option_texts():
    doc = {"question": "q", "answer": "G",
           "choices": {letter: f"option {letter.lower()}" for letter in "ABCDEFGH"}}
    assert score("sparta_truthfulqa", doc, "G: option g")["correct"] == 1
    assert score("sparta_truthfulqa", doc, "I pick option g.")["correct"] == 1
    nested = {"question": "q", "answer": "B", "choices": {"A": "No", "B": "No, never."}}
    assert extract_letter("No, never.", ["A", "B"], ["No", "No, never."]) == "B"
    assert score("sparta_truthfulqa", nested, "no, never")["correct"] == 1


# ---------------------------------------------------------------- MATH

def math_doc(answer: str | None = "\\frac{1}{2}", solution: str = "So it is $\\boxed{\\frac{1}{2}}$.") -> dict:
    doc = {"problem": "Compute it.", "level": "Level 2", "type": "Algebra", "solution": solution,
           "id": "1", "category": "algebra"}
    return doc if answer is None else {**doc, "answer": answer}


@pytest.mark.parametrize("gold, response", [
    ("\\frac{1}{2}", "Thus $x = \\boxed{\\frac{1}{2}}$."),
    ("\\frac{1}{2}", "\\boxed{1/2}"),
    ("\\frac{1}{2}", "\\boxed{0.5}"),
    ("0.5", "\\boxed{\\frac12}"),
    ("1/2", "\\boxed{\\dfrac{1}{2}}"),
    ("2\\sqrt{3}", "\\boxed{\\sqrt{12}}"),
    ("364", "First \\boxed{12}, then correcting: \\boxed{364}"),
    ("\\frac{1}{2}", "The final answer is $\\frac{1}{2}$."),  # no box: math-verify reads the text
    ("x^2+1", "\\boxed{1 + x^2}"),
])
def test_math_right(gold, response):
    assert score("sparta_math", math_doc(gold), response)["correct"] == 1


@pytest.mark.parametrize("gold, response", [
    ("\\frac{1}{2}", "\\boxed{\\frac{1}{3}}"),
    ("364", "\\boxed{364} was my guess, but \\boxed{365}"),
    ("(1,2)", "\\boxed{(2,1)}"),
])
def test_math_wrong(gold, response):
    assert score("sparta_math", math_doc(gold), response)["correct"] == 0


def test_math_unparsable_counts_as_wrong():
    sample = score("sparta_math", math_doc(), "I cannot solve this.")
    assert sample == {"doc_index": 0, "extracted": None, "correct": 0}


def test_math_gold_from_solution_when_no_answer():
    doc = math_doc(answer=None, solution="Hence $b = \\boxed{\\frac{-1 + \\sqrt{5}}{4}}.$")
    assert score("sparta_math", doc, "\\boxed{\\frac{\\sqrt{5}-1}{4}}")["correct"] == 1
    assert score("sparta_math", doc, "\\boxed{\\frac{\\sqrt{5}+1}{4}}")["correct"] == 0


def test_last_boxed():
    assert last_boxed("a \\boxed{1} b \\boxed{\\frac{1}{2}} c") == "\\frac{1}{2}"
    assert last_boxed("\\fbox{7}") == "7"
    assert last_boxed("no box") is None
    assert last_boxed("cut off \\boxed{\\frac{1}{") is None


# ---------------------------------------------------------------- aggregation

def test_score_aggregates_with_lm_eval_mean_and_stderr(tmp_path):
    rows = [{"question": f"q{i}", "answer": str(i), "id": i} for i in range(4)]
    path = tmp_path / "gsm8k.json"
    path.write_text(__import__("json").dumps({"dataset": "x", "dev": rows, "test": rows}))
    task = load_task("gsm8k", path, "test")
    result = task.score(["The answer is 0.", "The answer is 1.", "The answer is 7.", "nothing"])
    assert (result.task, result.n, result.score, result.missing, result.metric) == ("gsm8k", 4, 0.5, 1, "exact_match")
    assert result.stderr == pytest.approx(math.sqrt((4 * 0.25) / 3) / 2)  # sample sd / sqrt(n)
    assert [s["correct"] for s in result.samples] == [1, 1, 0, 0]


# ---------------------------------------------------------------- rated tasks

COM2 = {"prompt": "Context: Ann bakes bread.\nQuestion: What does Ann feel?\nThe answer is:\n", "gold": "proud",
        "datasplit": "train"}


def test_evaluator_messages():
    com2 = evaluator_messages("com2", COM2, "She feels proud.")
    assert [m["role"] for m in com2] == ["user"]
    text = com2[0]["content"]
    assert "Ann bakes bread" in text and "She feels proud." in text
    assert "[Reference answer]\nproud" in text and '{"score": N}' in text and "1 (very poor) to 10" in text
    alpaca = evaluator_messages("alpaca", {"instruction": "Translate it.", "input": "Hello"}, "Bonjour")[0]["content"]
    assert "Translate it.\n\nHello" in alpaca and "Bonjour" in alpaca and "Reference" not in alpaca
    with pytest.raises(ValueError, match="gsm8k"):
        evaluator_messages("gsm8k", {}, "x")


def test_score_ratings_counts_unparsable_as_missing(tmp_path):
    path = tmp_path / "com2.json"
    path.write_text(__import__("json").dumps([{**COM2, "prompt": f"{COM2['prompt']} {i}"} for i in range(40)]))
    task = load_task("com2", path, "test", limit=5)
    texts = ['{"score": 7}', "Rating: 9/10", "I refuse.", '{"score": 0}', "8"]
    result = task.score_ratings(texts)
    assert (result.n, result.score, result.missing, result.metric) == (3, 8.0, 2, "rating")
    assert result.stderr == pytest.approx(math.sqrt(((7 - 8) ** 2 + 1 + 0) / 2) / math.sqrt(3))
    assert [s["rating"] for s in result.samples] == [7.0, 9.0, None, None, 8.0]
    none = task.score_ratings(["no"] * 5)
    assert (none.n, none.score, none.stderr, none.missing) == (0, None, None, 5)
    prompts = task.evaluator_prompts(["r"] * 5)
    assert len(prompts) == 5 and task.docs[0]["gold"] in prompts[0][0]["content"]
    with pytest.raises(ValueError, match="evaluator"):
        task.score(["r"] * 5)


# ---------------------------------------------------------------- leakage

def test_normalize_text_and_overlap():
    assert normalize_text("  What's   the CAPITAL\nof France?? ") == "what s the capital of france"
    assert normalize_text("“Quoted” — text…") == "quoted text"
    instructions = ["What is the capital of France?", "Write a poem.", "what is the capital of   FRANCE", "?!"]
    docs = ["Name a river.", "What is the capital of France", "...", "write a poem"]
    assert overlap(instructions, docs) == [(0, 1), (1, 3), (2, 1)]
    assert overlap([], docs) == [] and overlap(instructions, []) == []
