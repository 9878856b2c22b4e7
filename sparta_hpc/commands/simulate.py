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

from dataclasses import dataclass, field, replace

import numpy as np

from ..algorithm.matchmaking import PANEL_SAMPLINGS, MatchConfig, draw_panels, make_duels, rng_for
from ..algorithm.reputation import VARIANTS, Ratings, ReputationConfig
from ..algorithm.variants import run_iteration

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
