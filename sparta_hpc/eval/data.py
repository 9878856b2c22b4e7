"""Evaluation data: read a task's file, check every row, pick the split.

Pure Python (no lm-eval, no datasets), so the driver can check a task's data
on a login node before any job starts (`check_task_data`).

File formats (those the SPARTA authors' group publishes; shared/data/README.md):

- ``{"dataset": ..., "dev": [rows], "test": [rows]}`` (GSM8K, MedQA, NormAd,
  Knowledge Crosswords with its top-level ``icl_prompt``, TruthfulQA): the split
  is the top-level key.
- a JSON list, or JSONL, of rows (MATH, COM2, Alpaca). Rows with a
  ``datasplit`` or ``split`` field: the rows whose value is the split
  (``dev`` also matches ``validation``/``val``/``valid``), if any row matches.
  Otherwise (MATH JSONL has no split field; COM2's rows all say "train";
  Alpaca files have none) the split is a deterministic 20/80 cut by a stable
  hash: sha256 of the row's ``id`` (or of its text when it has no id), first
  8 bytes as an integer, mod 100; below 20 is ``dev`` (20%), the rest ``test``
  (80%). sha256 rather than ``hash()``: the cut must be the same on every
  machine and Python version, so an item never moves between dev and test.

A ``limit`` keeps the first N rows of the split (after the MATH level filter).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import EvalDataError
from .answers import last_boxed

SPLITS = ("dev", "test")
_SPLIT_ALIASES = {"dev": {"dev", "validation", "val", "valid"}, "test": {"test"}}
DEV_PERCENT = 20


@dataclass(frozen=True)
class TaskSpec:
    """What a task needs from its data, and how the model answers it."""

    name: str
    kind: str  # "mc" | "gsm8k" | "math" | "rated"
    lm_eval_task: str  # the task's name in sparta_hpc/eval/tasks/*.yaml
    max_new_tokens: int
    fields: tuple[str, ...]  # every row must carry these
    levels: tuple[int, ...] = ()  # MATH: the difficulty levels this task keeps
    needs_icl_prompt: bool = False
    hint: str = ""  # the expected format, for error messages


_MC_HINT = 'a {"dataset", "dev": [...], "test": [...]} file of rows {question, choices: {A: text, ...}, answer: letter}'
_MC = ("question", "choices", "answer")
SPECS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("gsm8k", "gsm8k", "sparta_gsm8k", 256, ("question", "answer"),
                 hint='a {"dataset", "dev": [...], "test": [...]} file of rows {question, answer}'),
        *(
            TaskSpec(name, "math", f"sparta_{name}", 512, ("problem", "level"), levels=levels,
                     hint="a JSONL (or JSON list) of MATH rows {problem, level, solution or answer}")
            for name, levels in (("math_easy", (1, 2)), ("math_medium", (3,)), ("math_hard", (4, 5)))
        ),
        TaskSpec("medqa", "mc", "sparta_medqa", 32, _MC, hint=_MC_HINT),
        TaskSpec("normad_country", "mc", "sparta_normad_country", 32, _MC, hint=_MC_HINT),
        TaskSpec("normad_value", "mc", "sparta_normad_value", 32, _MC, hint=_MC_HINT),
        TaskSpec("normad_rot", "mc", "sparta_normad_rot", 32, _MC, hint=_MC_HINT),
        TaskSpec("kcross", "mc", "sparta_kcross", 32, _MC, needs_icl_prompt=True,
                 hint=_MC_HINT[:-1] + ' with a top-level "icl_prompt"'),
        TaskSpec("truthfulqa", "mc", "sparta_truthfulqa", 32, _MC, hint=_MC_HINT),
        TaskSpec("com2", "rated", "sparta_com2", 256, ("prompt", "gold"),
                 hint="a JSON list of rows {prompt, gold, datasplit}"),
        TaskSpec("alpaca", "rated", "sparta_alpaca", 256, ("instruction",),
                 hint="a JSON list or JSONL of rows {instruction, input (optional)}"),
    )
}
TASK_NAMES: tuple[str, ...] = tuple(SPECS)

# Scoring without a data file (sparta-hpc score): any MATH level, the generic MC rows.
MATH_ANY = TaskSpec("math", "math", "sparta_math", 512, ("problem",),
                    hint="MATH rows {problem, level, solution or answer}")


def get_spec(name: str, path: str | Path | None = None) -> TaskSpec:
    if name not in SPECS:
        for_file = f" (for {path})" if path is not None else ""
        raise EvalDataError(f"unknown evaluation task {name!r}{for_file}; the tasks are: {', '.join(TASK_NAMES)}")
    return SPECS[name]


@dataclass
class TaskData:
    """One split of a task's file: the rows as in the file, and what the file says besides."""

    rows: list[dict]
    icl_prompt: str = ""


