"""eval.test: selected: the test split only where dev selects, for the same table at a fraction of the cost.

The table (eval/table.py) reports, per task, BEST INIT and the selected model: the member x point
best on dev, reported on test. Only those two test figures per task are ever read, so with
eval.test selected every point answers dev, and once the last point's dev is scored the driver
evaluates the test split of each task for those two member x points alone, as each point's own
evaluate step (eval/plan.py: the item's "members"; resumable like every stage). The choice is
made by table.headline itself on the dev scores, so it cannot drift from the table's rule.
"""

from __future__ import annotations

from ..config.schema import Config
from ..rundir.paths import RunPaths
from . import plan as eval_plan
from . import table


def dev_only(scores: dict) -> dict:
    """{point: {member: {task: {"dev": figures}}}}: what the selection may look at."""
    return {p: {m: {t: {"dev": per["dev"]} for t, per in tasks.items() if "dev" in per}
                for m, tasks in members.items()} for p, members in scores.items()}


def choose(scores: dict) -> dict[int, dict[str, list[str]]]:
    """{point: {member: [tasks]}}: per task, BEST INIT's and the selected model's member x point on dev."""
    out: dict[int, dict[str, list[str]]] = {}
    for row in table.headline(dev_only(scores)):
        for chosen in (row["best_init"], row["sparta"]):
            if chosen:
                member, point, _ = chosen
                out.setdefault(point, {}).setdefault(member, []).append(row["task"])
    return out


def selected_tests(cfg: Config, paths: RunPaths) -> dict[int, dict[str, list[str]]]:
    """The test items to evaluate, {point: {member: [tasks]}}: none unless eval.test is selected
    and every evaluation point of the config has its dev scores (the last iteration's included)."""
    points = eval_plan.eval_points(cfg)
    if cfg.eval.test != "selected" or "test" not in eval_plan.splits(cfg) or not points:
        return {}
    if not all(paths.eval_summary(p).exists() for p in points):
        return {}
    return choose(table.load(paths))
