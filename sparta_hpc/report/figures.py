"""The report's figures: each function takes plain numbers (report/data.py) and returns one PNG.

matplotlib's object API on the Agg canvas (`Figure`, never pyplot): no display, no global
state, so a report can be made on a login node or inside a job.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MultipleLocator

from ..rundir.paths import point_label
from .timeline import STAGE_ORDER, Attempt

DPI = 100
STAGE_COLOURS = dict(zip(STAGE_ORDER, ("#8c564b", "#7f7f7f", "#1f77b4", "#ff7f0e", "#9467bd", "#17becf",
                                       "#2ca02c", "#d62728", "#e377c2", "#bcbd22")))


def colour(i: int) -> str:
    return f"C{i % 10}"


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def ratings(trajectories: list[dict], names: list[str]) -> bytes:
    """Each member's reputation before every duel and after each iteration; band: +- its deviation."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.subplots()
    for k, tr in enumerate(trajectories):
        for i, name in enumerate(names):
            r, d = tr["rating"][:, i], tr["deviation"][:, i]
            ax.plot(tr["x"], r, color=colour(i), lw=1.4, label=name if k == 0 else None)
            ax.fill_between(tr["x"], r - d, r + d, color=colour(i), alpha=0.08, lw=0)
        ax.axvline(tr["x"][0], color="0.6", ls=":", lw=1)
        ax.text(tr["x"][0], 1.0, f" iter {tr['t']}", transform=ax.get_xaxis_transform(), va="top", fontsize=8,
                color="0.4")
    ax.set(xlabel="duel (plan order, all iterations)", ylabel="reputation",
           title="Reputation per member (band: ± deviation)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    return png(fig)


def win_matrix(wins: np.ndarray, names: list[str]) -> bytes:
    fig = Figure(figsize=(1.2 + 0.7 * len(names), 0.8 + 0.6 * len(names)))
    ax = fig.subplots()
    image = ax.imshow(wins, cmap="Blues")
    top = wins.max() or 1
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, "-" if i == j else str(wins[i, j]), ha="center", va="center", fontsize=9,
                    color="white" if wins[i, j] > top * 0.6 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), [f"{n} ({wins[i].sum()})" for i, n in enumerate(names)])
    ax.set(xlabel="rejected (lost)", ylabel="chosen (won), total wins", title="Preference pairs: who beat whom")
    fig.colorbar(image, ax=ax, shrink=0.8, label="pairs")
    return png(fig)


def judge_panel(counts: dict[int, dict], scores: dict[str, np.ndarray], names: list[str]) -> bytes:
    """Left: share of judgments with a parsable score, per judge and iteration. Right: the scores given.
    Members that never judged (a single-model method's other members) are left out."""
    judges = [n for n in names if any(report.get(n, {}).get("judgments") for report in counts.values())]
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    width = 0.8 / max(len(counts), 1)
    for k, (t, report) in enumerate(sorted(counts.items())):
        rate = [1 - report[n]["unparsed"] / report[n]["judgments"] if report.get(n, {}).get("judgments")
                else np.nan for n in judges]
        left.bar(np.arange(len(judges)) + k * width - 0.4 + width / 2, rate, width, label=f"iter {t}")
    left.set_xticks(range(len(judges)), judges, rotation=30, ha="right")
    left.set(ylim=(0, 1.05), ylabel="parsed / asked", title="Parse rate per judge")
    left.legend(fontsize=8)
    bins = np.arange(0.75, 10.5, 0.5)
    given = [scores.get(n, np.array([])) for n in judges]
    right.hist(given, bins=bins, stacked=True, color=[colour(names.index(n)) for n in judges], label=judges)
    right.set(xlabel="score (mean over rounds)", ylabel="scores given", title="Scores per judge", xticks=range(1, 11))
    right.legend(fontsize=8)
    return png(fig)


def agreement(per_iteration: dict[int, dict], names: list[str]) -> bytes:
    """Left: agreement with the leave-one-out weighted consensus. Right: reputation against it."""
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    width = 0.8 / max(len(per_iteration), 1)
    for k, (t, per_judge) in enumerate(sorted(per_iteration.items())):
        values = [per_judge[n]["agreement"] if per_judge[n]["agreement"] is not None else np.nan for n in names]
        left.bar(np.arange(len(names)) + k * width - 0.4 + width / 2, values, width, label=f"iter {t}")
        for i, n in enumerate(names):
            if per_judge[n]["agreement"] is not None:
                right.scatter(per_judge[n]["agreement"], per_judge[n]["reputation"], color=colour(i),
                              marker="os^Dv<>p"[k % 8], s=40)
                right.annotate(f"{n} {t}", (per_judge[n]["agreement"], per_judge[n]["reputation"]), fontsize=7,
                               xytext=(3, 3), textcoords="offset points")
    left.axhline(0.5, color="0.5", ls=":", lw=1)
    left.set_xticks(range(len(names)), names, rotation=30, ha="right")
    left.set(ylim=(0, 1.05), ylabel="share of duels", title="Agreement with the other judges' weighted verdict")
    left.legend(fontsize=8)
    right.set(xlabel="agreement", ylabel="reputation after the iteration",
              title="Reputation vs agreement (label: judge, iteration)")
    return png(fig)


