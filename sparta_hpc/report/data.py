"""What `sparta-hpc report` reads from a run directory, as plain numbers (no plotting here).

Everything is optional: a run stopped after judge has plans and judge shards but no archive
with ratings, a single-model baseline has no reputations, a run without eval.tasks has no
scores. Each reader returns what exists; the page says what does not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ..config.schema import Config
from ..rundir.files import read_json
from ..rundir.paths import RunPaths
from ..rundir.plan import Plan
from . import timeline


@dataclass
class Iteration:
    t: int
    archive: dict | None = None  # read_archive(); None before gather
    summary: dict | None = None  # summary.json (aggregate)
    pairs: list[dict] = field(default_factory=list)  # pairs.jsonl
    aggregated: bool = False  # the archive holds ratings_after, weighted scores and pairs


@dataclass
class RunData:
    cfg: Config
    paths: RunPaths
    names: list[str]
    iterations: list[Iteration]  # every iteration with at least a plan
    timeline: timeline.Timeline
    state: str  # the run's state in words (finished, stopped after judge, running ...)

    @property
    def sparta(self) -> bool:
        return self.cfg.method == "sparta"

    @property
    def aggregated(self) -> list[Iteration]:
        return [it for it in self.iterations if it.aggregated]


def load(cfg: Config, paths: RunPaths, state: str) -> RunData:
    from ..rundir.archive import read_archive  # h5py: only the report needs it

    iterations = []
    for t in range(cfg.tribe.iterations):
        if not paths.plan(t).exists():
            break
        it = Iteration(t)
        if paths.is_done(t, "gather") and paths.archive(t).exists():
            it.archive = read_archive(paths.archive(t))
            it.aggregated = paths.is_done(t, "aggregate")
        if it.aggregated and paths.summary(t).exists():
            it.summary = read_json(paths.summary(t))
        if it.aggregated and paths.pairs(t).exists():
            it.pairs = [json.loads(x) for x in paths.pairs(t).read_text().splitlines() if x.strip()]
        iterations.append(it)
    return RunData(cfg, paths, cfg.member_names(), iterations, timeline.load(paths.events), state)


# ---------------------------------------------------------------- reputations

def rating_trajectories(run: RunData) -> list[dict]:
    """Per aggregated iteration: x (global duel positions, n+1), rating and deviation (n+1, M):
    the reputations before each duel (rebuilt from the archived changes), then after the iteration."""
    from ..algorithm.reputation import ratings_before_each_duel

    out, offset = [], 0
    for it in run.aggregated:
        a = it.archive
        duels = np.stack([a["duels/a"], a["duels/b"]], axis=1)
        before = ratings_before_each_duel(a["ratings_before/rating"], duels, a["weighted_scores/rating_change"])
        rating = np.vstack([before, a["ratings_after/rating"][None, :]])
        deviation = np.vstack([np.tile(a["ratings_before/deviation"], (len(duels), 1)),
                               a["ratings_after/deviation"][None, :]])  # sigma moves at the iteration's end only
        out.append({"t": it.t, "x": offset + np.arange(len(duels) + 1), "rating": rating, "deviation": deviation})
        offset += len(duels)
    return out


def win_matrix(run: RunData) -> np.ndarray:
    """(M, M): wins[i, j] = preference pairs in which member i's answer was chosen over member j's."""
    m = len(run.names)
    wins = np.zeros((m, m), dtype=int)
    for it in run.aggregated:
        np.add.at(wins, (it.archive["pairs/chosen"], it.archive["pairs/rejected"]), 1)
    return wins


# ---------------------------------------------------------------- judges

def judge_counts(run: RunData, it: Iteration) -> dict[str, dict] | None:
    """{judge: {judgments, unparsed}} of an iteration: the archive's report, else the judge shards
    (a run stopped after judge), None where nothing was judged yet."""
    if it.archive is not None:
        return json.loads(it.archive["attrs"]["judge_report"])
    shards = judge_shards(run, it.t)
    if not shards:
        return None
    report: dict[str, dict] = {}
    for j in shards:
        r = report.setdefault(j["judge"], {"judgments": 0, "unparsed": 0})
        r["judgments"] += 1
        r["unparsed"] += j["parsed"] is None
    return report


def judge_shards(run: RunData, t: int) -> list[dict]:
    """The judgments of every judge shard written so far (iteration t, before its archive exists)."""
    out = []
    for g, k in Plan.read(run.paths.plan(t)).tasks("judge"):
        path = run.paths.shard(t, "judge", g, k)
        if path.exists():
            out += read_json(path)["judgments"]
    return out


def judge_scores(run: RunData, it: Iteration) -> dict[str, np.ndarray]:
    """Per judge, the scores it gave (what aggregation uses: the mean over rounds of judge.score's kind)."""
    if it.archive is not None:
        score = it.archive["judgments/score"]  # (n, M, S)
        return {n: score[:, j][np.isfinite(score[:, j])] for j, n in enumerate(run.names)}
    kind = "expected" if run.cfg.judge.score == "expected" else "parsed"
    rounds: dict[tuple, list[float]] = {}
    for j in judge_shards(run, it.t):
        if j.get(kind) is not None:
            rounds.setdefault((j["judge"], j["duel"], j["side"]), []).append(j[kind])
    out: dict[str, list[float]] = {}
    for (judge, _, _), values in rounds.items():
        out.setdefault(judge, []).append(float(np.mean(values)))
    return {n: np.array(v) for n, v in out.items()}


def agreement(run: RunData, it: Iteration) -> dict[str, dict]:
    """Per judge, how often its own preference (a's score vs b's) matches the leave-one-out consensus:
    the other valid judges' scores weighted as the pairs are weighted (end-of-iteration reputations, or
    uniform under reputation.weighting uniform). Duels where the judge, or the consensus, is a tie or
    missing are not compared."""
    from ..algorithm.reputation import judge_weights, weighted_scores

    a = it.archive
    scores = a["judgments/score"]  # (n, M, 2)
    weights = judge_weights(a["ratings_after/rating"], run.cfg.reputation)
    out = {}
    for j, name in enumerate(run.names):
        others = scores.copy()
        others[:, j] = np.nan
        ws = weighted_scores(others, weights)
        consensus = np.sign(ws[:, 0] - ws[:, 1])  # +1: a ahead, NaN: no other valid judge
        own = np.sign(scores[:, j, 0] - scores[:, j, 1])
        judged = np.isfinite(own)
        compared = judged & np.isfinite(consensus) & (own != 0) & (consensus != 0)
        agree = int((own[compared] == consensus[compared]).sum())
        out[name] = {"judged": int(judged.sum()), "ties": int((own[judged] == 0).sum()),
                     "compared": int(compared.sum()), "agree": agree,
                     "agreement": agree / compared.sum() if compared.sum() else None,
                     "reputation": float(a["ratings_after/rating"][j])}
    return out


# ---------------------------------------------------------------- pairs, training, evaluation

def pair_counts(run: RunData) -> list[dict]:
    """Per aggregated iteration: pairs, what was dropped and why, and the mean score margin."""
    rows = []
    for it in run.aggregated:
        s = it.summary or {}
        margins = [p["score_chosen"] - p["score_rejected"] for p in it.pairs if p.get("kind", "response") == "response"]
        row = {"t": it.t, "pairs": sum(p.get("kind", "response") == "response" for p in it.pairs),
               "judge_pairs": sum(p.get("kind") == "judge" for p in it.pairs),
               "mean_margin": float(np.mean(margins)) if margins else None}
        if run.sparta:
            duels, judged = s.get("duels", 0), s.get("duels_with_judge", 0)
            row.update(instructions=duels, no_judge=duels - judged, ties=judged - row["pairs"])
        else:  # best vs worst: an instruction without two different scores gives no pair
            row.update(instructions=s.get("instructions", 0), no_judge=None, ties=s.get("dropped", 0),
                       previous=s.get("pairs_previous"))  # SPIN: iteration t-1's pairs, trained with these
        rows.append(row)
    return rows


def train_log(paths: RunPaths, t: int, member: str) -> list[dict] | None:
    """TRL's log history of a member's DPO: train/<member>/log_history.json, else the last complete
    checkpoint's trainer_state.json (a job still running or killed before it wrote the file)."""
    path = paths.train_log(t, member)
    if path.exists():
        return read_json(path)
    points = [p for p in paths.train_dir(t, member).glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    if not points:
        return None
    last = max(points, key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
    return read_json(last / "trainer_state.json").get("log_history")


def train_curves(run: RunData) -> dict[str, list[dict]]:
    """{member: [{t, step, loss, margin, accuracy}, ...]} over every iteration that has a log."""
    out: dict[str, list[dict]] = {}
    for t in range(run.cfg.tribe.iterations):
        for name in run.names:
            for h in train_log(run.paths, t, name) or []:
                if "loss" in h:  # a training step (the final record holds train_runtime etc.)
                    out.setdefault(name, []).append({
                        "t": t, "step": h.get("step", 0), "loss": h["loss"],
                        "margin": h.get("rewards/margins"), "accuracy": h.get("rewards/accuracies")})
    return out


def train_lengths(run: RunData) -> list[list]:
    """Per trained member and iteration, what the length limits did to its pairs (the train marker's
    counts, stages/dpo_trainer.py): [t, member, given, dropped, cut, prompts cut, trained]. Markers
    written before these counts existed give no row."""
    rows = []
    for t in range(run.cfg.tribe.iterations):
        for name in run.names:
            marker = run.paths.marker(t, "train", name)
            if not marker.exists():
                continue
            m = read_json(marker)
            if isinstance(m, dict) and "pairs_trained" in m:
                rows.append([t, name, m["pairs_given"], m["pairs_dropped_for_length"], m["pairs_cut_at_max_length"],
                             m["prompts_cut"], m["pairs_trained"]])
    return rows


def eval_scores(paths: RunPaths) -> tuple[dict, list[dict]]:
    """(scores {point: {member: {task: {split: figures}}}}, eval.table.headline rows)."""
    from ..eval.table import headline
    from ..eval.table import load as load_scores

    scores = load_scores(paths)
    return scores, headline(scores) if scores else []


# ---------------------------------------------------------------- cost

def stage_resources(cfg: Config, stage: str) -> tuple[int, int]:
    """(CPUs, GPUs) one task of `stage` holds: Slurm's request, or the local executor's threads."""
    if cfg.cluster.executor != "slurm":  # local and debug: this machine, torch threads per task
        return cfg.cluster.local_threads, 0
    r = getattr(cfg.cluster, stage)
    return r.cpus_per_task * r.tasks_per_node * r.nodes, r.gpus_per_node * r.nodes


def cost_table(run: RunData) -> list[dict]:
    """Per stage: tasks, attempts, wall time, CPU-hours and GPU-hours. A done task counts its own wall
    time (task_done's seconds); a failed or lost one the span from submission to its end, an upper
    bound that includes any queue wait; tasks in flight are not counted yet."""
    rows: dict[str, dict] = {}
    for a in run.timeline.attempts:
        if a.state == "done" and a.seconds is not None:
            seconds = a.seconds
        elif a.state in ("failed", "lost") and a.end is not None:
            seconds = a.end - a.start
        else:
            continue
        cpus, gpus = stage_resources(run.cfg, a.stage)
        r = rows.setdefault(a.stage, {"stage": a.stage, "cpus": cpus, "gpus": gpus, "attempts": 0, "failed": 0,
                                      "seconds": 0.0, "cpu_hours": 0.0, "gpu_hours": 0.0})
        r["attempts"] += 1
        r["failed"] += a.state != "done"
        r["seconds"] += seconds
        r["cpu_hours"] += seconds * cpus / 3600
        r["gpu_hours"] += seconds * gpus / 3600
    return [rows[s] for s in timeline.STAGE_ORDER if s in rows]
