"""Overlap between a training pool and an evaluation split, on what identifies an item.

The authors' training files and their group's evaluation files wrap the same item in different
prompts (a NormAd story follows "Please justify: " in one and "Story: " in the other), so a
whole-text comparison finds nothing (sparta_hpc/eval/leakage.py does, by design, for instructions
it cannot parse). Here each task has an identifying part (docs/data.md): the NormAd story, the
Knowledge Crosswords question with its options, the TruthfulQA / GSM8K / MedQA question, the MATH
problem, the COM2 prompt, the Alpaca instruction and input. Two items are the same when their
identifying parts are equal after `norm` (the normalisation of the research's overlap.py: NFKC,
lower case, whitespace collapsed, trailing " .?" stripped, since the authors append "." after a
NormAd story). Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata

# the authors append it to every MATH problem, with no space (sparta src1/competition.py:600)
MATH_SUFFIX = "Let's solve this problem step by step."


def norm(text: str) -> str:
    text = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    return text.rstrip(" .?")


# --- the identifying part of a training instruction (the authors' wrappers) ----------------------

def normad_story_train(text: str) -> str:
    """'...\\nPlease justify: <story>.\\n Choose from:...' (sparta data/culture/*.json)."""
    match = re.search(r"Please justify: (.*?)\n Choose from:", text, re.S)
    return match.group(1) if match else text


def truthfulqa_question_train(text: str) -> str:
    """'Q: <question>\\nA: <candidate answer>\\nTrue:...' (sparta data/truthfulqa/data_train.jsonl)."""
    match = re.match(r"Q: (.*?)\nA:", text, re.S)
    return match.group(1) if match else text


# --- the identifying part of an evaluation row (model_swarm data/eval/*.json) --------------------

def normad_story_eval(question: str) -> str:
    """'...Story: <story>\\nCountry: x...' or, in normad_value.json, a literal backslash-n before
    'Value: '."""
    match = re.search(r"Story: (.*?)(?:\\n|\n)(?:Country|Value): ", question, re.S)
    return match.group(1) if match else question


def medqa_question(text: str) -> str:
    """model_swarm writes 'Context: <case>\\n\\nQuestion: <question>'; the labels are not the item."""
    return re.sub(r"(?m)^\s*(Context|Question):\s*", "", text)


def kcross_prompt(row: dict) -> str:
    """An evaluation row as the authors' training prompt: the question, then one 'X. option' line
    per choice. The authors' knowledge_crosswords/train.json is exactly this text for every one of
    model_swarm's test rows, so their pool and the test split compare equal."""
    return row["question"] + "\n" + "".join(f"{k}. {v}\n" for k, v in sorted(row["choices"].items()))


def eval_key(task: str, row: dict) -> str:
    """The normalised identifying part of one evaluation row of `task`."""
    if task in ("normad_country", "normad_value", "normad_rot"):
        text = normad_story_eval(row["question"])
    elif task == "kcross":
        text = kcross_prompt(row)
    elif task == "medqa":
        text = medqa_question(row["question"])
    elif task.startswith("math_"):
        text = row["problem"]
    elif task == "com2":
        text = row["prompt"]
    elif task == "alpaca":
        text = row["instruction"] + "\n" + str(row.get("input") or "")
    else:  # gsm8k, truthfulqa
        text = row["question"]
    return norm(text)


def overlap(pool: list[tuple[dict, str]], test_keys: set[str], dev_keys: set[str],
            remove: bool) -> tuple[list[dict], dict]:
    """The pool's rows, less those whose key is a test item when `remove`; and the counts the manifest
    records: pool rows (and distinct items) that are test or dev items, distinct test items found."""
    in_test = [key in test_keys for _, key in pool]
    kept = [row for (row, _), hit in zip(pool, in_test) if not (remove and hit)]
    kept_keys = [key for (_, key), hit in zip(pool, in_test) if not (remove and hit)]
    stats = {
        "source_rows": len(pool),
        "source_rows_that_are_test_items": sum(in_test),
        "test_items_in_source": len(test_keys & {key for _, key in pool}),
        "test_items": len(test_keys),
        "removed_rows": len(pool) - len(kept),
        "rows": len(kept),
        "test_items_in_pool": len(test_keys & set(kept_keys)),
        "dev_items_in_pool": len(dev_keys & set(kept_keys)),
        "dev_items": len(dev_keys),
        "pool_rows_that_are_dev_items": sum(key in dev_keys for key in kept_keys),
    }
    return kept, stats


def instruction_key(task: str, text: str) -> str:
    """The normalised identifying part of a duel instruction of `task`'s pool (what `data prepare`
    writes, or the authors' own wrappers): comparable with eval_key. A text in no known wrapper is
    its own identifying part."""
    if task in ("normad_country", "normad_value", "normad_rot"):
        text = normad_story_train(text)
    elif task == "truthfulqa":
        text = truthfulqa_question_train(text)
    elif task.startswith("math_"):
        text = text.removesuffix(MATH_SUFFIX)
    elif task == "medqa":  # the question, less the option lines prepare appends
        text = medqa_question(re.sub(r"(\n[A-Z]\. [^\n]*)+\s*$", "", text))
    return norm(text)
