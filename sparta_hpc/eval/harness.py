"""The bridge to lm-evaluation-harness: task objects, chat prompts, and scoring of given responses.

lm-eval defines the tasks (tasks/*.yaml: data loading, prompts, answer
filters, metrics, aggregation); sparta_hpc generates the responses with its
own model groups (one engine per base model serving every member's adapter in
one batch, which lm-eval's model runners cannot do). So no lm-eval model is
ever made; instead, per task:

1. `build_task`: `TaskManager(include_path=tasks/).load(...)` with a config
   dict naming the registered task and the fields to replace for this call
   (`test_split`, and `dataset_kwargs` holding the data file, or rows already
   in memory). lm-eval builds the task from its YAML with those fields
   replaced; the YAML's `custom_dataset` (tasks/utils.py) reads the file.
2. `chat_prompts`: `task.build_all_requests(apply_chat_template=True,
   chat_template=...)` with a "template" that returns the chat messages lm-eval
   built as JSON instead of rendering them, so each model group can apply its
   own tokenizer's template.
3. `score`: put each response in its instance's `resps`, `task.apply_filters()`,
   `task.process_results(doc, [filtered])` per doc, then the task's
   `aggregation()` and lm-eval's `stderr_for_metric`, as lm-eval's evaluator does.

lm-eval is imported here only, on first use (about 2 s); the driver, which
only checks data (sparta_hpc.eval.data), never imports it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

from .answers import INVALID

TASKS_DIR = Path(__file__).parent / "tasks"
GROUP = "sparta_eval"  # a throwaway group: lm-eval applies per-task overrides to a group's members
BOOTSTRAP_ITERS = 100_000  # lm-eval's default; `mean` has a closed form and never bootstraps


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence lm-eval's per-build notices (e.g. its hint about `--metadata` for
    `custom_dataset` tasks), which would repeat for every task and split."""
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@lru_cache(maxsize=1)
def task_manager():
    """lm-eval's TaskManager over this package's task YAMLs only (its ~10k built-in YAMLs are not indexed)."""
    # Our tasks read local files through `custom_dataset`; nothing may reach for a hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import functools

    import lm_eval.api.task
    import tqdm
    from lm_eval.tasks import TaskManager

    # build_all_requests draws a progress bar per task build: hundreds of them in a job's log
    lm_eval.api.task.tqdm = functools.partial(tqdm.tqdm, disable=True)
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


def build_task(lm_eval_task: str, *, data_file: str | Path | None = None, split: str = "test",
               rows: Sequence[dict] | None = None):
    """lm-eval's task object `lm_eval_task` (a name in tasks/*.yaml) over a data file's split or given rows."""
    dataset_kwargs = {"rows": list(rows)} if rows is not None else {"data_file": str(data_file)}
    overrides = {"task": lm_eval_task, "test_split": "test" if rows is not None else split,
                 "dataset_kwargs": dataset_kwargs}
    with _quiet():
        loaded = task_manager().load({"group": GROUP, "task": [overrides]})
    return loaded["tasks"][lm_eval_task]


def _as_messages(messages: list[dict], add_generation_prompt: bool = True) -> str:
    # lm-eval calls the chat template with the message list; keep the list.
    return json.dumps(messages)


def _instances(task, n_docs: int) -> list:
    """The task's requests for its first `n_docs` docs, one generate_until instance per doc."""
    with _quiet():
        task.build_all_requests(limit=n_docs, apply_chat_template=True, chat_template=_as_messages)
    instances = sorted(task.instances, key=lambda inst: inst.doc_id)
    if len(instances) != n_docs or [inst.doc["doc_index"] for inst in instances] != list(range(n_docs)):
        raise RuntimeError(f"lm-eval task {task.task_name} built {len(instances)} requests for {n_docs} docs")
    return instances


def chat_prompts(task, n_docs: int) -> list[list[dict]]:
    """The chat messages lm-eval builds for each of the first `n_docs` docs."""
    return [json.loads(inst.args[0]) for inst in _instances(task, n_docs)]


def raw_docs(task, n_docs: int) -> list[dict]:
    """The first `n_docs` docs lm-eval's task holds, as the rows of the data file."""
    return [json.loads(inst.doc["raw"]) for inst in _instances(task, n_docs)]


def score(task, responses: Sequence[str]) -> tuple[str, float, float | None, list[dict]]:
    """(metric name, aggregate, stderr, per-doc samples) of `responses`, one per doc in order.

    Each sample: doc_index, extracted (the filtered answer, None when nothing
    could be extracted) and correct (0/1). An unextractable answer is scored
    by the metric like any other (it never equals the gold), so it counts in N.
    """
    from lm_eval.api.metrics import stderr_for_metric

    instances = _instances(task, len(responses))
    for inst, text in zip(instances, responses, strict=True):
        inst.resps = [text if isinstance(text, str) else ""]
    task.apply_filters()
    (filter_name,) = instances[0].filtered_resps  # each task YAML defines one filter pipeline
    (metric,) = task.aggregation()
    samples, values = [], []
    for inst in instances:
        extracted = inst.filtered_resps[filter_name]
        value = task.process_results(inst.doc, [extracted])[metric]
        values.append(value)
        samples.append({"doc_index": inst.doc["doc_index"], "extracted": None if extracted == INVALID else extracted,
                        "correct": int(value)})
    aggregate = task.aggregation()[metric]
    stderr_fn = stderr_for_metric(aggregate, bootstrap_iters=BOOTSTRAP_ITERS)
    stderr = stderr_fn(values) if stderr_fn and len(values) > 1 else None
    return metric, float(aggregate(values)), _finite(stderr), samples


def mean_and_stderr(values: Sequence[float]) -> tuple[float | None, float | None]:
    """lm-eval's mean and its standard error (None where undefined: no or one value)."""
    from lm_eval.api.metrics import mean, mean_stderr

    if not values:
        return None, None
    return float(mean(values)), _finite(mean_stderr(values)) if len(values) > 1 else None


def _finite(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None
