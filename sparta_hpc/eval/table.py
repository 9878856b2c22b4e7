"""The evaluation table of a run: BEST INIT, the selected model, every member at every point.

    sparta-hpc eval-table RUN [--format md|csv]

Selection rule (the paper's, as the authors' group reports "the SPARTA
number"): per task, the member x iteration best on the dev split, reported on
the test split. BEST INIT is chosen the same way among the initial members, so
both sides of the comparison are selected alike. Where only one split was
evaluated, it serves both roles (the table says so). The change is SPARTA /
BEST INIT - 1; the average over the tasks is the paper's "+7.0%".

`selection` (compare and suite table's --selection): best-dev is that rule; last picks among the
members of the last evaluated iteration only (a one-model baseline: its last model). Each row says
among how many candidates (member x point with a figure on the selection split) it was chosen.
"""

from __future__ import annotations

import csv
import io

from ..rundir.files import read_json
from ..rundir.paths import INITIAL, RunPaths, point_label

SELECTIONS = ("best-dev", "last")


def load(paths: RunPaths) -> dict[int, dict]:
    """Every evaluated point's scores: {point: {member: {task: {split: figures}}}}."""
    return {p: read_json(paths.eval_summary(p))["scores"] for p in paths.evaluated_points()}


def figure(scores: dict, point: int, member: str, task: str, split: str) -> dict | None:
    f = scores.get(point, {}).get(member, {}).get(task, {}).get(split)
    return f if f and f.get("score") is not None else None


def best(scores: dict, candidates: list[tuple[str, int]], task: str, select: str, report: str):
    """(member, point, reported figure) of the candidate best on the `select` split; the figure is
    None while that point's `report` split is not evaluated (evaluate dev everywhere, then test
    only where it is needed)."""
    ranked = [(figure(scores, p, m, task, select)["score"], m, p) for m, p in candidates
              if figure(scores, p, m, task, select)]
    if not ranked:
        return None
    _, member, point = max(ranked, key=lambda r: r[0])  # ties: the first candidate (initial, config order)
    return member, point, figure(scores, point, member, task, report)


def candidates(scores: dict, members: list[str], task: str, select: str, selection: str = "best-dev"):
    """The trained member x points the selection ranks on `select`: every one with a figure (best-dev),
    or those of the last point with one (last)."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection: one of {', '.join(SELECTIONS)}, got {selection!r}")
    found = [(m, p) for p in sorted(scores) if p != INITIAL for m in members if figure(scores, p, m, task, select)]
    last = max((p for _, p in found), default=None)
    return [(m, p) for m, p in found if p == last] if selection == "last" else found


def headline(scores: dict, selection: str = "best-dev") -> list[dict]:
    """Per task: BEST INIT, the selected model (SPARTA's, or a baseline's), the relative change, and
    the candidates (member, point) each was chosen among."""
    tasks = sorted({t for per_member in scores.values() for tasks in per_member.values() for t in tasks})
    rows = []
    for task in tasks:
        splits = {s for per_member in scores.values() for tasks in per_member.values() for s in tasks.get(task, {})}
        select, report = ("dev" if "dev" in splits else "test"), ("test" if "test" in splits else "dev")
        members = sorted({m for per_member in scores.values() for m in per_member})
        initial = [(m, INITIAL) for m in members if figure(scores, INITIAL, m, task, select)]
        trained = candidates(scores, members, task, select, selection)
        init = best(scores, initial, task, select, report)
        sparta = best(scores, trained, task, select, report)
        change = None
        if init and sparta and init[2] and sparta[2] and init[2]["score"]:
            change = sparta[2]["score"] / init[2]["score"] - 1
        rows.append({"task": task, "select": select, "report": report, "best_init": init, "sparta": sparta,
                     "change": change, "candidates": {"best_init": initial, "sparta": trained}})
    return rows


def _cell(f: dict | None, who: str = "", missing: str = "-") -> str:
    if f is None:
        return missing
    digits = 2 if f.get("metric") == "rating" else 3
    err = f" ± {f['stderr']:.{digits}f}" if f.get("stderr") is not None else ""
    return f"{f['score']:.{digits}f}{err}" + (f" ({who}, N={f['n']})" if who else "")


def render(paths: RunPaths, fmt: str = "md") -> str:
    scores = load(paths)
    rows = headline(scores)
    changes = [r["change"] for r in rows if r["change"] is not None]
    if fmt == "csv":
        return _csv(scores, rows)
    lines = ["Evaluation: per task, BEST INIT (the best initial member) and the selected model (the best",
             "trained member x iteration), each selected on dev and reported on test; ± standard error, N items.", "",
             "| task | selected on / reported on | BEST INIT | selected model | change |", "|---|---|---|---|---|"]
    for r in rows:
        init, sparta = r["best_init"], r["sparta"]
        todo = f"({{}}: no {r['report']} result yet; `sparta-hpc eval RUN --{{}} eval.split={r['report']}`)"
        init_cell = _cell(init[2], init[0], todo.format(init[0], "initial")) if init else "-"
        sparta_cell = _cell(sparta[2], f"{sparta[0]} @ {point_label(sparta[1])}",
                            todo.format(f"{sparta[0]} @ {point_label(sparta[1])}", f"iteration {sparta[1]}")) \
            if sparta else "-"
        change = f"{r['change']:+.1%}" if r["change"] is not None else "-"
        lines.append(f"| {r['task']} | {r['select']} / {r['report']} | {init_cell} | {sparta_cell} | {change} |")
    if changes:
        lines.append(f"| average relative improvement | | | | {sum(changes) / len(changes):+.1%} "
                     f"over {len(changes)} task(s) |")
    points = sorted(scores)
    lines += ["", "Every member at every evaluation point (reported split):", "",
              "| task | member | " + " | ".join(point_label(p) for p in points) + " |",
              "|---|---|" + "---|" * len(points)]
    for r in rows:
        members = sorted({m for p in points for m in scores[p] if r["task"] in scores[p][m]})
        for m in members:
            lines.append(f"| {r['task']} | {m} | "
                         + " | ".join(_cell(figure(scores, p, m, r["task"], r["report"])) for p in points) + " |")
    from ..config.schema import load_config  # here: the config module imports the eval package's checks
    from .contamination import contamination_line

    lines += ["", contamination_line(load_config(paths.config), paths, [r["task"] for r in rows])]
    return "\n".join(lines)


def _csv(scores: dict, rows: list[dict]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["kind", "task", "split", "member", "point", "score", "stderr", "n", "missing", "change"])
    for r in rows:
        for kind in ("best_init", "sparta"):
            if r[kind] and r[kind][2]:
                m, p, f = r[kind]
                w.writerow([kind, r["task"], r["report"], m, point_label(p), f["score"], f["stderr"], f["n"],
                            f["missing"], r["change"] if kind == "sparta" else ""])
    for p in sorted(scores):
        for m, tasks in scores[p].items():
            for task, per_split in tasks.items():
                for split, f in per_split.items():
                    w.writerow(["score", task, split, m, point_label(p), f["score"], f["stderr"], f["n"],
                                f["missing"], ""])
    return out.getvalue()
