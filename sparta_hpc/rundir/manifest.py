"""Size and sha256 of every finished file, recorded per unit of work; checked before use.

A *unit* is what one task finishes at once: the plan, one shard of an array
stage, the gathered archive, the aggregate's outputs, one member's adapter,
an evaluation point's scores. Its record, `<scope>/manifest/<unit>.json`
(paths.RunPaths.manifest), is small:

    {"unit": "generate.g00_s0003", "done": "iter_0000/generate/g00_s0003.json",
     "files": {"iter_0000/generate/g00_s0003.json": {"size": 5120, "sha256": "9f2c..."}}}

`done` is the file whose existence means the unit is finished: its marker,
or a shard itself. The record is written *before* that file appears (before
the marker; for a shard, from its bytes, just before it is renamed into
place), so every finished unit has a record and a record of an unfinished
unit is simply ignored. Paths are relative to the run directory, so a moved
run still checks.

The archive is the one file two units write: gather creates it, aggregate
replaces it with a completed copy. The later finished unit's record is the
one that counts; while aggregate is running, the copy it recorded before its
rename is accepted too.

Readers check what they read (`check_file`, `read_checked_json`): a file
that differs from its record raises DamagedFile, never used. The driver
checks what its pending work will read when it starts (repair.py), and
`sparta-hpc verify RUN` checks every record (verify.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadRecord, DamagedFile
from .files import atomic_write_bytes, atomic_write_json
from .paths import EVAL_STAGES, RUN_STAGES, STAGES, RunPaths, shard_unit, split_unit

ORDER = RUN_STAGES + STAGES + EVAL_STAGES  # a later stage's record of a file supersedes an earlier one's
CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One file as one unit recorded it."""

    unit: str
    record: Path  # the unit's record file
    done: Path  # its marker (or shard): the unit is finished once this exists
    size: int
    sha256: str

    @property
    def stage(self) -> str:
        return split_unit(self.unit)[0]

    def finished(self) -> bool:
        return self.done.exists()


def digest_bytes(data: bytes) -> dict:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def digest_file(path: Path) -> dict:
    """Size and sha256 of a file, read in 1 MiB pieces (archives and adapters can be large)."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": h.hexdigest()}


def files_of(paths: list[Path]) -> list[Path]:
    """Files, with every file under a folder (an adapter) in name order."""
    out = []
    for p in map(Path, paths):
        out += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return out


def write_record(paths: RunPaths, iteration: int, unit: str, done: Path, digests: dict[Path, dict]) -> Path:
    """The unit's record (atomically); call it before writing `done`."""
    record = paths.manifest(iteration, unit)
    atomic_write_json(record, {"unit": unit, "done": paths.relative(done),
                               "files": {paths.relative(p): d for p, d in digests.items()}})
    return record


def record_files(paths: RunPaths, iteration: int, unit: str, done: Path, files: list[Path]) -> Path:
    """Record files already in place (folders: every file under them), e.g. just before a marker."""
    return write_record(paths, iteration, unit, done, {f: digest_file(f) for f in files_of(files)})


TIMINGS = ("seconds", "load_seconds")  # fields of a shard that differ on every run of the same work


def write_shard(paths: RunPaths, iteration: int, stage: str, out: Path, data: dict) -> None:
    """A shard of an array stage as JSON: its record first (from the bytes), then the shard itself,
    atomically; the shard's existence means done, and by then its record exists. The record also
    holds a digest of the shard without its timings (`content`): a recomputed shard with the same
    answers is recognised as the same (repair.py)."""
    raw = (json.dumps(data, indent=1) + "\n").encode()
    content = {k: v for k, v in data.items() if k not in TIMINGS}
    digest = {**digest_bytes(raw), "content": digest_bytes(json.dumps(content, sort_keys=True).encode())["sha256"]}
    write_record(paths, iteration, shard_unit(stage, out), out, {out: digest})
    atomic_write_bytes(out, raw)


