"""A synthetic tribe for tuning the reputation system without a GPU (`sparta-hpc simulate`).

Each member has a latent quality q. On instruction i (difficulty d_i) member m
writes an answer of latent quality x = q_m - d_i + noise. Judge j scores it as
round(x + noise_j) clipped to 1..10, where noise_j grows as q_j falls, and a
weak judge also fails to give a score more often. Qualities stay fixed: the
simulation measures how well the reputation system *finds* the ranking and
how clean the preference pairs are, not how much DPO would improve anyone.

All variants of one simulation see the same answers and the same judge noise
(common random numbers), so differences between variants come from weighting,
match-making, the reputation variant (spec or authors) and the judge panel alone.
With `panel_size` each duel keeps only its panel's scores (judge.panel_size in
a run); `panel_sweep` compares panel sizes and samplings.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field, replace

import numpy as np

from ..algorithm.matchmaking import PANEL_SAMPLINGS, MatchConfig, draw_panels, make_duels, rng_for
from ..algorithm.reputation import VARIANTS, Ratings, ReputationConfig
from ..algorithm.variants import run_iteration
from ..config.overrides import apply_overrides
from ..errors import ConfigError

log = logging.getLogger("sparta_hpc")

_STREAM_WORLD = 101


@dataclass(frozen=True)
class SimulationConfig:
    members: int = 10
    iterations: int = 8
    duels: int = 1000
    seed: int = 42
    quality_low: float = 4.0
    quality_high: float = 7.0
    answer_noise: float = 1.0  # sd of an answer's quality around the member's
    judge_noise_best: float = 0.5  # sd of the best judge's scoring noise
    judge_noise_worst: float = 4.0  # sd of the worst judge's
    missing_worst: float = 0.3  # chance that the worst judge gives no score
    panel_size: int | None = None  # judges per duel, drawn from the M - 2 others; None: all of them
    panel_sampling: str = "uniform"  # or "reputation" (judge.panel_sampling)
    reputation: ReputationConfig = field(default_factory=ReputationConfig)
    matchmaking: MatchConfig = field(default_factory=MatchConfig)


@dataclass(frozen=True)
class IterationFigures:
    iteration: int
    kendall_tau: float  # reputation (after the iteration) vs. true quality
    pair_accuracy: float  # share of pairs whose chosen answer is truly better
    pairs: int


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (ties counted as in scipy.stats.kendalltau)."""
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    denom = np.sqrt(np.count_nonzero(dx) * np.count_nonzero(dy))
    return float((dx * dy).sum() / denom) if denom else 0.0


def _world(cfg: SimulationConfig, quality: np.ndarray, iteration: int):
    """Answer qualities (M, N) and judge scores (judge, answerer, N), NaN where missing."""
    m, n = cfg.members, cfg.duels
    rng = rng_for(cfg.seed, iteration, _STREAM_WORLD)
    difficulty = rng.normal(0.0, 1.0, size=n)
    answers = quality[:, None] - difficulty[None, :] + rng.normal(0.0, cfg.answer_noise, size=(m, n))
    spread = cfg.quality_high - cfg.quality_low
    weakness = (cfg.quality_high - quality) / spread if spread else np.zeros(m)
    noise_sd = cfg.judge_noise_best + (cfg.judge_noise_worst - cfg.judge_noise_best) * weakness
    noise = rng.normal(size=(m, m, n)) * noise_sd[:, None, None]
    scores = np.clip(np.rint(answers[None, :, :] + noise), 1, 10)
    missing = rng.random(size=(m, m, n)) < (cfg.missing_worst * weakness)[:, None, None]
    scores[missing] = np.nan
    return answers, scores


