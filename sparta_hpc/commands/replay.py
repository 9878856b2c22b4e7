"""`sparta-hpc replay`: re-run the reputation system on recorded judgments.

DUELS.jsonl holds one duel per line in plan order,
    {"a": "lima", "b": "cot", "scores": {"oasst1": [7, 5], "flan_v2": [null, 6.5]}}
(per judge: its score of a's and of b's response, averaged over rounds, null
where missing); RATINGS.json the ratings before the iteration,
    {"lima": {"rating": 100.0, "deviation": 0.5, "history": []}, ...}.
The output holds the ratings after the iteration, the preference pairs and the
weighted scores. Every input error names the file, line and field; nothing is
written unless the whole input is valid.

`--set reputation.variant=authors` replays with the authors' rating code;
`reputation.authors_static` also needs `--iteration T --run-dir RUN`, whose
RUN/ratings/iter_NNNN.json give the ratings at the end of the earlier iterations.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..algorithm.reputation import IterationResult, ReputationConfig
from ..algorithm.variants import run_iteration
from ..config.overrides import apply_overrides
from ..errors import ConfigError, RatingsError, ReplayInputError, at
from ..inputs.instructions import iter_lines
from ..rundir.files import atomic_write_text
from ..rundir.paths import RunPaths
from ..rundir.ratings import earlier_ratings, load_ratings, number, ratings_to_json

log = logging.getLogger("sparta_hpc")


@dataclass(frozen=True)
class ReplayConfig:
    reputation: ReputationConfig = field(default_factory=ReputationConfig)


def load_duels(path: Path, names: list[str], duelists_judge: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(duels (n, 2), scores (n, M, 2)) from DUELS.jsonl, validated line by line."""
    index = {name: i for i, name in enumerate(names)}
    duels, scores = [], []
    try:
        rows = list(iter_lines(Path(path), ReplayInputError))
    except OSError as err:
        raise ReplayInputError(f"{path}: cannot read duels: {err}") from err
    for where, row in rows:
        if not isinstance(row, dict):
            raise ReplayInputError(f"{where}: expected an object with fields 'a', 'b', 'scores'")
        for key in ("a", "b", "scores"):
            if key not in row:
                raise ReplayInputError(f"{at(where, field=key)} is missing")
        pair = []
        for key in ("a", "b"):
            if row[key] not in index:
                raise ReplayInputError(f"{at(where, field=key)}: unknown member {row[key]!r} (not in the ratings file)")
            pair.append(index[row[key]])
        if pair[0] == pair[1]:
            raise ReplayInputError(f"{where}: a member cannot duel itself ({row['a']!r})")
        if not isinstance(row["scores"], dict):
            raise ReplayInputError(f"{at(where, field='scores')}: expected {{judge: [score_a, score_b]}}")
        duel_scores = np.full((len(names), 2), np.nan)
        for judge, values in row["scores"].items():
            field_name = f"scores.{judge}"
            if judge not in index:
                raise ReplayInputError(f"{at(where, field=field_name)}: unknown judge {judge!r}")
            if judge in (row["a"], row["b"]) and not duelists_judge:
                raise ReplayInputError(f"{at(where, field=field_name)}: judge {judge!r} is one of the duelists "
                                       "(allowed with --set reputation.duelists_judge=true)")
            if not isinstance(values, list) or len(values) != 2:
                raise ReplayInputError(f"{at(where, field=field_name)}: expected [score_a, score_b]")
            for side, value in enumerate(values):
                if value is not None:
                    duel_scores[index[judge], side] = number(
                        value, at(where, field=f"{field_name}[{side}]"), 1, 10, ReplayInputError)
        duels.append(pair)
        scores.append(duel_scores)
    if not duels:
        raise ReplayInputError(f"{path}: holds no duels")
    return np.array(duels, dtype=np.int64), np.stack(scores)


def _pair_or_null(row: np.ndarray):
    return None if np.isnan(row).any() else [float(row[0]), float(row[1])]


def result_to_json(names: list[str], result: IterationResult) -> dict:
    return {
        "ratings": ratings_to_json(names, result.ratings),
        "preferences": [
            {"duel": int(d), "chosen": names[c], "rejected": names[r],
             "score_chosen": float(sc), "score_rejected": float(sr)}
            for d, (c, r), (sc, sr) in zip(result.pair_duels, result.pairs, result.pair_scores)
        ],
        # End-of-iteration weighted scores: the ones that decide the pairs.
        "weighted_scores": [_pair_or_null(row) for row in result.final_scores],
        # The scores each reputation update used (judges weighted as of that duel).
        "update_scores": [_pair_or_null(row) for row in result.update_scores],
    }


def replay(duels_path: Path, ratings_path: Path, out_path: Path, overrides: list[str],
           iteration: int | None = None, run_dir: Path | None = None) -> dict:
    cfg = apply_overrides(ReplayConfig(), overrides).reputation
    try:
        cfg.validate()
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if cfg.authors_static and (iteration is None or run_dir is None):
        raise ConfigError("reputation.authors_static depends on the iteration and the earlier iterations' "
                          "ratings: give --iteration T and --run-dir RUN")
    if iteration is not None and iteration < 0:
        raise ConfigError(f"--iteration must be >= 0, got {iteration}")
    try:  # the run's ratings files, here the user's input: their errors are replay's
        names, ratings = load_ratings(ratings_path)
        duels, scores = load_duels(duels_path, names, cfg.duelists_judge)
        after = earlier_ratings(RunPaths(run_dir), iteration, names) if cfg.authors_static else []
    except RatingsError as err:
        raise ReplayInputError(str(err)) from err
    out = result_to_json(names, run_iteration(ratings, duels, scores, cfg, iteration=iteration, ratings_after=after))
    atomic_write_text(Path(out_path), json.dumps(out, indent=1) + "\n")
    return out


def command(args: argparse.Namespace) -> int:
    """`sparta-hpc replay`: 2 for input that is refused (nothing is written then)."""
    try:
        out = replay(args.duels, args.ratings, args.out, args.overrides, args.iteration, args.run_dir)
    except (ReplayInputError, ConfigError) as err:
        log.error("replay: %s", err)
        log.error("replay: nothing was written to %s", args.out)
        return 2
    log.info("replay: %d duels -> %d preference pairs, written to %s",
             len(out["weighted_scores"]), len(out["preferences"]), args.out)
    return 0
