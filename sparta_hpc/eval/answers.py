"""Answer extraction and equivalence that lm-eval's stock filters and metrics do not cover.

lm-eval's task YAMLs call these through `tasks/utils.py`; the GSM8K number is
extracted by lm-eval's own `regex` filter and compared by its `exact_match`
metric (see tasks/gsm8k.yaml), so it has no code here.

- Multiple choice: lm-eval's `multi_choice_regex` filter matches option texts
  as bare substrings (NormAd's option "no" would match inside "not" or "know"),
  takes the first of several matching options instead of refusing an
  ambiguous answer, and needs the options as a plain list; hence
  `extract_letter`.
- MATH: lm-eval's minerva_math utilities import math-verify but require
  antlr4 4.11, while math-verify 0.9 needs 4.13, so that module cannot even be
  imported next to math-verify 0.9; hence `math_prediction` and `math_equal`,
  which call math-verify directly.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

INVALID = "[invalid]"  # what lm-eval's filters return when nothing is found


def last_boxed(text: str) -> str | None:
    r"""The content of the last \boxed{...} (or \fbox{...}) in `text`, braces balanced; None if none."""
    starts = [m for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    if not starts:
        bare = list(re.finditer(r"\\boxed ([^\s$]+)", text))  # "\boxed 5"
        return bare[-1].group(1) if bare else None
    start = starts[-1].end()
    depth = 1
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i].strip()
    return None  # unbalanced: the response was cut off inside the box


def extract_letter(response: str, labels: Sequence[str], options: Sequence[str]) -> str | None:
    """The option letter a multiple-choice response gives, or None.

    Tried in order, only letters in `labels` count:
    1. a statement: "The answer is B", "Answer: (B)", "answer is option B", "the correct option
       is **C**", "Option C is correct", "\\boxed{B}" (the last one wins: a response may correct itself);
    2. the response starts with the letter: "B", "(B)", "B: no", "B. no", "**B**";
    3. exactly one distinct letter written as "(B)", "[B]" or "**B**" anywhere;
    4. exactly one option's text appears (case-insensitive, whole words), not
       counting an option whose text is part of another option that appears.
    """
    text = response.strip()
    if not text or not labels:
        return None
    letter = "[" + "".join(re.escape(label) for label in labels) + "]"
    end = r"(?![A-Za-z0-9])"
    be = r"(?:\s+(?:is|would\s+be|should\s+be))"
    statement = re.compile(
        # keywords are case-insensitive, the letter is not ("the answer is a dog" names no option)
        rf"(?i:\banswer\b{be}?\s*:?(?:\s*(?:option|choice)\b)?"  # answer is B / Answer: (B) / answer is option B
        rf"|\b(?:correct|right|best)\s+(?:option|choice)\b{be}?\s*:?"  # the correct option is C / best choice: C
        rf"|\b(?:option|choice){be}\s*:?)"  # the option is C
        rf"[\s(\[*]*({letter}){end}"
        rf"|\\boxed\{{\s*({letter})\s*\}}"  # \boxed{B}
        # option C is correct / option C is the right one
        rf"|(?i:\b(?:option|choice)\s+)({letter})(?i:\s+is\s+(?:the\s+)?(?:correct|right|best)\b)"
    )
    found = [next(filter(None, groups)) for groups in statement.findall(text)]
    if found:
        return found[-1]
    lead = re.match(rf"[(\[*\s]*({letter})(?:[)\]*:.,]|\s*$)", text)
    if lead:
        return lead.group(1)
    marked = set(re.findall(rf"\(({letter})\)|\[({letter})\]|\*\*({letter})\*\*", text))
    marked_letters = {next(filter(None, groups)) for groups in marked}
    if len(marked_letters) == 1:
        return marked_letters.pop()
    return _letter_by_option_text(text, labels, options)


def _letter_by_option_text(text: str, labels: Sequence[str], options: Sequence[str]) -> str | None:
    def norm(s: str) -> str:
        return " ".join(s.lower().split()).rstrip(" .;:!")

    haystack = norm(text)
    named = {}
    for label, option in zip(labels, options):
        needle = norm(option)
        if needle and re.search(rf"(?<![a-z0-9]){re.escape(needle)}(?![a-z0-9])", haystack):
            named[label] = needle
    # "no" inside a named option "no, never" is not a second answer
    kept = [label for label, needle in named.items()
            if not any(needle != other and needle in other for other in named.values())]
    return kept[0] if len(kept) == 1 else None


def _timeout() -> int | None:
    # math-verify enforces its timeouts with signal.alarm, which only works in
    # the main thread; elsewhere run without one rather than fail.
    return 5 if threading.current_thread() is threading.main_thread() else None


def math_prediction(response: str) -> str | None:
    r"""The predicted answer: the last \boxed{...}, else what math-verify extracts from the text."""
    boxed = last_boxed(response)
    if boxed:
        return boxed
    from math_verify import parse

    parsed = parse(response, parsing_timeout=_timeout())
    if len(parsed) >= 2 and str(parsed[1]).strip():
        return str(parsed[1]).strip()
    return None


def math_equal(gold: str, prediction: str | None) -> bool:
    r"""Whether `prediction` is the same answer as `gold` by math-verify (\frac{1}{2} == 1/2 == 0.5)."""
    if not prediction or prediction == INVALID:
        return False
    from math_verify import parse, verify

    timeout = _timeout()
    # Both sides are bare answers; boxing them makes math-verify read them as
    # LaTeX answers rather than search them for an answer-like span.
    gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=timeout)
    pred_parsed = parse(f"\\boxed{{{prediction}}}", parsing_timeout=timeout)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout))
