"""`sparta-hpc report RUN [--out DIR]`: one self-contained HTML page (every figure embedded as a
base64 PNG, so it opens anywhere after scp) plus the PNGs, in RUN/report/ by default.

Each section appears only where its data exists; otherwise the page says what is missing and
why (docs/report.md explains every figure).
"""

from __future__ import annotations

import base64
import html
import logging
import time
from pathlib import Path

import numpy as np

from ..rundir.events import read_events
from ..rundir.files import atomic_write_bytes, atomic_write_text, read_json
from ..rundir.paths import point_label
from . import data, status, timeline
from .timeline import duration

log = logging.getLogger("sparta_hpc")

CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.8em}
img{max-width:100%;height:auto;display:block;margin:.5em 0}table{border-collapse:collapse;font-size:.9em}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}.missing{color:#a33;font-style:italic}.note{color:#555;font-size:.9em}
code{background:#f3f3f3;padding:0 3px}"""


class Page:
    """The page's sections in order, and the PNGs to write beside it."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.images: dict[str, bytes] = {}
        self.missing: list[str] = []

    def section(self, title: str) -> None:
        self.parts.append(f"<h2>{html.escape(title)}</h2>")

    def image(self, name: str, png: bytes, alt: str) -> None:
        self.images[name] = png
        self.parts.append(f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" '
                          f'alt="{html.escape(alt)}" title="{name}">')

    def text(self, words: str, cls: str = "note") -> None:
        self.parts.append(f'<p class="{cls}">{html.escape(words)}</p>')

    def lack(self, section: str, why: str) -> None:
        self.missing.append(f"{section}: {why}")
        self.text(why, "missing")

    def table(self, head: list[str], rows: list[list]) -> None:
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
        self.parts.append(f"<table><tr>{cells}</tr>{body}</table>")


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def make_report(run_dir, out: Path | None = None) -> Path:
    """Write DIR/index.html and DIR/*.png; returns the page's path."""
    cfg, paths = status.open_run(run_dir)
    held, _ = status.probe_lock(paths)
    events, _ = read_events(paths.events)
    run = data.load(cfg, paths, timeline.state_words(events, held))
    page = Page()
    for add in (reputations, judges, pairs, training, evaluation, stages):
        add(run, page)
    out = Path(out) if out is not None else paths.report
    for name, png in page.images.items():
        atomic_write_bytes(out / name, png)
    atomic_write_text(out / "index.html", render(run, page))
    for name in [*page.images, "index.html"]:  # a page to share: readable by others, unlike the run's state files
        (out / name).chmod(0o644)
    log.info("report: %s (%d figures; missing: %s)", out / "index.html", len(page.images),
             "; ".join(page.missing) or "nothing")
    return out / "index.html"


def render(run: data.RunData, page: Page) -> str:
    cfg = run.cfg
    aligned = read_json(run.paths.policy).get("member") if run.paths.policy.exists() else None
    method = cfg.method + (f", aligning {aligned}" if aligned else "")
    head = [("run", str(run.paths.root)), ("method", method), ("state", run.state),
            ("members", ", ".join(run.names)),
            ("iterations", f"{cfg.tribe.iterations} x {cfg.tribe.duels_per_iteration} instructions"),
            ("executor", cfg.cluster.executor), ("made", time.strftime("%Y-%m-%d %H:%M:%S"))]
    facts = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in head)
    missing = "".join(f"<li>{html.escape(m)}</li>" for m in page.missing)
    summary = f"<p>Not in this report yet:</p><ul class='missing'>{missing}</ul>" if missing else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>SPARTA report: "
            f"{html.escape(run.paths.root.name)}</title><style>{CSS}</style></head><body>"
            f"<h1>SPARTA run report: {html.escape(run.paths.root.name)}</h1><table>{facts}</table>{summary}"
            + "\n".join(page.parts) + "<p class='note'>How to read each figure: docs/report.md.</p></body></html>\n")


def _not_yet(run: data.RunData, what: str) -> str:
    return f"{run.state}: {what}"


def reputations(run: data.RunData, page: Page) -> None:
    from . import figures

    page.section("Reputations")
    if not run.sparta:
        page.lack("reputations", f"single-model method ({run.cfg.method}): no reputations and no win matrix")
        return
    if not run.aggregated:
        page.lack("reputations", _not_yet(run, "no aggregated iteration yet (ratings move in aggregate)"))
        return
    page.image("ratings.png", figures.ratings(data.rating_trajectories(run), run.names), "reputation trajectories")
    page.text("Each member's reputation before every duel (plan order) and after each iteration; the band is "
              "± its deviation, which changes only at an iteration's end.")
    page.section("Who beat whom")
    page.image("wins.png", figures.win_matrix(data.win_matrix(run), run.names), "win matrix")
    page.text("Row member's answer chosen over column member's, counted over the preference pairs of every "
              "aggregated iteration.")


def judges(run: data.RunData, page: Page) -> None:
    from . import figures

    page.section("Judges")
    counts = {it.t: c for it in run.iterations if (c := data.judge_counts(run, it))}
    if not counts:
        page.lack("judges", _not_yet(run, "nothing judged yet"))
        return
    scores: dict = {}
    for it in run.iterations:
        if it.t in counts:
            for name, values in data.judge_scores(run, it).items():
                scores.setdefault(name, []).extend(values.tolist())
    page.image("judges.png", figures.judge_panel(counts, {k: np.array(v) for k, v in scores.items()}, run.names),
               "judge parse rate and scores")
    if not run.sparta:
        return
    per_iteration = {it.t: data.agreement(run, it) for it in run.aggregated}
    if not per_iteration:
        page.lack("judge agreement", _not_yet(run, "no aggregated iteration yet: agreement needs the weighted "
                                                    "verdicts of aggregate"))
        return
    page.image("agreement.png", figures.agreement(per_iteration, run.names), "judge agreement and reputation")
    page.text("Agreement: of the duels a judge scored (both answers), those where it preferred one answer "
              "and the other valid judges' verdict, weighted by their end-of-iteration reputations as the "
              "pairs are, preferred one too; the share where both chose the same answer. The judge itself is "
              "left out of the verdict it is compared with. 0.5 is chance.")
    rows = [[f"{n} (iter {t})", r["judged"], r["ties"], r["compared"], r["agreement"], r["reputation"]]
            for t, per in sorted(per_iteration.items()) for n, r in per.items()]
    page.table(["judge", "duels judged", "own ties", "compared", "agreement", "reputation after"], rows)


def pairs(run: data.RunData, page: Page) -> None:
    from . import figures

    page.section("Preference pairs")
    rows = data.pair_counts(run)
    if not rows:
        page.lack("preference pairs", _not_yet(run, "no pairs yet"))
        return
    page.image("pairs.png", figures.pairs(rows), "preference pairs per iteration")
    if run.sparta:
        page.table(["iteration", "duels", "pairs", "dropped: tie", "dropped: no valid judge", "mean margin"],
                   [[r["t"], r["instructions"], r["pairs"], r["ties"], r["no_judge"], r["mean_margin"]] for r in rows])
    elif any(r["previous"] is not None for r in rows):  # SPIN: iteration t trains on t-1's pairs too
        page.table(["iteration", "instructions", "pairs", "+ pairs of t-1 (trained with them)", "no pair",
                    "mean margin"],
                   [[r["t"], r["instructions"], r["pairs"], r["previous"] or 0, r["ties"], r["mean_margin"]]
                    for r in rows])
    else:
        page.table(["iteration", "instructions", "pairs", "judge pairs", "no pair", "mean margin"],
                   [[r["t"], r["instructions"], r["pairs"], r["judge_pairs"], r["ties"], r["mean_margin"]]
                    for r in rows])
    page.text("Margin: weighted score of the chosen answer minus the rejected one's (for SPIN 1 - 0, for SPPO "
              "the difference of win rates).")


def training(run: data.RunData, page: Page) -> None:
    from . import figures

    page.section("DPO training")
    curves = data.train_curves(run)
    if not curves:
        page.lack("DPO curves", _not_yet(run, "no training log yet (train/<member>/log_history.json or a "
                                              "checkpoint's trainer_state.json)"))
        return
    page.image("train.png", figures.train_curves(curves, run.names), "DPO curves per member")
    page.text("From TRL's log history: loss, rewards/margins and rewards/accuracies at each logging step.")
    lengths = data.train_lengths(run)
    if lengths:
        page.table(["iteration", "member", "pairs", "dropped: prompt >= max_length", "cut at max_length",
                    "prompts cut", "trained"], lengths)
        page.text(f"train.max_length {run.cfg.train.max_length}, train.max_prompt_length "
                  f"{run.cfg.train.max_prompt_length}: a pair whose prompt reaches max_length is dropped; the "
                  "longer answer of a pair past it is cut at its end; a prompt past max_prompt_length keeps its end.")


def evaluation(run: data.RunData, page: Page) -> None:
    from . import figures

    page.section("Evaluation")
    if not run.cfg.eval.tasks:
        page.lack("evaluation", "eval.tasks is empty: this run evaluates nothing (sparta-hpc eval RUN adds it)")
        return
    scores, head = data.eval_scores(run.paths)
    if not scores:
        page.lack("evaluation", _not_yet(run, "no evaluation point scored yet"))
        return
    page.image("eval.png", figures.eval_scores(scores, head, run.names), "evaluation scores per task")
    rows = []
    for r in head:
        init, best = r["best_init"], r["sparta"]
        rows.append([r["task"], f"{r['select']} / {r['report']}",
                     f"{init[2]['score']:.3f} ({init[0]})" if init and init[2] else "-",
                     f"{best[2]['score']:.3f} ({best[0]} @ {point_label(best[1])})" if best and best[2] else "-",
                     f"{r['change']:+.1%}" if r["change"] is not None else "-"])
    page.table(["task", "selected on / reported on", "BEST INIT", "selected model", "change"], rows)
    if all(p < 0 for p in scores):
        page.lack("selected model", _not_yet(run, "only the initial evaluation so far: no trained model to select"))


def _hours(h: float) -> str:
    return "0" if h == 0 else f"{h:.3g}"  # a tiny run's 0.00042 CPU-hours stay visible


def stages(run: data.RunData, page: Page) -> None:
    from . import figures

    page.section("Stage timeline and cost")
    attempts = run.timeline.attempts
    if not attempts:
        page.lack("stage timeline", _not_yet(run, "no task submitted yet"))
        return
    page.image("timeline.png", figures.timeline(attempts, time.time()), "stage timeline")
    rows = data.cost_table(run)
    page.table(["stage", "CPUs x GPUs per task", "attempts", "failed", "task time", "CPU-hours", "GPU-hours"],
               [[r["stage"], f"{r['cpus']} x {r['gpus']}", r["attempts"], r["failed"], duration(r["seconds"]),
                 _hours(r["cpu_hours"]), _hours(r["gpu_hours"])] for r in rows]
               + [["all", "", sum(r["attempts"] for r in rows), sum(r["failed"] for r in rows),
                   duration(sum(r["seconds"] for r in rows)), _hours(sum(r["cpu_hours"] for r in rows)),
                   _hours(sum(r["gpu_hours"] for r in rows))]])
    where = ("Slurm: cpus_per_task x tasks_per_node x nodes and gpus_per_node x nodes of cluster.<stage>"
             if run.cfg.cluster.executor == "slurm" else
             f"{run.cfg.cluster.executor} executor: cluster.local_threads ({run.cfg.cluster.local_threads}) CPUs, "
             "no GPU")
    page.text(f"Hours = task wall time x what the task holds ({where}, from the run's config.yaml now). A done "
              "task counts its own run time; a failed or lost attempt the span from submission to its end "
              "(includes queue waits); tasks in flight are not counted yet.")