def pairs(rows: list[dict]) -> bytes:
    """Per iteration: pairs kept and instructions dropped (bars), the mean score margin (line)."""
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    x = np.array([r["t"] for r in rows])
    kept = np.array([r["pairs"] for r in rows])
    ties = np.array([r["ties"] or 0 for r in rows])
    none = np.array([r["no_judge"] or 0 for r in rows])
    ax.bar(x, kept, 0.6, label="pairs", color="C2")
    ax.bar(x, ties, 0.6, bottom=kept, label="dropped: tie", color="C7")
    if none.any():
        ax.bar(x, none, 0.6, bottom=kept + ties, label="dropped: no valid judge", color="C3")
    ax.set(xlabel="iteration", ylabel="instructions", xticks=x, title="Preference pairs per iteration")
    margin = [r["mean_margin"] if r["mean_margin"] is not None else np.nan for r in rows]
    twin = ax.twinx()
    twin.plot(x, margin, "ko-", label="mean score margin")
    twin.set_ylabel("mean score margin (chosen - rejected)")
    twin.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    fig.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, frameon=False)
    return png(fig)


def train_curves(curves: dict[str, list[dict]], names: list[str]) -> bytes:
    """Loss, reward margin and reward accuracy per member; iteration t spans [t, t+1) on the x axis."""
    fig = Figure(figsize=(12, 3.8))
    axes = fig.subplots(1, 3)
    keys = (("loss", "DPO loss"), ("margin", "reward margin (chosen - rejected)"), ("accuracy", "reward accuracy"))
    iterations = {r["t"] for records in curves.values() for r in records}
    for i, name in enumerate(names):
        records = curves.get(name, [])
        for t in sorted({r["t"] for r in records}):
            seg = [r for r in records if r["t"] == t]
            last = max(r["step"] for r in seg) or 1
            x = [t + r["step"] / (last + 1) for r in seg]
            for ax, (key, _) in zip(axes, keys):
                y = [r[key] if r[key] is not None else np.nan for r in seg]
                ax.plot(x, y, color=colour(i), marker=".", lw=1.2, label=name if t == records[0]["t"] else None)
    for ax, (_, title) in zip(axes, keys):
        ax.set(xlabel="iteration (steps within it)", title=title)
        # ticks at the iterations' starts, each iteration's steps between them
        ax.xaxis.set_major_locator(MultipleLocator(1))
        if iterations:
            ax.set_xlim(min(iterations), max(iterations) + 1)
    axes[0].legend(fontsize=8)
    return png(fig)


def eval_scores(scores: dict, headline: list[dict], names: list[str]) -> bytes:
    """Per task, each member's score on the reported split at every point; dashed: BEST INIT; star: selected."""
    tasks = [r["task"] for r in headline]
    points = sorted(scores)
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.3 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    labels = [point_label(p) for p in points]
    for ax, row in zip(axes, headline):
        split = row["report"]
        rated = False
        for i, name in enumerate(names):
            y = [_score(scores, p, name, row["task"], split) for p in points]
            rated |= any(_metric(scores, p, name, row["task"], split) == "rating" for p in points)
            if not np.isnan(y).all():
                ax.plot(range(len(points)), y, "o-", color=colour(i), label=name, ms=4)
        ax.set_ylim(*((0.5, 10.5) if rated else (-0.05, 1.05)))  # ratings 1..10, else accuracy
        if row["best_init"] and row["best_init"][2]:
            ax.axhline(row["best_init"][2]["score"], color="k", ls="--", lw=1, label="BEST INIT")
        if row["sparta"] and row["sparta"][2]:
            ax.plot(points.index(row["sparta"][1]), row["sparta"][2]["score"], "*", color="k", ms=14,
                    label="selected", zorder=5)
        ax.set_xticks(range(len(points)), labels)
        ax.set(title=f"{row['task']} ({split}; selected on {row['select']})")
    for ax in axes[len(headline):]:
        ax.set_axis_off()
    handles, labels = {}, {}
    for ax in axes:  # one legend for all panels: every member, BEST INIT, selected
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5),
               frameon=False)
    return png(fig)


def _metric(scores: dict, point: int, member: str, task: str, split: str) -> str | None:
    return (scores.get(point, {}).get(member, {}).get(task, {}).get(split) or {}).get("metric")


def _score(scores: dict, point: int, member: str, task: str, split: str) -> float:
    f = scores.get(point, {}).get(member, {}).get(task, {}).get(split)
    return f["score"] if f and f.get("score") is not None else np.nan


def timeline(attempts: list[Attempt], now: float) -> bytes:
    """One bar per task attempt from submission (or adoption) to its end, coloured by stage; failed attempts
    are hatched, attempts still in flight reach to now."""
    ordered = sorted(attempts, key=lambda a: (a.start, a.iteration, STAGE_ORDER.index(a.stage)
                                              if a.stage in STAGE_ORDER else 99))
    t0 = min(a.start for a in ordered)
    span = max((a.end or now) for a in ordered) - t0
    unit, scale = ("min", 60) if span > 300 else ("s", 1)
    fig = Figure(figsize=(10, min(12, 1.5 + 0.06 * len(ordered))))
    ax = fig.subplots()
    for y, a in enumerate(ordered):
        end = a.end or now
        ax.barh(y, max(end - a.start, span * 0.002) / scale, left=(a.start - t0) / scale, height=0.8,
                color=STAGE_COLOURS.get(a.stage, "0.5"), alpha=0.5 if a.state == "in flight" else 1.0,
                hatch="xxx" if a.state in ("failed", "lost") else None, edgecolor="k" if a.state != "done" else None,
                lw=0.5)
    seen = [s for s in STAGE_ORDER if any(a.stage == s for a in ordered)]
    handles = [Patch(color=STAGE_COLOURS[s], label=s) for s in seen]
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.invert_yaxis()
    ax.set_yticks([])
    ax.set(xlabel=f"{unit} since the first submission", ylabel=f"{len(ordered)} task attempts",
           title="Stage timeline (hatched: failed or lost attempt)")
    return png(fig)
