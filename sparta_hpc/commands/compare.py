"""Several runs side by side in the shape of the paper's Table 1.

    sparta-hpc compare RUN [RUN ...] [--format md|csv] [--selection best-dev|last] [--seed 0]

One row per method: BEST INIT (the best initial member per task, from the
runs' initial evaluations), then each run's selected model (per task the
member x iteration best on dev, reported on test: `eval.table`'s rule; or with
--selection last, the best on dev among the last iteration's members),
labelled by its method; one column per task; the best value per column
marked; and the average relative improvement over BEST INIT. Each cell has
its standard error and N, and a mark when its difference from BEST INIT is
significant in a paired bootstrap over the test items (eval/significance.py);
the last column says among how many member x points each row was chosen: a
tribe's 10 members x 8 points are 80 chances at a lucky dev score, a
baseline's one model x 8 points are 8. Tasks are compared only where every
run evaluated them on the same reported split; the table lists what it left
out and why.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from pathlib import Path

from ..config.schema import load_config
from ..eval.contamination import contamination_line
from ..eval.significance import RESAMPLES, SEED, item_scores, legend, paired_test, stars
from ..eval.table import headline, load
from ..rundir.paths import RunPaths

log = logging.getLogger("sparta_hpc")

BEST_INIT = "BEST INIT"


def run_rows(run_dir: Path, selection: str = "best-dev") -> tuple[str, RunPaths, dict[str, dict]]:
    """(label, paths, {task: headline row}) of one run."""
    paths = RunPaths(run_dir)
    if not paths.config.exists():
        raise ValueError(f"{run_dir}: not a run directory (no config.yaml)")
    scores = load(paths)
    if not scores:
        raise ValueError(f"{run_dir}: no evaluation results (run `sparta-hpc eval {run_dir}`)")
    method = load_config(paths.config).method
    return f"{method} ({paths.root.name})", paths, {r["task"]: r for r in headline(scores, selection)}


def _best_init(paths: list[RunPaths], per_run: list[dict[str, dict]], task: str):
    """(run, the best initial member's (member, point, reported figure), candidates) among the runs that
    evaluated their start; None where none did. Runs that each evaluated the same experts at their
    start offer them once: the candidates are the distinct initial members."""
    found = [(p, r[task]) for p, r in zip(paths, per_run) if r[task]["best_init"] and r[task]["best_init"][2]]
    if not found:
        return None
    run, row = max(found, key=lambda f: f[1]["best_init"][2]["score"])
    return run, row["best_init"], len({m for _, r in found for m, _ in r["candidates"]["best_init"]})


def _samples(paths: RunPaths, chosen, task: str, split: str):
    member, point, _ = chosen
    return item_scores(paths.eval_samples(point, member, task, split))


def compare(run_dirs: list[Path], selection: str = "best-dev", seed: int = SEED, resamples: int = RESAMPLES) -> dict:
    labels, paths, per_run = zip(*(run_rows(Path(d), selection) for d in run_dirs))
    tasks = sorted(set.intersection(*(set(r) for r in per_run)))
    left_out = {t: "not evaluated by every run" for r in per_run for t in r if t not in tasks}
    kept = []
    for task in tasks:
        splits = {r[task]["report"] for r in per_run}
        if len(splits) > 1:
            left_out[task] = f"reported on different splits ({', '.join(sorted(splits))})"
        else:
            kept.append(task)
    split = per_run[0][kept[0]]["report"] if kept else None
    init = {t: _best_init(paths, per_run, t) for t in kept}
    rows = [{"label": BEST_INIT, "figures": {t: init[t][1] if init[t] else None for t in kept},
             "candidates": {t: init[t][2] for t in kept if init[t]}, "tests": {}}]
    for label, run, r in zip(labels, paths, per_run):
        tests = {}
        for t in kept:
            if init[t] and r[t]["sparta"] and r[t]["sparta"][2]:
                base = _samples(init[t][0], init[t][1], t, split)
                tests[t] = paired_test(base, _samples(run, r[t]["sparta"], t, split), resamples, seed)
        rows.append({"label": label, "figures": {t: r[t]["sparta"] for t in kept},
                     "candidates": {t: len(r[t]["candidates"]["sparta"]) for t in kept}, "tests": tests})
    for row in rows:
        changes = []
        for t in kept:
            init_figure, mine = rows[0]["figures"][t], row["figures"][t]
            if row is not rows[0] and init_figure and mine and mine[2] and init_figure[2]["score"]:
                changes.append(mine[2]["score"] / init_figure[2]["score"] - 1)
        row["improvement"] = sum(changes) / len(changes) if changes else None
    return {"tasks": kept, "rows": rows, "left_out": left_out, "split": split, "selection": selection,
            "select": per_run[0][kept[0]]["select"] if kept else None, "seed": seed, "resamples": resamples}


def selection_words(selection: str, select: str | None) -> str:
    """How each row's model was chosen, for the line above a table."""
    if selection == "last":
        return f"selected on {select} among the last evaluated iteration's members (BEST INIT: among the initial ones)"
    return f"selected on {select} among every member x iteration (BEST INIT: among the initial members)"


def _value(figure) -> float | None:
    return figure[2]["score"] if figure and figure[2] else None


def _among(counts: dict[str, int], tasks: list[str]) -> str:
    values = [counts[t] for t in tasks if t in counts]
    if not values:
        return "-"
    if len(set(values)) == 1:
        return f"{values[0]} checkpoint{'s' if values[0] != 1 else ''}"
    return ", ".join(f"{t} {counts[t]}" for t in tasks if t in counts) + " checkpoints"


def table_text(table: dict, fmt: str = "md") -> str:
    """A compare-shaped table (compare(), suite/table.py's build()) in markdown (the table, its legend
    and notes) or CSV: per task the score, then per task its stderr, N, p-value of the difference from
    BEST INIT, items paired and candidates."""
    tasks, rows = table["tasks"], table["rows"]
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out)
        extra = ("stderr", "n", "p_value", "n_paired", "candidates")
        w.writerow(["method", *tasks, "improvement_over_best_init", *(f"{t}_{x}" for t in tasks for x in extra)])
        for r in rows:
            cells = []
            for t in tasks:
                f, test = r["figures"].get(t), r["tests"].get(t) or {}
                reported = f[2] if _value(f) is not None else {}
                cells += [reported.get("stderr"), reported.get("n"), test.get("p"), test.get("n_paired"),
                          r["candidates"].get(t)]
            w.writerow([r["label"], *(_value(r["figures"].get(t)) for t in tasks), r["improvement"], *cells])
        return out.getvalue()
    best = {t: max((_value(r["figures"].get(t)) for r in rows if _value(r["figures"].get(t)) is not None),
                   default=None) for t in tasks}
    lines = ["| method | " + " | ".join(tasks) + " | vs BEST INIT | selected among |",
             "|---|" + "---|" * (len(tasks) + 2)]
    notes = []
    for r in rows:
        cells = []
        for t in tasks:
            f, test = r["figures"].get(t), r["tests"].get(t) or {}
            v = _value(f)
            if v is None:
                cells.append("-")
                continue
            digits = 2 if f[2].get("metric") == "rating" else 3
            text = f"{v:.{digits}f}"
            text = f"**{text}**" if v == best[t] and len(rows) > 1 else text
            text += f" ± {f[2]['stderr']:.{digits}f}" if f[2].get("stderr") is not None else ""
            cells.append(f"{text} (N={f[2]['n']})" + (f" {stars(test['p'])}" if stars(test.get("p")) else ""))
            if test.get("note"):
                notes.append(f"{t}, {r['label']}: {test['note']}")
        imp = "" if r["label"] == BEST_INIT else ("-" if r["improvement"] is None else f"{r['improvement']:+.1%}")
        lines.append(f"| {r['label']} | " + " | ".join(cells) + f" | {imp} | {_among(r['candidates'], tasks)} |")
    lines += ["", legend(table.get("split") or "test", table["resamples"], table["seed"])]
    return "\n".join(lines + [f"note: {n}" for n in notes])


def render(run_dirs: list[Path], fmt: str = "md", selection: str = "best-dev", seed: int = SEED) -> str:
    table = compare(run_dirs, selection, seed)
    if fmt == "csv":
        return table_text(table, fmt)
    lines = [f"Per task, each run's model {selection_words(selection, table['select'])}, reported on "
             f"{table['split']}; the best value per column in bold; the vs BEST INIT column is the mean over the "
             "tasks of method / BEST INIT - 1; selected among: the member x iterations the choice was made "
             "from.", "", table_text(table)]
    for task, why in sorted(table["left_out"].items()):
        lines.append(f"\nleft out: {task} ({why})")
    lines.append("")
    lines += [contamination_line(load_config(RunPaths(d).config), RunPaths(d), table["tasks"]) for d in run_dirs]
    return "\n".join(lines)


def command(args: argparse.Namespace) -> int:
    """`sparta-hpc compare`: the table on stdout; 2 for runs that cannot be compared."""
    try:
        print(render(args.run_dirs, args.format, args.selection, args.seed))
    except ValueError as err:
        log.error("compare: %s", err)
        return 2
    return 0