def read_record(record: Path) -> dict:
    """A unit's record, checked in itself: JSON with `unit` (the same as its file name, which is how
    readers find it), `done`, and `files` ({relative path: {size, sha256}}). Raises BadRecord saying
    what is wrong (a flipped byte in a unit name would otherwise credit its files to another unit)."""
    try:
        data = json.loads(record.read_bytes().decode())
    except (UnicodeDecodeError, ValueError) as err:
        raise BadRecord(f"not JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("unit"), str) or not isinstance(data.get("done"), str) \
            or not isinstance(data.get("files"), dict):
        raise BadRecord("it lacks `unit`, `done` or `files`")
    if data["unit"] != record.stem:
        raise BadRecord(f"its unit is {data['unit']!r} but its file name says {record.stem!r}")
    for rel, d in data["files"].items():
        if not isinstance(d, dict) or not isinstance(d.get("size"), int) or not isinstance(d.get("sha256"), str):
            raise BadRecord(f"its entry for {rel} has no size and sha256")
    return data


def load_entries(paths: RunPaths, records: list[Path] | None = None) -> dict[str, list[Entry]]:
    """{relative path: the entries that recorded it}, from every record of the run (or `records`).
    An unreadable or inconsistent record is skipped: its unit counts as unrecorded (verify reports it)."""
    entries: dict[str, list[Entry]] = {}
    for record in paths.manifests() if records is None else records:
        try:
            data = read_record(record)
        except (OSError, BadRecord):
            continue
        done = paths.root / data["done"]
        for rel, d in data["files"].items():
            entries.setdefault(rel, []).append(Entry(data["unit"], record, done, d["size"], d["sha256"]))
    return entries


def expected(found: list[Entry]) -> tuple[Entry | None, list[Entry]]:
    """(the entry a file must match, other entries it may match instead): the latest finished
    stage's, and those of later stages still running (aggregate, before its marker)."""
    finished = sorted((e for e in found if e.finished()), key=lambda e: ORDER.index(e.stage))
    if not finished:
        return None, []
    latest = finished[-1]
    later = [e for e in found if not e.finished() and ORDER.index(e.stage) > ORDER.index(latest.stage)]
    return latest, later


def entries_of(paths: RunPaths, path: Path, entries: dict[str, list[Entry]]) -> list[Entry]:
    """The entries of one file; none for a file outside the run (an adapter from the config)."""
    try:
        return entries.get(paths.relative(path), [])
    except ValueError:
        return []


def problem(paths: RunPaths, path: Path, entries: dict[str, list[Entry]]) -> str | None:
    """What is wrong with a recorded file ("missing", "changed: ..."), or None: it matches its
    record, or no finished unit recorded it (nothing to compare with)."""
    want, also = expected(entries_of(paths, path, entries))
    if want is None:
        return None
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size not in {e.size for e in [want, *also]}:
        return f"changed: {size} bytes, recorded {want.size} ({want.unit})"
    sha = digest_file(path)["sha256"]
    if sha not in {e.sha256 for e in [want, *also]}:
        return f"changed: sha256 {sha[:12]}..., recorded {want.sha256[:12]}... ({want.unit})"
    return None


def damaged_message(paths: RunPaths, path: Path, what: str, entries: dict[str, list[Entry]]) -> str:
    want, _ = expected(entries_of(paths, path, entries))
    if want is None:  # no record to repair from (a run made before manifests existed)
        return f"{path} is {what}; it is not used. Delete it and run the same command again to recompute it"
    return (f"{path} is {what}; it is not used. Run the same command again: the driver checks what it "
            f"resumes from and recomputes the unit that wrote it ({want.unit}, recorded in {want.record})")


def check_file(paths: RunPaths, path: Path, entries: dict[str, list[Entry]] | None = None) -> None:
    """Raise DamagedFile unless `path` matches its record (or is not recorded: a run made before
    manifests existed, or an unfinished unit's file)."""
    entries = load_entries(paths) if entries is None else entries
    what = problem(paths, Path(path), entries)
    if what:
        raise DamagedFile(damaged_message(paths, Path(path), what, entries))


def check_files(paths: RunPaths, files: list[Path]) -> None:
    """check_file for files and folders (an adapter: every recorded file under it)."""
    entries = load_entries(paths)
    for f in map(Path, files):
        if f.is_file():
            check_file(paths, f, entries)
            continue
        try:  # a folder (an adapter): each file recorded under it
            prefix = paths.relative(f) + "/"
        except ValueError:
            continue  # outside the run: not ours to check
        for rel in [r for r in entries if r.startswith(prefix)]:
            check_file(paths, paths.root / rel, entries)


def read_checked_json(paths: RunPaths, path: Path, entries: dict[str, list[Entry]] | None = None):
    """A recorded JSON file (a shard), checked against its record from the same bytes it is parsed from."""
    path = Path(path)
    entries = load_entries(paths) if entries is None else entries
    want, also = expected(entries_of(paths, path, entries))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DamagedFile(damaged_message(paths, path, "missing", entries)) from None
    if want is not None and digest_bytes(raw)["sha256"] not in {e.sha256 for e in [want, *also]}:
        raise DamagedFile(damaged_message(paths, path, f"changed ({len(raw)} bytes, recorded {want.size})", entries))
    try:
        return json.loads(raw)
    except ValueError as err:  # unrecorded and unreadable: as damaged as a changed one
        raise DamagedFile(damaged_message(paths, path, f"not valid JSON ({err})", entries)) from None
