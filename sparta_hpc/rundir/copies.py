"""Each finished iteration copied to long-term storage (run.archive_dir), every copy checked.

Scratch filesystems purge old files; a run of weeks needs its iterations kept elsewhere. After an
iteration's training (and its evaluation point, if it has one) the driver copies what the iteration
produced and what later work or a paper reads: the HDF5 archive, plan, pairs, summary, the ratings it
ended with, every member's adapter and training log, and the evaluation point's results, to
`<archive_dir>/<the same relative path>`. Each copy is written to a temporary name, read back, its
sha256 compared with the original's, then renamed; RUN/copies/iter_<t>.json records each copied file's
size and sha256, so `sparta-hpc verify` checks the copies too. A resumed driver copies again whatever
is missing or differs; what is already there and intact is left alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from .events import COPIED, EventLog
from .files import atomic_write_json, read_json
from .manifest import digest_file
from .paths import RunPaths

log = logging.getLogger(__name__)


def iteration_files(members: list[str], paths: RunPaths, t: int) -> list[Path]:
    """What is kept of iteration t for these members (files that exist; folders: every file under them)."""
    found = [paths.archive(t), paths.plan(t), paths.pairs(t), paths.summary(t), paths.ratings(t + 1)]
    for name in members:
        found += [paths.adapter(t, name), paths.train_log(t, name)]
    point = paths.eval_point(t)
    if point.exists():
        found += [p for p in point.rglob("*") if p.is_file() and p.parent.name not in ("evaluate", "rate")]
    out = []
    for p in found:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            out.append(p)
    return out


def copy_iteration(archive_dir: str | None, members: list[str], paths: RunPaths, events: EventLog, t: int) -> None:
    """Copy iteration t to archive_dir (run.archive_dir; nothing without one); only what is not there intact yet."""
    if not archive_dir:
        return
    dest = Path(archive_dir)
    record = read_json(paths.copy_record(t)) if paths.copy_record(t).exists() else {"files": {}}
    files, copied = {}, 0
    for src in iteration_files(members, paths, t):
        rel = paths.relative(src)
        want = digest_file(src)
        target = dest / rel
        if record["files"].get(rel) == want and target.is_file() and digest_file(target) == want:
            files[rel] = want
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".copying")
        shutil.copyfile(src, tmp)
        got = digest_file(tmp)
        if got != want:
            tmp.unlink(missing_ok=True)
            raise OSError(f"copying {src} to {target}: the copy reads back {got}, the original is {want}; check "
                          f"run.archive_dir ({dest}) and run the same command again")
        os.replace(tmp, target)
        files[rel] = want
        copied += 1
    atomic_write_json(paths.copy_record(t), {"iteration": t, "dest": str(dest), "files": files})
    if copied:
        events.write(COPIED, iteration=t, dest=str(dest), files=copied)
        log.info("iteration %d: %d file(s) copied to %s, each checked by sha256", t, copied, dest)


def check_copies(paths: RunPaths) -> tuple[int, list[str]]:
    """(copied files checked, problems): every recorded copy exists with its recorded size and sha256."""
    checked, problems = 0, []
    for record in sorted((paths.root / "copies").glob("iter_*.json")):
        try:
            data = json.loads(record.read_text())
            dest, files = Path(data["dest"]), data["files"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            problems.append(f"BAD RECORD {paths.relative(record)}: {err}")
            continue
        for rel, want in files.items():
            checked += 1
            target = dest / rel
            if not target.is_file():
                problems.append(f"COPY MISSING {target}")
            elif digest_file(target) != want:
                problems.append(f"COPY CHANGED {target}")
    return checked, problems
