"""`sparta-hpc export`: an iteration's preference pairs for other tools, and its duels for replay.

    sparta-hpc export RUN_DIR --iteration N [--out DIR] [--duels]

writes DIR/pairs.jsonl and DIR/dataset/ (a Hugging Face dataset, `load_from_disk`),
both in TRL's conversational preference format (prompt / chosen / rejected
message lists) plus the pair's duel, members and weighted scores; with
--duels also DIR/duels.jsonl and DIR/ratings.json, the input of
`sparta-hpc replay`. DIR defaults to RUN_DIR/export/iter_NNNN.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import yaml

from ..config.schema import load_config
from ..errors import ExportError
from ..rundir.archive import pair_rows, read_archive, read_ratings_from
from ..rundir.files import atomic_write_json, atomic_write_text
from ..rundir.paths import RunPaths
from ..rundir.ratings import ratings_to_json

log = logging.getLogger("sparta_hpc")


def duel_rows(archive: dict, names: list[str]) -> list[dict]:
    """The replay format: per duel, each judge's round-averaged scores of a and b (null: missing)."""
    rows = []
    scores = archive["judgments/score"]
    duelists_judge = bool(yaml.safe_load(archive["attrs"]["config"])["reputation"].get("duelists_judge"))
    for c, (a, b) in enumerate(zip(archive["duels/a"], archive["duels/b"])):
        judged = {}
        for j, name in enumerate(names):
            if j in (a, b) and not duelists_judge:
                continue
            judged[name] = [None if math.isnan(x) else float(x) for x in scores[c, j]]
        rows.append({"a": names[a], "b": names[b], "scores": judged})
    return rows


def export(run_dir: Path, iteration: int, out: Path | None = None, duels: bool = False) -> Path:
    paths = RunPaths(run_dir)
    if duels and paths.config.exists() and load_config(paths.config).method != "sparta":
        raise ExportError(f"{run_dir}: --duels exports SPARTA's duels for replay; this run is a single-model "
                          "method (its pairs are exported without it)")
    if not paths.is_done(iteration, "aggregate"):
        raise ExportError(f"{run_dir}: iteration {iteration} is not aggregated yet "
                          f"(no {paths.marker(iteration, 'aggregate')})")
    out = Path(out or paths.export(iteration))
    archive = read_archive(paths.archive(iteration))
    names = json.loads(archive["attrs"]["members"])
    rows = pair_rows(archive, names)
    atomic_write_text(out / "pairs.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    from datasets import Dataset

    dataset_dir = out / "dataset"
    Dataset.from_list(rows).save_to_disk(str(dataset_dir))
    if duels:
        atomic_write_text(out / "duels.jsonl", "".join(json.dumps(r) + "\n" for r in duel_rows(archive, names)))
        atomic_write_json(out / "ratings.json", ratings_to_json(names, read_ratings_from(paths.archive(iteration))))
    return out


def command(args: argparse.Namespace) -> int:
    """`sparta-hpc export`: 2 when the iteration cannot be exported."""
    try:
        out = export(args.run_dir, args.iteration, args.out, args.duels)
    except (ExportError, OSError) as err:
        log.error("export: %s", err)
        return 2
    log.info("export: iteration %d of %s written to %s", args.iteration, args.run_dir, out)
    return 0