def read_split(spec: TaskSpec, path: str | Path, split: str = "test", limit: int | None = None) -> TaskData:
    """The checked rows of `split` in `path` for task `spec`, in file order."""
    path = Path(path)
    where = f"task {spec.name!r}: {path}"
    if split not in SPLITS:
        raise EvalDataError(f"{where}: unknown split {split!r}; use 'dev' or 'test'")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise EvalDataError(f"{where}: limit must be a positive integer or None, got {limit!r}")
    content, lines = _read_file(path, where, spec)
    if isinstance(content, dict) and split not in content:
        raise EvalDataError(f"{where}: no {split!r} split in the file (keys: {', '.join(map(str, content))})")
    data = _select(spec, content, lines, split, where)
    if not data.rows:
        levels = f" of level {'/'.join(map(str, spec.levels))}" if spec.levels else ""
        raise EvalDataError(f"{where}: no rows{levels} in the {split!r} split; expected {spec.hint}")
    if limit:
        data.rows = data.rows[:limit]
    return data


def read_splits(spec: TaskSpec, path: str | Path) -> dict[str, TaskData]:
    """Every split of `path` that has rows for `spec` (what lm-eval's task loads)."""
    path = Path(path)
    where = f"task {spec.name!r}: {path}"
    content, lines = _read_file(path, where, spec)
    splits = {}
    for split in SPLITS:
        if isinstance(content, dict) and split not in content:
            continue
        data = _select(spec, content, lines, split, where)
        if data.rows:
            splits[split] = data
    return splits


def _select(spec: TaskSpec, content: dict | list, lines: list[int] | None, split: str, where: str) -> TaskData:
    icl_prompt = ""
    if isinstance(content, dict):
        rows = content[split]
        if not isinstance(rows, list):
            raise EvalDataError(f"{where}: the {split!r} entry is a {type(rows).__name__}, not a list of rows")
        if spec.needs_icl_prompt:
            icl_prompt = content.get("icl_prompt")
            if not isinstance(icl_prompt, str) or not icl_prompt.strip():
                raise EvalDataError(f"{where}: no top-level field 'icl_prompt' (the one-shot example every "
                                    f"prompt starts with); expected {spec.hint}")
        labelled = [(f"{split} row {i}", row) for i, row in enumerate(rows)]
    else:
        if spec.needs_icl_prompt:
            raise EvalDataError(f"{where}: a list of rows has no top-level field 'icl_prompt'; expected {spec.hint}")
        labels = [f"line {n}" for n in lines] if lines else [f"row {i}" for i in range(len(content))]
        labelled = _pick_split(spec, list(zip(labels, content)), split)
    docs = []
    for label, row in labelled:
        check_row(spec, row, f"{where}, {label}")
        if not spec.levels or math_level(row) in spec.levels:
            docs.append(row)
    return TaskData(docs, icl_prompt)


