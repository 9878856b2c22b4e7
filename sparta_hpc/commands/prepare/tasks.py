"""The 12 Table 1 tasks: where each one's training pool and evaluation split come from, and the
converters from the sources' formats to the pool's rows.

A pool row is `{"id", "instruction", "reference"?}` (what sparta_hpc/inputs/instructions.py reads with
instructions.prompt_field=instruction): `instruction` is the text the authors' reader returns
(src1/competition.py at the pinned commit, cited per converter), `reference` the source's gold
answer where it has one. Each converter returns (row, key) pairs, `key` being the normalised
identifying part that clean.py compares. Pure functions of the source bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ...errors import PrepareError, at
from ...inputs.clean import (
    MATH_SUFFIX,
    kcross_prompt,
    medqa_question,
    norm,
    normad_story_train,
    truthfulqa_question_train,
)
from ...inputs.instructions import parse_json
from .sources import ALPACA_EVAL, MODEL_SWARM

Pool = list[tuple[dict, str]]


@dataclass(frozen=True)
class Task:
    name: str
    train: str | None  # the authors' training file in the sparta repository
    evaluation: str | None  # the published evaluation file, None: none published
    eval_name: str  # the file under DIR/eval (sparta_hpc/eval/plan.py DEFAULT_FILES)
    kind: str  # the converter
    eval_source: str = MODEL_SWARM  # the repository that holds `evaluation`


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("gsm8k", "data/gsm8k/questions.json", "data/eval/gsm8k.json", "gsm8k.json", "gsm8k"),
    Task("medqa", "data/medqa/US_train_processed.json", "data/eval/medqa.json", "medqa.json", "medqa"),
    Task("normad_country", "data/culture/country_dataset.json", "data/eval/normad_country.json",
         "normad_country.json", "normad"),
    Task("normad_value", "data/culture/country_value_dataset.json", "data/eval/normad_value.json",
         "normad_value.json", "normad"),
    Task("normad_rot", "data/culture/rule_of_thumb.json", None, "normad_rot.json", "normad"),
    Task("kcross", "data/knowledge_crosswords/train.json", "data/eval/knowledge_crosswords.json",
         "knowledge_crosswords.json", "kcross"),
    Task("truthfulqa", "data/truthfulqa/data_train.jsonl", "data/eval/truthfulqa.json", "truthfulqa.json",
         "truthfulqa"),
    Task("math_easy", "data/MATH/train_by_difficulty/easy.jsonl", None, "math_easy.jsonl", "math"),
    Task("math_medium", "data/MATH/train_by_difficulty/medium.jsonl", None, "math_medium.jsonl", "math"),
    Task("math_hard", "data/MATH/train_by_difficulty/hard.jsonl", None, "math_hard.jsonl", "math"),
    Task("com2", "data/com2/train.json", None, "com2.json", "com2"),
    Task("alpaca", "data/alpaca/alpaca_data_processed.json", "results/gpt4_1106_preview/model_outputs.json",
         "alpaca.json", "alpaca", ALPACA_EVAL),
)}
TASK_NAMES = tuple(TASKS)


def _json(data: bytes, where: str):
    """One JSON document, or else JSON Lines (the authors' files are either)."""
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        pass
    return [parse_json(line, at(where, number), PrepareError)
            for number, line in enumerate(data.splitlines(), 1) if line.strip()]


def _rows(content, where: str, key: str | None = None) -> list[dict]:
    if key is not None and isinstance(content, dict):
        content = content.get(key)
    if not isinstance(content, list) or not all(isinstance(r, dict) for r in content):
        raise PrepareError(f"{where}: expected a list of objects{f' under {key!r}' if key else ''}")
    return content


def _field(row: dict, field: str, where: str) -> str:
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        raise PrepareError(f"{where}: a row has no text field {field!r} (row: {str(row)[:120]})")
    return value


def _row(id_, instruction: str, reference=None) -> dict:
    row = {"id": str(id_), "instruction": instruction}
    if reference is not None and str(reference).strip():
        row["reference"] = str(reference)
    return row


def convert(task: Task, data: bytes) -> Pool:
    """The authors' training file of `task` as (pool row, identifying key) pairs, in file order."""
    where = f"{task.name}: {task.train}"
    content = _json(data, where)
    if task.kind == "gsm8k":  # extract_from_json_gsm reads `input` (:565); there is no answer
        return [(_row(i, q := _field(r, "input", where)), norm(q)) for i, r in enumerate(_rows(content, where))]
    if task.kind == "normad":  # extract_from_culture reads the `train` split only (:470-476)
        if not isinstance(content, dict) or not isinstance(content.get("train"), dict):
            raise PrepareError(f"{where}: expected {{'train': {{id: {{instruction, label}}}}, ...}}")
        return [(_row(k, text := _field(r, "instruction", where), r.get("label")), norm(normad_story_train(text)))
                for k, r in content["train"].items()]
    if task.kind == "kcross":  # {"train": [{prompt, completion}]}: the prompt already lists the options
        return [(_row(i, text := _field(r, "prompt", where), r.get("completion")), norm(text))
                for i, r in enumerate(_rows(content, where, "train"))]
    if task.kind == "truthfulqa":  # the candidate answer is part of the text; there is no gold label
        return [(_row(i, text := _field(r, "question", where)), norm(truthfulqa_question_train(text)))
                for i, r in enumerate(_rows(content, where))]
    if task.kind == "math":  # extract_from_math: problem + the suffix (:591-600); (category, id) is unique
        return [(_row(f"{r.get('category', '')}/{r.get('id', i)}", (p := _field(r, "problem", where)) + MATH_SUFFIX,
                      r.get("answer")), norm(p)) for i, r in enumerate(_rows(content, where))]
    if task.kind == "com2":  # extract_from_com2 reads `prompt` (:624-625)
        return [(_row(i, text := _field(r, "prompt", where), r.get("gold")), norm(text))
                for i, r in enumerate(_rows(content, where))]
    if task.kind == "alpaca":  # extract_from_alpaca reads `instruction` (:426-430); `input` kept if present
        pool = []
        for i, r in enumerate(_rows(content, where)):
            text, extra = _field(r, "instruction", where), str(r.get("input") or "")
            pool.append((_row(i, text + (f"\n\n{extra}" if extra.strip() else ""), r.get("output")),
                         norm(text + "\n" + extra)))
        return pool
    if task.kind == "medqa":  # no reader in competition.py; the file's format is unknown here (absent)
        return [_medqa_row(i, r, where) for i, r in enumerate(_rows(content, where, "train"))]
    raise PrepareError(f"{task.name}: no converter {task.kind!r}")


def _medqa_row(i: int, r: dict, where: str) -> tuple[dict, str]:
    question = _field(r, "question", where)
    options = r.get("options") or r.get("choices") or {}
    lines = "".join(f"\n{k}. {v}" for k, v in sorted(options.items())) if isinstance(options, dict) else ""
    answer = r.get("answer_idx") or r.get("answer")
    return _row(r.get("id", i), question + lines, answer), norm(medqa_question(question))


def kcross_dev_pool(dev_rows: list[dict]) -> Pool:
    """The clean KCross pool: model_swarm's dev rows in the authors' prompt format (their train.json
    is model_swarm's test split, so it cannot be the pool of a clean run)."""
    # model_swarm's dev ids repeat (e.g. '1806' twice, for different questions): ids by position instead
    return [(_row(f"dev-{i}", text := kcross_prompt(r), r.get("answer")), norm(text))
            for i, r in enumerate(dev_rows)]


def eval_file_bytes(task: Task, data: bytes) -> bytes:
    """A published evaluation file as eval.data_dir reads it: model_swarm's as they are; AlpacaEval's
    reference outputs as its instructions only ({instruction, input, dataset}: the evaluation rates the model's
    own answer, the reference model's is not needed)."""
    if task.eval_source != ALPACA_EVAL:
        return data
    where = f"{task.name}: {task.evaluation}"
    # `input` is empty in AlpacaEval (the instruction holds it all) but is the eval's field, so keep it
    rows = [{"instruction": _field(r, "instruction", where), "input": str(r.get("input") or ""),
             "dataset": r.get("dataset")} for r in _rows(_json(data, where), where)]
    return json.dumps(rows, ensure_ascii=False, indent=1).encode()
