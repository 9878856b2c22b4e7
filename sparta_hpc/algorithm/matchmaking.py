"""Instruction drawing, match-making (SPEC 1.1 and 1.2) and judge panels (beyond the paper).

All are deterministic functions of (seed, iteration): each draws from its own
numpy stream, so adding a stream later never shifts the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Stream ids mixed into the seed; never renumber them (old runs replay from them).
_STREAM_INSTRUCTIONS = 1
_STREAM_MATCHES = 2
_STREAM_PANELS = 3

PANEL_SAMPLINGS = ("uniform", "reputation")


def rng_for(seed: int, iteration: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, iteration, stream]))


@dataclass(frozen=True)
class MatchConfig:
    """alpha: chance of a uniformly random opponent; otherwise one of the k closest."""

    alpha: float = 0.6
    k: int = 5

    def validate(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"matchmaking.alpha must be in [0, 1], got {self.alpha}")
        if self.k < 1:
            raise ValueError(f"matchmaking.k must be >= 1, got {self.k}")


def draw_instructions(
    n_available: int, n: int, used: np.ndarray, seed: int, iteration: int
) -> np.ndarray:
    """Indices of the n instructions of this iteration, unused ones first.

    `used` is a boolean mask over the instruction set (True: drawn in an earlier
    iteration). Unused instructions are taken first, in random order; only once
    they run out are used ones drawn again.
    """
    if n < 0 or n_available < 1:
        raise ValueError(f"cannot draw {n} of {n_available} instructions")
    used = np.asarray(used, dtype=bool)
    if used.shape != (n_available,):
        raise ValueError(f"used mask has shape {used.shape}, expected ({n_available},)")
    rng = rng_for(seed, iteration, _STREAM_INSTRUCTIONS)
    fresh = rng.permutation(np.flatnonzero(~used))
    stale = rng.permutation(np.flatnonzero(used))
    order = np.concatenate([fresh, stale])
    # More instructions asked than exist: cycle through the set again.
    reps = -(-n // n_available) if n else 0
    return np.tile(order, max(reps, 1))[:n].astype(np.int64)


def closest_members(ratings: np.ndarray, member: int, k: int) -> np.ndarray:
    """The k other members whose rating is closest to `member`'s (ties: lower index)."""
    others = np.delete(np.arange(len(ratings)), member)
    gaps = np.abs(ratings[others] - ratings[member])
    return others[np.argsort(gaps, kind="stable")[:k]]


def make_duels(
    ratings: np.ndarray, n_duels: int, cfg: MatchConfig, seed: int, iteration: int
) -> np.ndarray:
    """Pairs (a, b) of member indices, one per instruction slot, shape (n_duels, 2).

    Slots are dealt in rounds of M: each round shuffles the members and the i-th
    member of the shuffle is the first duelist of the round's i-th slot. The
    N mod M slots left over get a uniformly random first duelist.
    """
    ratings = np.asarray(ratings, dtype=float)
    m = len(ratings)
    if m < 2:
        raise ValueError(f"match-making needs at least 2 members, got {m}")
    rng = rng_for(seed, iteration, _STREAM_MATCHES)
    rounds, left = divmod(n_duels, m)
    first = [rng.permutation(m) for _ in range(rounds)]
    first.append(rng.integers(0, m, size=left))
    duels = np.empty((n_duels, 2), dtype=np.int64)
    duels[:, 0] = np.concatenate(first)
    k = min(cfg.k, m - 1)
    for slot, a in enumerate(duels[:, 0]):
        if rng.random() < cfg.alpha:
            pool = np.delete(np.arange(m), a)
        else:
            pool = closest_members(ratings, int(a), k)
        duels[slot, 1] = pool[rng.integers(len(pool))]
    return duels


def draw_panels(duels: np.ndarray, n_members: int, panel_size: int, sampling: str, weights: np.ndarray | None,
                seed: int, iteration: int) -> np.ndarray:
    """(n, panel_size) judges per duel, ascending: panel_size of the members not in the duel, without replacement.

    uniform: every panel_size-subset equally likely. reputation: drawn one by one with probability
    proportional to `weights` (the ratings at the start of the iteration) among those not drawn yet,
    as numpy's choice(p=..., replace=False) does. Both as one vectorised race (Efraimidis-Spirakis):
    member j's key is Exp(1) / w_j and the panel_size smallest keys win. A key is drawn for every
    (duel, member), duelists included, so duel c's panel reads only row c of the stream: it depends on
    (seed, iteration, c, its duelists, the weights), never on the other duels or their number.
    """
    duels = np.asarray(duels, dtype=np.int64).reshape(-1, 2)
    if not 1 <= panel_size <= n_members - 2:
        raise ValueError(f"a judge panel holds 1..{n_members - 2} of the {n_members - 2} members not in a "
                         f"duel, got {panel_size}")
    if sampling not in PANEL_SAMPLINGS:
        raise ValueError(f"panel sampling must be one of {PANEL_SAMPLINGS}, got {sampling!r}")
    keys = rng_for(seed, iteration, _STREAM_PANELS).standard_exponential((len(duels), n_members))
    if sampling == "reputation":
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (n_members,) or not (weights > 0).all():
            raise ValueError("reputation-weighted panels need one weight > 0 per member")
        keys /= weights[None, :]
    rows = np.arange(len(duels))
    keys[rows, duels[:, 0]] = np.inf  # never a judge of its own duel
    keys[rows, duels[:, 1]] = np.inf
    panel = np.argpartition(keys, panel_size - 1, axis=1)[:, :panel_size]
    return np.sort(panel, axis=1)
