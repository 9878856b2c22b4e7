"""Python hooks of the task YAMLs next to this file (lm-eval's `!function utils.NAME`).

lm-eval imports this file by its path, not as `sparta_hpc.eval.tasks.utils`,
so it only uses absolute imports. Each hook is a thin adapter from lm-eval's
calling convention to sparta_hpc.eval.data / .answers, which hold the rules.
"""

from __future__ import annotations

from collections.abc import Sequence

from sparta_hpc.eval.answers import INVALID, extract_letter, math_equal, math_prediction
from sparta_hpc.eval.data import MATH_ANY, TaskSpec, get_spec, read_splits, to_lm_eval_row
from sparta_hpc.errors import EvalDataError


def _spec(sparta_task: str) -> TaskSpec:
    return MATH_ANY if sparta_task == MATH_ANY.name else get_spec(sparta_task)


def load_dataset(sparta_task: str, data_file: str | None = None, rows: Sequence[dict] | None = None,
                 **_metadata):
    """`custom_dataset`: the task's file as a DatasetDict of its 'dev' and 'test' splits.

    lm-eval calls it with the task's metadata and dataset_kwargs as keyword
    arguments; `data_file` comes from either (`--metadata '{"data_file": ...}'`
    on lm-eval's command line, or sparta_hpc's overrides), and the YAML's
    `test_split` picks the split. `rows` (checked rows already in memory, as
    `sparta-hpc score` has them) becomes a 'test' split as given.
    """
    import datasets

    spec = _spec(sparta_task)
    if rows is not None:
        splits = {"test": [to_lm_eval_row(spec, row, i) for i, row in enumerate(rows)]}
    elif data_file:
        splits = {split: [to_lm_eval_row(spec, row, i, data.icl_prompt) for i, row in enumerate(data.rows)]
                  for split, data in read_splits(spec, data_file).items()}
    else:
        raise EvalDataError(f"task {spec.name!r}: no data file; pass data_file in the task's metadata "
                            f"or dataset_kwargs (lm_eval --metadata '{{\"data_file\": \"/path\"}}')")
    return datasets.DatasetDict({name: datasets.Dataset.from_list(docs) for name, docs in splits.items()})


def letter_filter(resps: Sequence[Sequence[str]], docs: Sequence[dict]) -> list[list[str]]:
    """`custom` filter of the multiple-choice tasks: each response's option letter, or "[invalid]"."""
    return [[extract_letter(r, doc["labels"], doc["options"]) or INVALID for r in rs]
            for rs, doc in zip(resps, docs, strict=True)]


def math_filter(resps: Sequence[Sequence[str]], docs: Sequence[dict]) -> list[list[str]]:
    r"""`custom` filter of the MATH tasks: the last \boxed{...}, else math-verify's extraction."""
    return [[math_prediction(r) or INVALID for r in rs] for rs in resps]


def math_verify_match(references: Sequence[str], predictions: Sequence[str], **_kwargs) -> float:
    """Metric of the MATH tasks: 1.0 when math-verify finds the prediction equal to the gold answer."""
    return float(all(math_equal(g, p) for g, p in zip(references, predictions, strict=True)))
