"""Several runs side by side in the shape of the paper's Table 1.

    sparta-hpc compare RUN [RUN ...] [--format md|csv]

One row per method: BEST INIT (the best initial member per task, from the
runs' initial evaluations), then each run's selected model (per task the
member x iteration best on dev, reported on test: `eval.table`'s rule),
labelled by its method; one column per task; the best value per column
marked; and the average relative improvement over BEST INIT. Tasks are
compared only where every run evaluated them on the same reported split;
the table lists what it left out and why.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..config import load_config
from ..paths import RunPaths
from .contamination import contamination_line
from .table import headline, load


def run_rows(run_dir: Path) -> tuple[str, dict[str, dict]]:
    """(label, {task: headline row}) of one run."""
    paths = RunPaths(run_dir)
    if not paths.config.exists():
        raise ValueError(f"{run_dir}: not a run directory (no config.yaml)")
    scores = load(paths)
    if not scores:
        raise ValueError(f"{run_dir}: no evaluation results (run `sparta-hpc eval {run_dir}`)")
    method = load_config(paths.config).method
    return f"{method} ({paths.root.name})", {r["task"]: r for r in headline(scores)}


def _best_init(per_run: list[dict[str, dict]], task: str):
    """The best initial member's reported figure among the runs that evaluated their start."""
    found = [r[task]["best_init"] for r in per_run if r[task]["best_init"] and r[task]["best_init"][2]]
    return max(found, key=lambda b: b[2]["score"]) if found else None


def compare(run_dirs: list[Path]) -> dict:
    labels, per_run = zip(*(run_rows(Path(d)) for d in run_dirs))
    tasks = sorted(set.intersection(*(set(r) for r in per_run)))
    left_out = {t: "not evaluated by every run" for r in per_run for t in r if t not in tasks}
    kept = []
    for task in tasks:
        splits = {r[task]["report"] for r in per_run}
        if len(splits) > 1:
            left_out[task] = f"reported on different splits ({', '.join(sorted(splits))})"
        else:
            kept.append(task)
    rows = [{"label": "BEST INIT", "figures": {t: _best_init(per_run, t) for t in kept}}]
    for label, r in zip(labels, per_run):
        rows.append({"label": label, "figures": {t: r[t]["sparta"] for t in kept}})
    for row in rows:
        changes = []
        for t in kept:
            init, mine = rows[0]["figures"][t], row["figures"][t]
            if row is not rows[0] and init and mine and mine[2] and init[2]["score"]:
                changes.append(mine[2]["score"] / init[2]["score"] - 1)
        row["improvement"] = sum(changes) / len(changes) if changes else None
    return {"tasks": kept, "rows": rows, "left_out": left_out,
            "select": per_run[0][kept[0]]["select"] if kept else None,
            "split": per_run[0][kept[0]]["report"] if kept else None}


def _value(figure) -> float | None:
    return figure[2]["score"] if figure and figure[2] else None


def render(run_dirs: list[Path], fmt: str = "md") -> str:
    table = compare(run_dirs)
    tasks, rows = table["tasks"], table["rows"]
    best = {t: max((_value(r["figures"][t]) for r in rows if _value(r["figures"][t]) is not None), default=None)
            for t in tasks}
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["method", *tasks, "improvement_over_best_init"])
        for r in rows:
            w.writerow([r["label"], *(_value(r["figures"][t]) for t in tasks), r["improvement"]])
        return out.getvalue()
    lines = [f"Selected on {table['select']}, reported on {table['split']}; the best value per column in bold; "
             "the last column is the mean over the tasks of method / BEST INIT - 1.", "",
             "| method | " + " | ".join(tasks) + " | vs BEST INIT |", "|---|" + "---|" * (len(tasks) + 1)]
    for r in rows:
        cells = []
        for t in tasks:
            v = _value(r["figures"][t])
            digits = 2 if _value(r["figures"][t]) is not None and r["figures"][t][2].get("metric") == "rating" else 3
            text = "-" if v is None else f"{v:.{digits}f}"
            cells.append(f"**{text}**" if v is not None and v == best[t] else text)
        imp = "" if r["label"] == "BEST INIT" else ("-" if r["improvement"] is None else f"{r['improvement']:+.1%}")
        lines.append(f"| {r['label']} | " + " | ".join(cells) + f" | {imp} |")
    for task, why in sorted(table["left_out"].items()):
        lines.append(f"\nleft out: {task} ({why})")
    lines.append("")
    lines += [contamination_line(load_config(RunPaths(d).config), RunPaths(d), tasks) for d in run_dirs]
    return "\n".join(lines)
