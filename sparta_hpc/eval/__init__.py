"""Evaluation on the SPARTA paper's tasks: lm-eval task definitions, no model inside.

The pipeline generates responses with its own model groups; this package
loads each task's docs from a local file, gives the chat prompts, and scores
the responses with lm-evaluation-harness's own task objects (filters,
metrics, aggregation, standard errors). Importing it does not import lm-eval.

    data.py      file formats, row checks, dev/test splits (pure Python)
    answers.py   answer extraction and math equivalence lm-eval lacks
    tasks/       lm-eval task YAMLs and their `!function` hooks (utils.py)
    harness.py   the lm-eval calls: build a task for a file, prompts, scoring
    rated.py     evaluator prompts and ratings for COM2 and Alpaca
    task.py      the API below
    leakage.py   training instructions that are evaluation items
    decontaminate.py  duel instructions that hold a test item, wrapped or not
    score_cli.py `sparta-hpc score TASK PREDICTIONS.jsonl`
    significance.py  the paired bootstrap of compare's marks against BEST INIT
"""

from ..errors import EvalDataError
from .data import TASK_NAMES
from .leakage import normalize_text, overlap
from .rated import evaluator_messages
from .task import EvalResult, EvalTask, check_task_data, load_task

__all__ = [
    "TASK_NAMES",
    "EvalDataError",
    "EvalResult",
    "EvalTask",
    "check_task_data",
    "evaluator_messages",
    "load_task",
    "normalize_text",
    "overlap",
]