def _read_file(path: Path, where: str, spec: TaskSpec) -> tuple[dict | list, list[int] | None]:
    """The file's JSON content, and for JSONL each row's line number (for error messages)."""
    if not path.is_file():
        raise EvalDataError(f"{where}: the data file does not exist; give the path of {spec.hint}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":  # a one-line JSONL file would parse as one JSON object
            raise json.JSONDecodeError("JSON lines", text, 0)
        content, lines = json.loads(text), None
    except json.JSONDecodeError:
        content, lines = [], []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                content.append(json.loads(line))
                lines.append(number)
            except json.JSONDecodeError as err:
                raise EvalDataError(f"{where}: line {number} is neither part of a JSON document nor a JSON "
                                    f"line ({err.msg}); expected {spec.hint}") from None
    if not isinstance(content, (dict, list)):
        raise EvalDataError(f"{where}: a JSON {type(content).__name__}, not rows; expected {spec.hint}")
    if isinstance(content, dict) and not any(key in content for key in SPLITS):
        raise EvalDataError(f"{where}: a JSON object without 'dev' or 'test' keys "
                            f"(keys: {', '.join(map(str, content)) or 'none'}); expected {spec.hint}")
    return content, lines


def _pick_split(spec: TaskSpec, labelled: list[tuple[str, dict]], split: str) -> list[tuple[str, dict]]:
    wanted = _SPLIT_ALIASES[split]
    matching = [(label, row) for label, row in labelled
                if isinstance(row, dict) and str(row.get("datasplit", row.get("split", ""))).lower() in wanted]
    if matching:
        return matching
    return [(label, row) for label, row in labelled if not isinstance(row, dict) or hash_split(spec, row) == split]


def hash_split(spec: TaskSpec, row: dict) -> str:
    """'dev' for about 20% of rows, 'test' for the rest, by a hash of the row's id or text."""
    key = row.get("id")
    if key is None:
        key = "\n".join(str(row.get(field, "")) for field in (*spec.fields, "input"))
    digest = hashlib.sha256(str(key).encode("utf-8")).digest()
    return "dev" if int.from_bytes(digest[:8], "big") % 100 < DEV_PERCENT else "test"


def check_row(spec: TaskSpec, row: object, where: str) -> None:
    """Raise EvalDataError naming `where` and the field when `row` lacks what `spec` needs."""
    fix = f"expected {spec.hint}"
    if not isinstance(row, dict):
        raise EvalDataError(f"{where} is a {type(row).__name__}, not an object; {fix}")
    for field in spec.fields:
        if field not in row or row[field] is None:
            raise EvalDataError(f"{where} has no field {field!r}; {fix}")
    for field in ("question", "problem", "prompt", "instruction"):
        if field in spec.fields and (not isinstance(row[field], str) or not row[field].strip()):
            raise EvalDataError(f"{where}: field {field!r} must be a non-empty string; {fix}")
    if spec.kind == "mc":
        choices = row["choices"]
        if not isinstance(choices, dict) or not choices:
            raise EvalDataError(f"{where}: field 'choices' must be an object {{A: text, B: text, ...}}; {fix}")
        for letter, text in choices.items():
            if not re.fullmatch(r"[A-Z]", letter) or not isinstance(text, str):
                raise EvalDataError(f"{where}: field 'choices' has the entry {letter!r}: {text!r}; "
                                    f"keys must be single capital letters and values strings")
        if row["answer"] not in choices:
            raise EvalDataError(f"{where}: field 'answer' is {row['answer']!r}, not one of the choices' "
                                f"letters {', '.join(sorted(choices))}")
    elif spec.kind == "gsm8k":
        if not isinstance(row["answer"], (str, int, float)) or not str(row["answer"]).strip():
            raise EvalDataError(f"{where}: field 'answer' must be a number or a string holding one; {fix}")
    elif spec.kind == "math":
        if spec.levels and math_level(row) is None and not re.fullmatch(r"Level \?", str(row["level"])):
            raise EvalDataError(f"{where}: field 'level' is {row['level']!r}, not like 'Level 3'")
        if math_gold(row) is None:
            raise EvalDataError(f"{where} has no field 'answer' and no \\boxed{{...}} in field 'solution'; {fix}")
    elif spec.name == "alpaca" and not isinstance(row.get("input", ""), (str, type(None))):
        raise EvalDataError(f"{where}: field 'input' must be a string; {fix}")
    elif spec.name == "com2" and not isinstance(row["gold"], str):
        raise EvalDataError(f"{where}: field 'gold' must be a string; {fix}")


def math_level(row: dict) -> int | None:
    match = re.fullmatch(r"\s*Level\s+(\d+)\s*", str(row.get("level", "")))
    return int(match.group(1)) if match else None


def math_gold(row: dict) -> str | None:
    """The gold answer: the `answer` field, else the last \\boxed{...} of `solution`."""
    answer = row.get("answer")
    if isinstance(answer, (int, float)) or (isinstance(answer, str) and answer.strip()):
        return str(answer).strip()
    solution = row.get("solution")
    return last_boxed(solution) if isinstance(solution, str) else None


def to_lm_eval_row(spec: TaskSpec, row: dict, index: int, icl_prompt: str = "") -> dict:
    """The row lm-eval's task sees: one fixed schema per kind.

    Arrow (datasets.Dataset, which lm-eval's tasks iterate) needs one type per
    column, and the files vary: TruthfulQA rows have 2 to 13 options, ids are
    ints in one file and strings in another. So options become two parallel
    lists, and the original row travels as JSON text in `raw`.
    """
    out: dict = {"doc_index": index, "raw": json.dumps(row, ensure_ascii=False)}
    if spec.kind == "mc":
        labels = sorted(row["choices"])
        out.update(question=row["question"].strip(), labels=labels,
                   options=[str(row["choices"][k]).strip() for k in labels],
                   answer=row["answer"], icl_prompt=icl_prompt.strip())
    elif spec.kind == "gsm8k":
        out.update(question=row["question"].strip(), answer=str(row["answer"]).strip())
    elif spec.kind == "math":
        out.update(problem=row["problem"].strip(), answer=math_gold(row))
    elif spec.name == "com2":
        out.update(prompt=row["prompt"], reference=row["gold"])
    else:
        extra = (row.get("input") or "").strip()
        out.update(prompt=row["instruction"].strip() + (f"\n\n{extra}" if extra else ""), reference="")
    return out


def doc_text(spec: TaskSpec, row: dict) -> str:
    """The text a model is asked about (for leakage checks against training instructions)."""
    if spec.kind == "math":
        return row["problem"]
    if spec.kind == "rated":
        return to_lm_eval_row(spec, row, 0)["prompt"]
    return row["question"]
