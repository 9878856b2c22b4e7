"""`sparta-hpc suite table`: Table 1 from the per-task runs, and the ablations' table.

Rows are the suite's methods (BEST INIT first), columns its tasks. Each cell is what
`sparta-hpc compare` gives for that task's runs (eval/compare.py: the member x iteration
best on dev, reported on test; BEST INIT from the initial evaluation of the runs that made
one, the best_init run's), so a column compares runs evaluated alike. A run with no result
yet shows "-"; the last column is the mean over the tasks of method / BEST INIT - 1.
"""

from __future__ import annotations

import csv
import io

from ..config import load_config
from ..eval.compare import compare
from ..eval.contamination import contamination_line
from ..paths import RunPaths
from .spec import Run, Suite

BEST_INIT = "BEST INIT"


def has_results(run: Run) -> bool:
    paths = RunPaths(run.dir)
    return paths.config.exists() and bool(paths.evaluated_points())


def cells(runs: list[Run], rows: list[str], tasks: list[str]) -> tuple[dict, list[str]]:
    """{(row, task): reported figure or None}, and what compare left out (per task, why)."""
    found: dict = {}
    notes = []
    for task in tasks:
        mine = [r for r in runs if r.task == task and r.entry.name in rows and has_results(r)]
        if not mine:
            continue
        table = compare([r.dir for r in mine])
        if task not in table["tasks"]:
            notes += [f"{task}: {why}" for t, why in table["left_out"].items() if t == task]
            continue
        found[BEST_INIT, task] = table["rows"][0]["figures"][task]
        for run, row in zip(mine, table["rows"][1:]):
            found[run.entry.name, task] = row["figures"][task]
    return found, notes


def _score(figure) -> float | None:
    return figure[2]["score"] if figure and figure[2] else None


def build(runs: list[Run], rows: list[str], tasks: list[str]) -> dict:
    """The table as data: per row the reported scores per task and the mean change over BEST INIT."""
    found, notes = cells(runs, rows, tasks)
    out = []
    for name in [BEST_INIT, *rows]:
        scores = {t: _score(found.get((name, t))) for t in tasks}
        metric = {t: found[name, t][2].get("metric") for t in tasks if _score(found.get((name, t))) is not None}
        init = {t: _score(found.get((BEST_INIT, t))) for t in tasks}
        changes = [scores[t] / init[t] - 1 for t in tasks if scores[t] is not None and init[t]]
        out.append({"method": name, "scores": scores, "metric": metric,
                    "improvement": sum(changes) / len(changes) if changes and name != BEST_INIT else None,
                    "who": {t: found[name, t][:2] for t in tasks if (name, t) in found}})
    return {"tasks": tasks, "rows": out, "notes": notes}


def render_table(table: dict, fmt: str = "md") -> str:
    tasks, rows = table["tasks"], table["rows"]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["method", *tasks, "improvement_over_best_init"])
        for r in rows:
            w.writerow([r["method"], *(r["scores"][t] for t in tasks), r["improvement"]])
        return buf.getvalue()
    best = {t: max((r["scores"][t] for r in rows if r["scores"][t] is not None), default=None) for t in tasks}
    lines = ["| method | " + " | ".join(tasks) + " | vs BEST INIT |", "|---|" + "---|" * (len(tasks) + 1)]
    for r in rows:
        out = []
        for t in tasks:
            v = r["scores"][t]
            text = "-" if v is None else f"{v:.{2 if r['metric'].get(t) == 'rating' else 3}f}"
            out.append(f"**{text}**" if v is not None and v == best[t] and len(rows) > 1 else text)
        imp = "" if r["method"] == BEST_INIT else ("-" if r["improvement"] is None else f"{r['improvement']:+.1%}")
        lines.append(f"| {r['method']} | " + " | ".join(out) + f" | {imp} |")
    lines += [f"left out: {n}" for n in table["notes"]]
    return "\n".join(lines)


def render(suite: Suite, runs: list[Run], fmt: str = "md") -> str:
    methods = [e.name for e in suite.entries if not e.ablation]
    ablations = [e.name for e in suite.entries if e.ablation]
    main = render_table(build(runs, methods, list(suite.tasks)), fmt)
    if fmt == "csv":
        parts = [main]
        if ablations:
            parts.append(render_table(build(runs, [suite.best_init, *ablations], list(suite.ablation_tasks)), fmt))
        return "\n".join(parts)
    text = ["Table 1: per task, each method's run selected on dev and reported on test (compare's rule); the best "
            "value per column in bold; '-': no result yet.", "", main]
    if ablations:
        text += ["", f"Ablations (against {suite.best_init}, on their own runs):", "",
                 render_table(build(runs, [suite.best_init, *ablations], list(suite.ablation_tasks)), fmt)]
    done = [r for r in runs if has_results(r)]
    text += [""] + [contamination_line(load_config(RunPaths(r.dir).config), RunPaths(r.dir), [r.task]) for r in done]
    return "\n".join(text)
