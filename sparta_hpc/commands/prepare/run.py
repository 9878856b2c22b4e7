"""`sparta-hpc data prepare`: the paper's data from the pinned public sources, into one folder.

    DIR/<task>/train.jsonl         the duel pool, rows {"id", "instruction", "reference"?}
    DIR/eval/<file>                the files eval.data_dir reads (sparta_hpc/eval/plan.py DEFAULT_FILES)
    DIR/tulu-v2-sft-mixture.jsonl  with --tulu: the initial tribe's SFT data (sparta_hpc/inputs/sft_data.py)
    DIR/MANIFEST.json              per task: each file's source (repository, commit, path, sha256), rows,
                                   sha256, the overlap removed and counted; written last

Each task is built in DIR/.tmp-<task>-*/ and renamed into place, then its manifest entry is
written, so a task with an entry is complete on disk and a crash leaves only a scratch folder
(removed by the next run). A rerun skips the tasks whose entry is complete, was built from the
same inputs, and whose files still have their recorded sha256. Layout and choices: docs/data.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ConfigError
from ...inputs.instructions import iter_rows
from ...rundir.files import atomic_write_json
from .build import build_task
from .sources import ALPACA_EVAL, MODEL_SWARM, PINS, SPARTA, Source, sha256
from ...errors import PrepareError
from .tasks import TASK_NAMES, TASKS

log = logging.getLogger("sparta_hpc.commands.prepare")

MANIFEST = "MANIFEST.json"
TULU = "tulu-v2-sft-mixture.jsonl"


@dataclass
class Options:
    out: Path
    tasks: tuple[str, ...] = TASK_NAMES
    sparta: str | None = None  # a path or URL; None: the pinned URL
    model_swarm: str | None = None
    alpaca_eval: str | None = None
    authors_pools: bool = False
    eval_files: dict[str, Path] = field(default_factory=dict)  # task -> a user's evaluation file
    tulu: Path | None = None
    pins: dict = field(default_factory=lambda: PINS)
    cache: Path | None = None


def prepare(opts: Options) -> dict:
    """Prepare every task of `opts.tasks` (and the Tulu file); returns the manifest."""
    unknown = [t for t in opts.tasks if t not in TASKS] + [t for t in opts.eval_files if t not in TASKS]
    if unknown:
        raise PrepareError(f"unknown task {unknown[0]!r}; the tasks are: {', '.join(TASK_NAMES)}")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".tmp-*"):  # a scratch folder of an interrupted run: never part of the output
        shutil.rmtree(stale, ignore_errors=True)
    manifest = _read_manifest(out)
    opened: dict[str, Source] = {}
    locations = {SPARTA: opts.sparta, MODEL_SWARM: opts.model_swarm, ALPACA_EVAL: opts.alpaca_eval}

    def opener(name: str):
        def open_source() -> Source:
            if name not in opened:
                opened[name] = Source(name, locations[name], opts.pins, opts.cache)
                manifest["sources"][name] = opened[name].describe()
            return opened[name]
        return open_source
    source = {name: opener(name) for name in locations}

    for name in opts.tasks:
        task = TASKS[name]
        inputs = _inputs(opts, name)
        old = manifest["tasks"].get(name)
        if old and old.get("status") == "complete" and old.get("inputs") == inputs and _verified(out, old):
            log.info("prepare: %s: already prepared and verified, skipped", name)
            continue
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=out))
        try:
            entry = build_task(task, tmp, source, opts.authors_pools, opts.eval_files.get(name))
            entry = {"status": entry.pop("status"), "mode": "authors" if opts.authors_pools else "clean",
                     "inputs": inputs, **entry}
            manifest["tasks"].pop(name, None)  # the entry never describes files that are being replaced
            _write_manifest(out, manifest)
            _move_into_place(tmp, out, name, entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        manifest["tasks"][name] = entry
        _write_manifest(out, manifest)
        _log_task(name, entry)
    if opts.tulu is not None:
        manifest["tulu"] = _prepare_tulu(out, Path(opts.tulu), manifest.get("tulu"))
        _write_manifest(out, manifest)
    return manifest


def _read_manifest(out: Path) -> dict:
    path = out / MANIFEST
    if path.is_file():
        try:
            manifest = json.loads(path.read_text())
            if isinstance(manifest, dict) and isinstance(manifest.get("tasks"), dict):
                manifest.setdefault("sources", {})
                return manifest
        except json.JSONDecodeError:
            pass
        log.warning("prepare: %s is unreadable; every task is prepared again", path)
    return {"format": 1, "sources": {}, "tasks": {}}


def _write_manifest(out: Path, manifest: dict) -> None:
    atomic_write_json(out / MANIFEST, manifest)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out / MANIFEST, 0o666 & ~umask)  # a shared data folder: readable like the files it describes


def _inputs(opts: Options, task: str) -> dict:
    """What a task's files depend on: a rerun with other inputs builds the task again."""
    inputs = {"mode": "authors" if opts.authors_pools else "clean",
              SPARTA: opts.pins[SPARTA]["commit"], MODEL_SWARM: opts.pins[MODEL_SWARM]["commit"]}
    if TASKS[task].eval_source == ALPACA_EVAL:
        inputs[ALPACA_EVAL] = opts.pins[ALPACA_EVAL]["commit"]
    if task in opts.eval_files and Path(opts.eval_files[task]).is_file():
        inputs["eval_file_sha256"] = sha256(Path(opts.eval_files[task]).read_bytes())
    return inputs


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(out: Path, entry: dict) -> bool:
    for rel, record in entry.get("files", {}).items():
        path = out / rel
        if not path.is_file() or file_sha256(path) != record.get("sha256"):
            log.warning("prepare: %s differs from %s; the task is prepared again", path, MANIFEST)
            return False
    return True


