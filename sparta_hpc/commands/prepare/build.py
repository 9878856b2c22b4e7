"""One task's files, built into a scratch folder: its evaluation file, its duel pool, the overlap.

`build_task` writes `<task>/train.jsonl` and `eval/<name>` under `tmp` (never under the output
folder: run.py renames them into place) and returns the task's manifest entry. A missing source
is recorded in the entry's `missing` list with what to do, and the task is `partial`; a changed
source raises SourceChanged from sources.py. Where a clean pool cannot be had the entry says so
(status partial, no train.jsonl) rather than writing a contaminated one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

from ...errors import ConfigError, EvalDataError, PrepareError, SourceMissing
from ...eval import data as eval_data
from ...inputs.clean import eval_key, overlap
from ...inputs.instructions import iter_rows
from .sources import ALPACA_EVAL, Source, sha256
from .tasks import Pool, Task, convert, eval_file_bytes, kcross_dev_pool

log = logging.getLogger("sparta_hpc.commands.prepare")

NO_SPLIT_HELP = {
    "math": "give the MATH test set (Hendrycks et al.; rows {problem, level, solution}, .jsonl/.json/.parquet, "
            "e.g. the `test` split of hendrycks/competition_math saved where the hub is reachable) with "
            "--math-test PATH",
    "com2": "give a COM2 evaluation file (a JSON list or JSONL of {prompt, gold}) with --eval-file com2=PATH",
    "normad": "give a NormAd rule-of-thumb file ({dev: [...], test: [...]} of {question, choices, answer}) with "
              "--eval-file normad_rot=PATH",
}


def write_file(tmp: Path, rel: str, payload: bytes, record: dict) -> dict:
    path = tmp / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return {**record, "sha256": sha256(payload), "bytes": len(payload)}


def user_eval_bytes(task: Task, path: Path) -> bytes:
    """A user's evaluation file for a task with no published split: MATH rows of the task's levels as
    JSONL (one MATH test file serves the three MATH tasks), JSONL rows as a JSON list where the name is
    .json, any other file as it is."""
    if not path.is_file():
        raise SourceMissing(f"{task.name}: the evaluation file {path} does not exist")
    if task.kind != "math" and not (path.suffix == ".jsonl" and task.eval_name.endswith(".json")):
        return path.read_bytes()
    if task.kind != "math":  # JSONL rows under a .json name: written as the JSON list that name promises
        try:
            rows = [row for _, row in iter_rows(path, f"--eval-file {task.name}")]
        except ConfigError as err:
            raise PrepareError(f"{task.name}: {err}") from None
        return json.dumps(rows, ensure_ascii=False, indent=1).encode()
    spec = eval_data.get_spec(task.name)
    try:
        rows = [row for _, row in iter_rows(path, "--math-test")
                if isinstance(row, dict) and eval_data.math_level(row) in spec.levels]
    except ConfigError as err:
        raise PrepareError(f"{task.name}: --math-test {path}: {err}") from None
    if not rows:
        raise PrepareError(f"{task.name}: --math-test {path} has no rows of level {spec.levels} "
                           "(rows {problem, level: 'Level N', solution})")
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def build_task(task: Task, tmp: Path, source: dict[str, Callable[[], Source]], authors_pools: bool,
               eval_file: Path | None) -> dict:
    """Build `task` under `tmp`; `source[name]()` opens a pinned repository (sources.Source)."""
    entry: dict = {"status": "complete", "pool": "", "files": {}, "overlap": None, "missing": [], "notes": []}
    rel_eval, rel_train = f"eval/{task.eval_name}", f"{task.name}/train.jsonl"
    splits: dict[str, list[dict]] = {}

    # --- the evaluation split: published (model_swarm), given by the user, or missing -------------
    payload, record = None, None
    if eval_file is not None and task.eval_source == ALPACA_EVAL:
        entry["notes"].append(f"the evaluation file given ({eval_file}) replaces {task.evaluation}")
    if task.evaluation and not (eval_file is not None and task.eval_source == ALPACA_EVAL):
        try:
            published: Source = source[task.eval_source]()
            raw = published.read(task.evaluation)
            payload = eval_file_bytes(task, raw)
            record = {"source": published.source_record(task.evaluation, raw)}
        except SourceMissing as err:
            entry["missing"].append({"file": rel_eval, "why": str(err)})
    elif eval_file is not None:
        payload = user_eval_bytes(task, Path(eval_file))
        record = {"source": {"repo": "a file given by the user", "path": str(eval_file),
                             "sha256": sha256(Path(eval_file).read_bytes())}}
    else:
        entry["missing"].append({"file": rel_eval, "why": "no published evaluation split for this task; "
                                 + NO_SPLIT_HELP[task.kind] + " (never evaluate on the training file)"})
    if payload is not None:
        record = write_file(tmp, rel_eval, payload, record)
        spec = eval_data.get_spec(task.name)
        try:
            found = eval_data.read_splits(spec, tmp / rel_eval)
        except EvalDataError as err:
            raise PrepareError(f"{task.name}: the evaluation file from {record['source']['path']} does not load: "
                               f"{err}") from None
        splits = {name: found[name].rows if name in found else [] for name in eval_data.SPLITS}
        record["rows"] = {name: len(rows) for name, rows in splits.items()}
        entry["files"][rel_eval] = record
    test_keys = {eval_key(task.name, row) for row in splits.get("test", [])}
    dev_keys = {eval_key(task.name, row) for row in splits.get("dev", [])}
    if payload is not None and (eval_file is not None or task.eval_source == ALPACA_EVAL):
        # data.py cuts a file without splits 20/80 by hash, but every row of a test set (MATH's test
        # split, AlpacaEval's 805) is a test item: none of them may be a duel instruction
        test_keys, dev_keys = test_keys | dev_keys, set()
        entry["notes"].append("every row of the evaluation file counts as a test item (dev included)")

    # --- the duel pool --------------------------------------------------------------------------
    pool, pool_source, train_bytes = None, None, None
    try:
        sp: Source = source["sparta"]()
        train_bytes = sp.read(task.train)
        authors = convert(task, train_bytes)
        authors_source = sp.source_record(task.train, train_bytes)
    except SourceMissing as err:
        authors, authors_source = None, None
        why = str(err)
    if task.name == "kcross" and not authors_pools:
        # The authors' train.json IS model_swarm's test split (all 1000 items, same order), so the clean
        # pool is model_swarm's dev split, whose items are not test items (docs/data.md).
        if authors is not None:
            _, authors_stats = overlap(authors, test_keys, dev_keys, remove=False)
            entry["authors_pool"] = {"source": authors_source, **authors_stats}
        if splits.get("dev"):
            pool, pool_source = kcross_dev_pool(splits["dev"]), record["source"]
            entry["pool"] = ("model_swarm's KCross dev split in the authors' prompt format (the authors' "
                             "train.json is the test split); dev is no longer held out for model selection")
        else:
            why = "no clean pool: the authors' pool is the test split and the dev split is missing"
    elif authors is not None:
        pool, pool_source = authors, authors_source
        entry["pool"] = "the authors' training file" + ("" if authors_pools else " less the test items")
    if pool is None:
        entry["missing"].append({"file": rel_train, "why": why})
    else:
        if eval_file is not None and train_bytes is not None and sha256(train_bytes) == \
                record["source"]["sha256"]:
            raise PrepareError(f"{task.name}: the evaluation file {eval_file} is the training file "
                               f"{task.train}; never evaluate on the training file")
        _write_pool(task, tmp, rel_train, pool, pool_source, payload is not None, test_keys, dev_keys,
                    authors_pools, entry)
    if entry["missing"]:
        entry["status"] = "partial"
    return entry


def _write_pool(task: Task, tmp: Path, rel: str, pool: Pool, pool_source: dict, checked: bool,
                test_keys: set, dev_keys: set, authors_pools: bool, entry: dict) -> None:
    kept, stats = overlap(pool, test_keys, dev_keys, remove=not authors_pools)
    if checked:
        entry["overlap"] = stats
    else:
        entry["notes"].append("NOT CHECKED for test items: there is no evaluation split to compare with")
        entry["overlap"] = {"source_rows": len(pool), "rows": len(kept), "checked": False}
    if not kept:
        entry["missing"].append({"file": rel, "why": f"no clean pool: all {len(pool)} rows of {pool_source['path']} "
                                 "are test items; --authors-pools keeps them (a contaminated run)"})
        return
    if not authors_pools and stats["removed_rows"] > len(pool) / 2:
        entry["notes"].append(f"most of the source is test items: {stats['removed_rows']} of {len(pool)} rows "
                              "removed")
    payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kept).encode()
    entry["files"][rel] = write_file(tmp, rel, payload, {"source": pool_source, "rows": len(kept)})
