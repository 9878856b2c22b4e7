"""The judge prompt, score parsing and expected scores (SPEC 1.4).

A judge rates one response at a time with an integer from 1 to 10. What the
judge wrote is parsed here; a text without a usable score is *missing* (None),
never a default value: a silent default (the authors' code used 5) biases
every weighted score towards the middle and hides broken judges.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

MIN_SCORE = 1
MAX_SCORE = 10
SCORES = tuple(range(MIN_SCORE, MAX_SCORE + 1))

# Expected-score judging: the answer is prefilled with SCORE_PREFIX and each
# candidate ends with the closing brace, so that "1" and "10" are distinct events.
SCORE_PREFIX = '{"score": '
CANDIDATES = tuple(f"{s}}}" for s in SCORES)

JUDGE_TEMPLATE = """\
Please act as an impartial judge and rate the response below to the user's instruction.
Consider helpfulness, correctness, relevance, depth and clarity. Be strict: a wrong
answer to a question with a checkable answer gets a low score.
Rate the response with an integer from 1 (very poor) to 10 (excellent).
Reply with only a JSON object of the form {{"score": N}}.

[Instruction]
{instruction}

[Response]
{response}"""

# Worked examples for small judges, which otherwise rarely answer in the format
# (SmolLM2-135M: 0 of 8 parsable zero-shot, 6 of 8 with three examples).
FEW_SHOT = (
    ("What is 12 + 30?", "12 + 30 = 42.", 9),
    ("Name the capital of France.", "The capital of France is Berlin.", 2),
    ("Give one tip for better sleep.", "Sleep.", 4),
)


# judge.reasoning: the same rubric, the verdict after a short justification (the score is read from
# the end: parse_final_score)
REASONING_ENDING = ("First justify your rating briefly, in at most 100 words. Then end your reply with the "
                    'score as a JSON object of the form {{"score": N}}.')

# judge.rubric: authors: the SPARTA authors' judge prompt, verbatim (src1/judge.py:100-108 at 05a2aab,
# an f-string: the leading and trailing newlines are theirs)
AUTHORS_TEMPLATE = """
Please judge the following response based on the question and the response to be evaluated.
Question: {instruction}
Response to be evaluated: {response}

Operation: Output ONLY a JSON object with one score in this exact format. Score must be in the range of 1 to 10.
Your output should be like this:
{{"score": score}}
"""

# judge.rubric: additive5: Self-Rewarding's LLM-as-a-Judge prompt (Yuan et al. 2024, Figure 2; as in
# lucidrains/self-rewarding-lm-pytorch self_rewarding_lm_pytorch.py:127-152 at ebeca90). It asks for a
# justification and then "Score: <total points>", 0 to 5 points.
ADDITIVE5_TEMPLATE = """Review the user’s question and the corresponding response using the additive 5-point
scoring system described below. Points are accumulated based on the satisfaction of each
criterion:
- Add 1 point if the response is relevant and provides some information related to
the user’s inquiry, even if it is incomplete or contains some irrelevant content.
- Add another point if the response addresses a substantial portion of the user’s question,
but does not completely resolve the query or provide a direct answer.
- Award a third point if the response answers the basic elements of the user’s question in a
useful way, regardless of whether it seems to have been written by an AI Assistant or if it
has elements typically found in blogs or search results.
- Grant a fourth point if the response is clearly written from an AI Assistant’s perspective,
addressing the user’s question directly and comprehensively, and is well-organized and
helpful, even if there is slight room for improvement in clarity, conciseness or focus.
- Bestow a fifth point for a response that is impeccably tailored to the user’s question
by an AI Assistant, without extraneous information, reflecting expert knowledge, and
demonstrating a high-quality, engaging, and insightful answer.
User: {instruction}
<response>{response}</response>
After examining the user’s instruction and the response:
- Briefly justify your total score, up to 100 words.
- Conclude with the score using the format: “Score: <total points>”
Remember to assess from the AI Assistant perspective, utilizing web search knowledge as
necessary. To evaluate the response in alignment with this additive scoring model, we’ll
systematically attribute points based on the outlined criteria."""

RUBRICS = ("spec", "additive5", "authors")
RUBRIC_RANGE = {"spec": (MIN_SCORE, MAX_SCORE), "authors": (MIN_SCORE, MAX_SCORE), "additive5": (0, 5)}


def judge_prompt(instruction: str, response: str, rubric: str = "spec", reasoning: bool = False) -> str:
    """The judge's user message for one response under `rubric` (judge.rubric, judge.reasoning)."""
    if rubric == "additive5":  # reasons by itself
        return ADDITIVE5_TEMPLATE.format(instruction=instruction, response=response)
    template = AUTHORS_TEMPLATE if rubric == "authors" else JUDGE_TEMPLATE
    if reasoning:
        last = "Your output should be like this:\n{{\"score\": score}}\n" if rubric == "authors" else \
            'Reply with only a JSON object of the form {{"score": N}}.'
        assert last in template, rubric
        template = template.replace(last, REASONING_ENDING + ("\n" if rubric == "authors" else ""))
    return template.format(instruction=instruction, response=response)