def simulate(cfg: SimulationConfig) -> list[IterationFigures]:
    """Run the tribe for cfg.iterations; one IterationFigures per iteration."""
    m = cfg.members
    quality = rng_for(cfg.seed, 0, _STREAM_WORLD - 1).permutation(
        np.linspace(cfg.quality_low, cfg.quality_high, m))
    ratings = Ratings.initial(m, cfg.reputation)
    after: list[np.ndarray] = []  # ratings at the end of each iteration (reputation.authors_static reads them)
    figures = []
    for t in range(cfg.iterations):
        answers, judge_scores = _world(cfg, quality, t)
        duels = make_duels(ratings.rating, cfg.duels, cfg.matchmaking, cfg.seed, t)
        slot = np.arange(cfg.duels)
        a, b = duels[:, 0], duels[:, 1]
        # scores[c, j] = judge j's scores of a's and b's answers to instruction c
        scores = np.stack([judge_scores[:, a, slot].T, judge_scores[:, b, slot].T], axis=2)
        scores[slot, a] = np.nan
        scores[slot, b] = np.nan
        if cfg.panel_size is not None:  # as the plan does: a judge outside the panel gives no score
            panels = draw_panels(duels, m, cfg.panel_size, cfg.panel_sampling, ratings.rating, cfg.seed, t)
            outside = np.ones((cfg.duels, m), dtype=bool)
            outside[slot[:, None], panels] = False
            scores[outside] = np.nan
        result = run_iteration(ratings, duels, scores, cfg.reputation, iteration=t, ratings_after=after)
        ratings = result.ratings
        after.append(ratings.rating.copy())
        chosen, rejected = result.pairs[:, 0], result.pairs[:, 1]
        pair_slots = result.pair_duels
        correct = answers[chosen, pair_slots] > answers[rejected, pair_slots]
        figures.append(IterationFigures(
            t, kendall_tau(ratings.rating, quality),
            float(correct.mean()) if len(correct) else float("nan"), len(correct)))
    return figures


def variants(cfg: SimulationConfig) -> dict[str, SimulationConfig]:
    """The configured setting next to the paper's ablations: uniform weights and alpha=1."""
    alpha = cfg.matchmaking.alpha
    out = {}
    for weighting in ("reputation", "uniform"):
        for a in dict.fromkeys((alpha, 1.0)):
            name = f"{weighting}, alpha={a:g}"
            out[name] = replace(cfg, reputation=replace(cfg.reputation, weighting=weighting),
                                matchmaking=replace(cfg.matchmaking, alpha=a))
    return out


def with_variant(cfg: SimulationConfig, variant: str) -> SimulationConfig:
    """cfg under reputation variant `variant`; authors_static stays on only where it applies (authors)."""
    static = cfg.reputation.authors_static and variant == "authors"
    return replace(cfg, reputation=replace(cfg.reputation, variant=variant, authors_static=static))


def variant_order(cfg: SimulationConfig) -> list[str]:
    """Both reputation variants, the configured one first; only spec with a judge panel (check_panel)."""
    if cfg.panel_size is not None:
        return ["spec"]
    return sorted(VARIANTS, key=lambda v: v != cfg.reputation.variant)


@dataclass(frozen=True)
class PanelFigures:
    panel_size: int | None  # None: every member outside the duel
    sampling: str
    judgments: int  # scores asked for per iteration: duels x judges x 2 answers
    kendall_tau: float  # after the last iteration
    pair_accuracy: float  # over every iteration's pairs


def check_panel(cfg: SimulationConfig, size: int | None) -> None:
    """ValueError unless `size` judges per duel (None: all) fit cfg's tribe and reputation variant."""
    if size is None:
        return
    if not 1 <= size <= cfg.members - 2:
        raise ValueError(f"panel size {size}: must be in 1..{cfg.members - 2} (the members outside a duel of "
                         f"{cfg.members}), or 'all'")
    if cfg.panel_sampling not in PANEL_SAMPLINGS:
        raise ValueError(f"panel_sampling must be one of {PANEL_SAMPLINGS}, got {cfg.panel_sampling!r}")
    if cfg.reputation.variant == "authors":
        raise ValueError("judge panels need reputation.variant=spec: the authors' code counts every member "
                         "outside the panel as a 5-5 judge")


def panel_sweep(cfg: SimulationConfig, sizes: list[int | None]) -> list[PanelFigures]:
    """cfg under each judge panel size (None: all) and each sampling, on the same simulated world."""
    out = []
    for size in sizes:
        for sampling in PANEL_SAMPLINGS if size is not None else ("uniform",):  # all: nothing is sampled
            figures = simulate(replace(cfg, panel_size=size, panel_sampling=sampling))
            pairs = sum(f.pairs for f in figures)
            correct = sum(f.pair_accuracy * f.pairs for f in figures if f.pairs)
            judges = cfg.members - 2 if size is None else size
            out.append(PanelFigures(size, sampling, cfg.duels * judges * 2, figures[-1].kendall_tau,
                                    correct / pairs if pairs else float("nan")))
    return out


