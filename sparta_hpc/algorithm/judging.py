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


def judge_messages(instruction: str, response: str, few_shot: bool = False) -> list[dict]:
    """Chat messages asking for a 1..10 rating of one response.

    The caller applies its own tokenizer's chat template; only user/assistant
    roles are used because some templates (e.g. Gemma's) reject a system role.
    """
    messages: list[dict] = []
    if few_shot:
        for q, a, score in FEW_SHOT:
            messages.append({"role": "user", "content": JUDGE_TEMPLATE.format(instruction=q, response=a)})
            messages.append({"role": "assistant", "content": f'{{"score": {score}}}'})
    messages.append(
        {"role": "user", "content": JUDGE_TEMPLATE.format(instruction=instruction, response=response)}
    )
    return messages


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
