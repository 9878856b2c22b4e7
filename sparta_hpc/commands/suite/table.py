"""`sparta-hpc suite table`: Table 1 from the per-task runs, and the ablations' table.

Rows are the suite's methods (BEST INIT first), columns its tasks. Each cell is what
`sparta-hpc compare` gives for that task's runs (eval/compare.py: the member x iteration
best on dev, or with --selection last the best of the last iteration's members, reported on
test; BEST INIT from the initial evaluation of the runs that made one, the best_init run's),
so a column compares runs evaluated alike: its standard error and N, a mark where the
difference from BEST INIT is significant (a paired bootstrap over the test items,
eval/significance.py), and among how many checkpoints the row chose. A run with no result
yet shows "-"; the vs BEST INIT column is the mean over the tasks of method / BEST INIT - 1.
"""

from __future__ import annotations

from ...config.schema import load_config
from ...eval.contamination import contamination_line
from ...eval.significance import RESAMPLES, SEED
from ...rundir.paths import RunPaths
from ..compare import BEST_INIT, compare, selection_words, table_text
from .spec import Run, Suite


def has_results(run: Run) -> bool:
    paths = RunPaths(run.dir)
    return paths.config.exists() and bool(paths.evaluated_points())


def cells(runs: list[Run], rows: list[str], tasks: list[str], selection: str = "best-dev",
          seed: int = SEED) -> tuple[dict, list[str], str | None]:
    """{(row, task): (reported figure, its test against BEST INIT, candidates)}, what compare left out
    (per task, why), and the split the cells report."""
    found: dict = {}
    notes = []
    split = None
    for task in tasks:
        mine = [r for r in runs if r.task == task and r.entry.name in rows and has_results(r)]
        if not mine:
            continue
        table = compare([r.dir for r in mine], selection, seed)
        if task not in table["tasks"]:
            notes += [f"{task}: {why}" for t, why in table["left_out"].items() if t == task]
            continue
        split = split or table["split"]
        for name, row in zip([BEST_INIT, *(r.entry.name for r in mine)], table["rows"]):
            found[name, task] = (row["figures"][task], row["tests"].get(task), row["candidates"].get(task))
    return found, notes, split


def build(runs: list[Run], rows: list[str], tasks: list[str], selection: str = "best-dev", seed: int = SEED) -> dict:
    """The table in compare's shape: per row the chosen figure, test and candidates per task, and the
    mean change over BEST INIT."""
    found, notes, split = cells(runs, rows, tasks, selection, seed)
    out = []
    for name in [BEST_INIT, *rows]:
        mine = {t: found[name, t] for t in tasks if (name, t) in found}
        scores = {t: f[2]["score"] for t, (f, _, _) in mine.items() if f and f[2]}
        init = {t: found[BEST_INIT, t][0][2]["score"] for t in tasks
                if (BEST_INIT, t) in found and found[BEST_INIT, t][0] and found[BEST_INIT, t][0][2]}
        changes = [scores[t] / init[t] - 1 for t in scores if init.get(t)]
        out.append({"label": name, "figures": {t: f for t, (f, _, _) in mine.items()},
                    "tests": {t: test for t, (_, test, _) in mine.items() if test},
                    "candidates": {t: k for t, (_, _, k) in mine.items() if k is not None},
                    "improvement": sum(changes) / len(changes) if changes and name != BEST_INIT else None})
    return {"tasks": tasks, "rows": out, "notes": notes, "split": split, "seed": seed, "resamples": RESAMPLES}


def render_table(table: dict, fmt: str = "md") -> str:
    text = table_text(table, fmt)
    return text if fmt == "csv" else "\n".join([text, *(f"left out: {n}" for n in table["notes"])])


def render(suite: Suite, runs: list[Run], fmt: str = "md", selection: str = "best-dev", seed: int = SEED) -> str:
    methods = [e.name for e in suite.entries if not e.ablation]
    ablations = [e.name for e in suite.entries if e.ablation]
    main = render_table(build(runs, methods, list(suite.tasks), selection, seed), fmt)
    ablation = render_table(build(runs, [suite.best_init, *ablations], list(suite.ablation_tasks), selection, seed),
                            fmt) if ablations else None
    if fmt == "csv":
        return "\n".join([main] + ([ablation] if ablation else []))
    text = [f"Table 1: per task, each method's run {selection_words(selection, 'dev')}, reported on test "
            "(compare's rule); the best value per column in bold; '-': no result yet.", "", main]
    if ablations:
        text += ["", f"Ablations (against {suite.best_init}, on their own runs):", "", ablation]
    done = [r for r in runs if has_results(r)]
    text += [""] + [contamination_line(load_config(RunPaths(r.dir).config), RunPaths(r.dir), [r.task]) for r in done]
    return "\n".join(text)