def judge_messages(instruction: str, response: str, few_shot: bool = False, rubric: str = "spec",
                   reasoning: bool = False) -> list[dict]:
    """Chat messages asking for a rating of one response (1..10; additive5: 0..5 points).

    The caller applies its own tokenizer's chat template; only user/assistant
    roles are used because some templates (e.g. Gemma's) reject a system role.
    """
    messages: list[dict] = []
    if few_shot:  # the same worked examples, answered in the format the prompt asks for
        for (q, a, score), why in zip(FEW_SHOT, FEW_SHOT_REASONS, strict=True):
            messages.append({"role": "user", "content": judge_prompt(q, a, rubric, reasoning)})
            messages.append({"role": "assistant", "content": worked_answer(score, why, rubric, reasoning)})
    messages.append({"role": "user", "content": judge_prompt(instruction, response, rubric, reasoning)})
    return messages


# A justification per worked example, for judges that reason (judge.reasoning, additive5)
FEW_SHOT_REASONS = ("The sum is correct and stated directly.",
                    "Berlin is wrong: the capital of France is Paris.",
                    "It is relevant but gives no detail or reason.")


def worked_answer(score: int, why: str, rubric: str, reasoning: bool) -> str:
    """A worked example's answer: the bare verdict, or a justification and then the verdict."""
    if rubric == "additive5":
        return f"{why} Score: {round(score / 2)}"
    return f'{why} {{"score": {score}}}' if reasoning else f'{{"score": {score}}}'


_NUMBER = r"(\d+(?:\.\d+)?)"
# Tried in order; the first pattern that matches decides, even when its number
# is out of range (a judge that wrote "score: 0" gave no valid score; picking
# some other number further on would be a guess).
_PATTERNS = (
    # {"score": 7}, {'score': "7"}, "score" : 7.5
    re.compile(r"""["']score["']\s*:\s*["']?""" + _NUMBER, re.IGNORECASE),
    # 7/10, 7 / 10, 7 out of 10
    re.compile(_NUMBER + r"\s*(?:/|out\s+of)\s*10\b", re.IGNORECASE),
    # Score: 7, **Rating**: 8, score of 6, rating is 9, I rate it a 7, -- but not "score: 3/5"
    re.compile(
        r"\b(?:score|rating|rate\s+(?:it|this(?:\s+response)?))\b[\s*:=_-]*(?:is|of|an?|at)?[\s*:=_-]*"
        + _NUMBER
        + r"(?!\s*(?:/|out\s+of)\s*\d)",
        re.IGNORECASE,
    ),
    # The whole answer is a number: "7", "8."
    re.compile(r"^\s*" + _NUMBER + r"\s*\.?\s*$"),
)


def parse_score(text: str) -> float | None:
    """The score in 1..10 that `text` states, or None when it states none."""
    for pattern in _PATTERNS:
        match = pattern.search(text)
        if match:
            value = float(match.group(1))
            return value if MIN_SCORE <= value <= MAX_SCORE else None
    return None


