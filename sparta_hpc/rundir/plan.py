"""A plan: what the array tasks of an iteration or of an evaluation point work on.

An iteration's plan (RUN/iter_t/plan.json) is written by stages/plan.py and lists the
generate and judge tasks; an evaluation point's (RUN/eval/<point>/plan.json) is written by
the driver from eval/plan.py and lists the evaluate and rate tasks. A task list is read through
`Plan.tasks` only; `plan_file` says which of the two plans lists a stage's tasks.
"""

from __future__ import annotations

from pathlib import Path

from .files import read_json
from .paths import EVAL_STAGES, RunPaths

# the stages whose tasks a plan lists (the other array stages have a task per member)
PLANNED_STAGES = ("generate", "judge", "evaluate", "rate")


class Plan(dict):
    """A plan.json object as it is on disk. A dict, so that it is written, compared and indexed
    exactly as the JSON it is; what is not a plain field (a stage's task list) has an accessor."""

    @classmethod
    def read(cls, path: Path) -> Plan:
        return cls(read_json(path))

    def tasks(self, stage: str) -> list:
        """The array tasks of `stage`, in task order: [group, shard] (generate, judge, evaluate) or a
        shard number (rate); [] where this plan lists none (an iteration's plan has no rate tasks)."""
        if stage not in PLANNED_STAGES:
            raise ValueError(f"a plan lists the tasks of {', '.join(PLANNED_STAGES)}, not of {stage}")
        return self.get(f"{stage}_tasks", [])


def plan_file(paths: RunPaths, stage: str, iteration: int) -> Path:
    """The plan that lists a stage's tasks: the evaluation point's (`iteration` is the point) or the iteration's."""
    return paths.eval_plan(iteration) if stage in EVAL_STAGES else paths.plan(iteration)


def stage_plan(paths: RunPaths, stage: str, iteration: int) -> Plan:
    return Plan.read(plan_file(paths, stage, iteration))