def _move_into_place(tmp: Path, out: Path, task: str, entry: dict) -> None:
    """Rename the task's files from the scratch folder into `out`; an old pool that this build did not
    make (no clean pool this time) is removed rather than left unrecorded."""
    target = out / task
    if target.exists():
        shutil.rmtree(target)
    if (tmp / task).exists():
        os.replace(tmp / task, target)
    for rel in entry["files"]:
        if rel.startswith("eval/"):
            (out / "eval").mkdir(exist_ok=True)
            os.replace(tmp / rel, out / rel)


def _log_task(name: str, entry: dict) -> None:
    rows = {rel: rec["rows"] for rel, rec in entry["files"].items()}
    ov = entry.get("overlap") or {}
    log.info("prepare: %s: %s; %s", name, entry["status"], ", ".join(f"{r} {n}" for r, n in rows.items()) or "no files")
    if ov.get("checked", True) and "removed_rows" in ov:
        log.info("prepare: %s: %d of %d source rows were test items (%s); %d dev items in the pool",
                 name, ov["source_rows_that_are_test_items"], ov["source_rows"],
                 "removed" if entry["mode"] == "clean" else "KEPT, --authors-pools", ov["dev_items_in_pool"])
    if "authors_pool" in entry:
        theirs = entry["authors_pool"]
        log.warning("prepare: %s: the authors' pool (%s) has %d of its %d rows among the test items; not used",
                    name, theirs["source"]["path"], theirs["source_rows_that_are_test_items"], theirs["source_rows"])
    for note in entry["notes"]:
        log.warning("prepare: %s: %s", name, note)
    for item in entry["missing"]:
        log.error("prepare: %s: %s MISSING: %s", name, item["file"], item["why"])


def _tulu_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".json", ".parquet") and p.is_file())
    raise PrepareError(f"--tulu {path}: no such file or folder; download allenai/tulu-v2-sft-mixture where the "
                       "hub is reachable (e.g. huggingface-cli download --repo-type dataset) and give its folder")


def _prepare_tulu(out: Path, path: Path, old: dict | None) -> dict:
    """The Tulu-v2 SFT mixture as one JSONL of {dataset, id, messages} rows (sparta_hpc/inputs/sft_data.py)."""
    files = _tulu_files(path)
    inputs = [{"path": str(p), "bytes": p.stat().st_size} for p in files]
    if old and old.get("inputs") == inputs and _verified(out, old):
        log.info("prepare: %s: already prepared and verified, skipped", TULU)
        return old
    if not files:
        raise PrepareError(f"--tulu {path}: no .jsonl, .json or .parquet files in it")
    counts: Counter = Counter()
    fd, tmp = tempfile.mkstemp(prefix=".tmp-tulu-", dir=out)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for file in files:
                for where, row in iter_rows(file, "--tulu"):
                    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
                        raise PrepareError(f"--tulu: {where} has no 'messages' list (rows {{dataset, id, messages}})")
                    counts[str(row.get("dataset", ""))] += 1
                    f.write(json.dumps({"dataset": row.get("dataset"), "id": row.get("id"),
                                        "messages": row["messages"]}, ensure_ascii=False) + "\n")
        os.replace(tmp, out / TULU)
    except ConfigError as err:
        raise PrepareError(str(err)) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    rows = sum(counts.values())
    log.info("prepare: %s: %d rows from %d file(s)", TULU, rows, len(files))
    return {"inputs": inputs, "datasets": dict(sorted(counts.items())),
            "files": {TULU: {"rows": rows, "sha256": file_sha256(out / TULU), "source": {"path": str(path)}}}}
