"""How many of a run's test items were among its duel instructions: a line under every table.

Duels use no labels, but a model aligned on the test prompts themselves is not a clean result, and
`data prepare --authors-pools` builds exactly such pools (the authors' NormAd, TruthfulQA and
Knowledge Crosswords training files hold most of their group's test items: docs/data.md). The
tables say so for every run, clean or not ("0 of 1,000" is a check too). Items are matched on what
identifies them (sparta_hpc/inputs/clean.py), not on the whole text: the pools and the evaluation
files wrap the same item in different prompts, which the exact-text leakage check cannot see.
"""

from __future__ import annotations

from ..config.schema import Config
from ..errors import ConfigError, EvalDataError
from ..inputs.clean import eval_key, instruction_key
from ..rundir.files import read_json
from ..rundir.paths import RunPaths
from . import data
from .plan import task_file


def duel_instructions(cfg: Config, paths: RunPaths) -> list[str]:
    """Every instruction the run's plans drew, over the iterations planned so far."""
    texts = []
    for t in range(cfg.tribe.iterations):
        if not paths.plan(t).exists():
            break
        texts += [row["text"] for row in read_json(paths.plan(t))["instructions"]]
    return texts


def leaked_test_items(cfg: Config, paths: RunPaths, tasks: list[str] | None = None) -> dict[str, tuple[int, int] | str]:
    """{task: (test items that were duel instructions, test items)}, or why it is unknown; `tasks`:
    those of the table (default: the run's eval.tasks)."""
    texts = duel_instructions(cfg, paths)
    found: dict[str, tuple[int, int] | str] = {}
    for task in cfg.eval.tasks if tasks is None else tasks:
        try:
            rows = data.read_split(data.get_spec(task), task_file(cfg, task), "test").rows
        except (EvalDataError, ConfigError) as err:  # ConfigError: the run names no file for the task
            found[task] = f"unknown ({err})"
            continue
        duels = {instruction_key(task, text) for text in texts}
        found[task] = (sum(eval_key(task, row) in duels for row in rows), len(rows))
    return found


def contamination_line(cfg: Config, paths: RunPaths, tasks: list[str] | None = None) -> str:
    """'test items among the duel instructions of RUN: gsm8k 0 of 1,000, ...' for the table's tasks."""
    parts = [f"{task} {v[0]:,} of {v[1]:,}" if isinstance(v, tuple) else f"{task} {v}"
             for task, v in leaked_test_items(cfg, paths, tasks).items()]
    return f"test items among the duel instructions of {paths.root.name}: " + (", ".join(parts) or "no task")
