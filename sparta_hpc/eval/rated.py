"""Open-ended tasks (COM2, Alpaca): the evaluator model's prompt and its ratings.

The paper scores these columns 1-10 with an evaluator model (which one it
used was not found; the pipeline runs whichever the config names). The
evaluator is asked for JSON `{"score": N}`, and its text is parsed with the
judges' own parser (`sparta_hpc.algorithm.judging.parse_score`). A text with
no usable score is *missing*: reported and counted apart, never replaced by a
default, which would pull every mean toward that default and hide a broken
evaluator.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..algorithm.judging import parse_score

_INTRO = """\
Please act as an impartial judge and evaluate the quality of the response an AI assistant gave
to the user's request below. Consider helpfulness, correctness, relevance, depth and clarity.
{reference_note}Rate the response with an integer from 1 (very poor) to 10 (excellent).
Reply with only a JSON object of the form {{"score": N}}.

[Request]
{request}
{reference}
[Response]
{response}"""

_REFERENCE_NOTE = (
    "A reference answer is given; a response that disagrees with it in substance is wrong, "
    "however well written.\n"
)


def evaluator_messages(task: str, doc: dict, response: str) -> list[dict]:
    """The chat messages asking the evaluator to rate `response` to `doc` (a row of the task's file).

    COM2's evaluator also sees the row's gold answer as a reference; Alpaca has
    none. Only a user turn, since some chat templates reject a system role.
    """
    if task == "com2":
        request, reference = doc["prompt"].strip(), str(doc["gold"]).strip()
    elif task == "alpaca":
        extra = (doc.get("input") or "").strip()
        request, reference = doc["instruction"].strip() + (f"\n\n{extra}" if extra else ""), ""
    else:
        raise ValueError(f"task {task!r} is not rated by an evaluator; the rated tasks are com2 and alpaca")
    content = _INTRO.format(
        reference_note=_REFERENCE_NOTE if reference else "",
        request=request,
        reference=f"\n[Reference answer]\n{reference}\n" if reference else "",
        response=response.strip(),
    )
    return [{"role": "user", "content": content}]


def parse_ratings(evaluator_texts: Sequence[str]) -> list[dict]:
    """Per text: doc_index, rating (1..10, or None when the evaluator gave none) and the raw text."""
    return [
        {"doc_index": i, "rating": parse_score(text) if isinstance(text, str) else None, "evaluator_text": text}
        for i, text in enumerate(evaluator_texts)
    ]