# The verdict at the end of a reasoned judgment: {"score": N} or Score: N (additive5's format), the
# last one written (a justification may quote other numbers, or the response's own "score").
_FINAL = re.compile(r"""(?:["']score["']\s*:\s*["']?|\bscore\s*[:=]\s*\**\s*)""" + _NUMBER, re.IGNORECASE)


def parse_final_score(text: str, low: float = MIN_SCORE, high: float = MAX_SCORE) -> float | None:
    """The last score `text` states, when in low..high; None otherwise (a reasoned judgment)."""
    found = _FINAL.findall(text)
    if not found:
        return None
    value = float(found[-1])
    return value if low <= value <= high else None


def parse_judgment(text: str, rubric: str = "spec", reasoning: bool = False) -> float | None:
    """The judge's score under judge.rubric / judge.reasoning: a reply that reasons first is read
    from its end, a bare verdict as SPEC 1.4 reads it (parse_score)."""
    if rubric == "additive5" or reasoning:
        return parse_final_score(text, *RUBRIC_RANGE[rubric])
    return parse_score(text)


def expected_score(logprobs: Mapping[int, float]) -> float:
    """The judge's expected score from its log-probabilities of each candidate score.

    `logprobs[s]` is the log-probability of the judge writing score s (for
    example the logprob of the tokens of "7" after '{"score": '). Normalising
    over the candidates gives a distribution whose mean is a continuous score:
    it always exists, so a judge that never follows the format still rates.
    """
    items = [(s, lp) for s, lp in logprobs.items() if lp is not None and not math.isnan(lp)]
    for s, _ in items:
        if s not in SCORES:
            raise ValueError(f"candidate score {s} is outside {MIN_SCORE}..{MAX_SCORE}")
    finite = [lp for _, lp in items if lp != -math.inf]
    if not finite:
        raise ValueError("expected_score needs at least one finite log-probability")
    top = max(finite)
    weights = [(s, math.exp(lp - top)) for s, lp in items]
    total = sum(w for _, w in weights)
    return sum(s * w for s, w in weights) / total


# Pairwise and meta judgments (SPPO, Meta-Rewarding): the judge answers with a letter, and the
# probability of each letter comes from its log-probabilities, so a verdict always exists.
CHOICES = ("A", "B")

PAIRWISE_TEMPLATE = """\
Please act as an impartial judge and compare the two responses below to the user's instruction.
Consider helpfulness, correctness, relevance, depth and clarity; ignore the order and the length.
Reply with only the letter of the better response: A or B.

[Instruction]
{instruction}

[Response A]
{first}

[Response B]
{second}"""

META_TEMPLATE = """\
Please act as an impartial meta-judge. Below are a user's instruction, a response, and two
evaluations of that response. Decide which evaluation judges the response more accurately and
fairly (a correct answer deserves a high score, a wrong one a low score).
Reply with only the letter of the better evaluation: A or B.

[Instruction]
{instruction}

[Response]
{response}

[Evaluation A]
{first}

[Evaluation B]
{second}"""


def pairwise_messages(instruction: str, first: str, second: str) -> list[dict]:
    """Chat messages asking which of two responses is better (SPPO's preference model)."""
    return [{"role": "user", "content": PAIRWISE_TEMPLATE.format(instruction=instruction, first=first,
                                                                 second=second)}]


def meta_judge_messages(instruction: str, response: str, first: str, second: str) -> list[dict]:
    """Chat messages asking which of two judgments of one response is better (Meta-Rewarding)."""
    return [{"role": "user", "content": META_TEMPLATE.format(instruction=instruction, response=response,
                                                             first=first, second=second)}]


def first_wins(logprobs: Mapping[str, float]) -> float:
    """P(A) from the judge's log-probabilities of "A" and "B", normalised over the two."""
    a, b = logprobs[CHOICES[0]], logprobs[CHOICES[1]]
    top = max(a, b)
    return math.exp(a - top) / (math.exp(a - top) + math.exp(b - top))