def command(args: argparse.Namespace) -> int:
    """`sparta-hpc simulate`: the variants table (or with --panel-sizes the panel sweep) on stdout;
    2 for settings that are refused."""
    cfg = SimulationConfig(members=args.members, iterations=args.iterations, duels=args.duels, seed=args.seed)
    try:
        cfg = apply_overrides(cfg, args.overrides)
        cfg.reputation.validate()
        cfg.matchmaking.validate()
        if cfg.members < 3:
            raise ConfigError(f"members must be >= 3, got {cfg.members}")
        sizes = panel_sizes(args.panel_sizes) if args.panel_sizes else []
        for size in sizes + [cfg.panel_size]:
            check_panel(cfg, size)
    except (ConfigError, ValueError) as err:
        log.error("simulate: %s", err)
        return 2
    if sizes:
        print_panel_sweep(cfg, sizes)
    else:
        print_variants(cfg)
    return 0


def print_variants(cfg: SimulationConfig) -> None:
    """Every setting (column) under both reputation variants (rows), on the same simulated judgments."""
    settings = variants(cfg)
    kinds = variant_order(cfg)
    results = {(name, kind): simulate(with_variant(v, kind)) for name, v in settings.items() for kind in kinds}
    labels = {kind: kind + ("+static" if kind == "authors" and cfg.reputation.authors_static else "")
              for kind in kinds}
    print(f"synthetic tribe: {cfg.members} members, {cfg.iterations} iterations x {cfg.duels} duels, "
          f"seed {cfg.seed}" + (" (reputation.frozen: ratings never change)" if cfg.reputation.frozen else "")
          + (f"; judge panels of {cfg.panel_size} ({cfg.panel_sampling}), spec only" if cfg.panel_size else ""))
    print("tau = Kendall tau of reputation vs. true quality; acc = share of pairs whose chosen answer is better")
    print("spec = SPEC 1.6; authors = the authors' rating code (docs/algorithm.md, Variants)")
    width = max(len(n) for n in settings)
    lw = max(len(label) for label in labels.values())
    print(f"iter  {'variant':{lw}}  " + "  ".join(f"{n:>{width}}" for n in settings))
    print(f"      {'':{lw}}  " + "  ".join(f"{'tau    acc  pairs':>{width}}" for _ in settings))
    for t in range(cfg.iterations):
        for i, kind in enumerate(kinds):
            cells = [f"{r[t].kendall_tau:+.3f}  {r[t].pair_accuracy:.3f} {r[t].pairs:5d}"
                     for r in (results[name, kind] for name in settings)]
            head = f"{t:4d}" if i == 0 else "    "
            print(f"{head}  {labels[kind]:{lw}}  " + "  ".join(f"{c:>{width}}" for c in cells))


def panel_sizes(text: str) -> list[int | None]:
    """'1,3,all' -> [1, 3, None]."""
    try:
        return [None if s.strip() == "all" else int(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(f"--panel-sizes: expected judges per duel and/or 'all', comma-separated, got {text!r}")


def print_panel_sweep(cfg: SimulationConfig, sizes: list[int | None]) -> None:
    """Per judge panel size: judgments asked for, Kendall tau and pair accuracy, for both samplings."""
    rows = panel_sweep(cfg, sizes)
    print(f"synthetic tribe: {cfg.members} members, {cfg.iterations} iterations x {cfg.duels} duels, seed "
          f"{cfg.seed}; weighting {cfg.reputation.weighting}, alpha={cfg.matchmaking.alpha:g}, variant spec")
    print(f"judge panel: k of the {cfg.members - 2} members outside each duel (all: every one, nothing sampled)")
    print("judgments = scores asked for per iteration (duels x k x 2 answers); tau = Kendall tau of reputation "
          "vs. true quality after the last iteration; acc = share of all iterations' pairs whose chosen answer "
          "is better")
    print(f"{'k':>5}  {'judgments':>9}  {'uniform: tau':>12}  {'acc':>5}  {'reputation: tau':>15}  {'acc':>5}")
    for size in sizes:
        got = {r.sampling: r for r in rows if r.panel_size == size}
        uni, rep = got["uniform"], got.get("reputation", got["uniform"])
        print(f"{'all' if size is None else size:>5}  {uni.judgments:>9,}  {uni.kendall_tau:>+12.3f}  "
              f"{uni.pair_accuracy:>5.3f}  {rep.kendall_tau:>+15.3f}  {rep.pair_accuracy:>5.3f}")
