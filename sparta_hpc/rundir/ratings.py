"""RATINGS.json: every member's rating, deviation and history, by name.

    {"lima": {"rating": 100.0, "deviation": 0.5, "history": []}, ...}

The same file format is the pipeline's `ratings/iter_NNNN.json` and the input
of `sparta-hpc replay`. Errors are RatingsError (a file of the run); replay raises its
own ReplayInputError for the user's copy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..algorithm.reputation import Ratings
from ..errors import RatingsError, SpartaError, at
from .files import read_json
from .paths import RunPaths


def number(value, where: str, lo: float | None = None, hi: float | None = None,
           error: type[SpartaError] = RatingsError) -> float:
    """`value` as a finite float within lo..hi; else `error` naming `where` (replay's duels raise their own)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise error(f"{where}: expected a number, got {json.dumps(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise error(f"{where}: {value} is outside {lo:g}..{hi:g}")
    return float(value)


def load_ratings(path: Path) -> tuple[list[str], Ratings]:
    """Names and ratings of a ratings file; RatingsError naming the file, member and field."""
    try:
        data = read_json(path)
    except (OSError, json.JSONDecodeError) as err:
        raise RatingsError(f"{path}: cannot read ratings: {err}") from err
    if not isinstance(data, dict) or len(data) < 2:
        raise RatingsError(f"{path}: expected an object with one entry per member (at least 2)")
    names = list(data)
    rating, deviation, history = [], [], []
    for name in names:
        entry = data[name]
        member = f"{path}: member {name!r}"
        if not isinstance(entry, dict):
            raise RatingsError(f"{member}: expected {{\"rating\": ..., \"deviation\": ..., \"history\": [...]}}")
        for key in ("rating", "deviation"):
            if key not in entry:
                raise RatingsError(f"{at(member, field=key)} is missing")
        rating.append(number(entry["rating"], at(member, field="rating")))
        deviation.append(number(entry["deviation"], at(member, field="deviation")))
        for key, value in (("rating", rating[-1]), ("deviation", deviation[-1])):
            if value <= 0:
                raise RatingsError(f"{at(member, field=key)}: must be > 0, got {value}")
        hist = entry.get("history", [])
        if not isinstance(hist, list):
            raise RatingsError(f"{at(member, field='history')}: expected a list of numbers")
        history.append([number(h, at(member, field=f"history[{i}]")) for i, h in enumerate(hist)])
    return names, Ratings(np.array(rating), np.array(deviation), history)


def ratings_to_json(names: list[str], ratings: Ratings) -> dict:
    return {
        name: {"rating": float(ratings.rating[i]), "deviation": float(ratings.deviation[i]),
               "history": [float(h) for h in ratings.history[i]]}
        for i, name in enumerate(names)
    }


def earlier_ratings(paths: RunPaths, iteration: int, names: list[str]) -> list[np.ndarray]:
    """Ratings at the end of iterations 0..iteration-1, in `names` order (reputation.authors_static reads them).

    The end of iteration k is the start of k+1: RUN/ratings/iter_{k+1}.json.
    """
    after = []
    for k in range(iteration):
        path = paths.ratings(k + 1)
        if not path.exists():
            raise RatingsError(f"{path}: missing; reputation.authors_static at iteration {iteration} reads "
                               "the ratings at the end of every earlier iteration")
        file_names, ratings = load_ratings(path)
        index = {name: i for i, name in enumerate(file_names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise RatingsError(f"{path}: member {missing[0]!r} is missing (a run with other members?)")
        after.append(ratings.rating[[index[n] for n in names]])
    return after
