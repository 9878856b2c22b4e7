"""Before the driver resumes: check the finished files its pending work will read or skip, and
invalidate the units whose files are missing or damaged, so that the same walk recomputes exactly them.

What is checked (against manifest.py's records):
  - the sft stage's expert adapters while anything that reads them is pending;
  - the first unfinished iteration: its plan, its finished shards (generate and judge shards only
    until gather has archived them), its archive, pairs and finished members' adapters, the ratings
    it starts from and the adapters its members start from (iteration t-1's training);
  - every unfinished evaluation point: its finished shards and the adapters it evaluates.
Finished iterations are left alone: `sparta-hpc verify` reports on them.

Invalidating a unit deletes its damaged file, its record and its marker (for a shard: the shard
itself), and the stage-level markers of its stage and the later ones of that iteration (or point),
which the driver then walks again: only units without their file or marker do any work.
A recomputed unit is compared with the record it replaced (its sha256s, kept in the `invalidated`
event): seeded work on the same software comes out identical; when it does not (e.g. vLLM on
other GPUs), the judge shards that read a regenerated answer (the rate shards that read a
re-evaluated one) are recomputed too, and other consumers are named in a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .config.schema import Config
from .errors import BadRecord
from .eval.plan import eval_points
from .rundir.events import DAMAGED, INVALIDATED, RECOMPUTED, EventLog
from .rundir.files import atomic_write_json
from .rundir.manifest import load_entries, problem, read_record
from .rundir.paths import EVAL_STAGES, INITIAL, RUN_STAGES, STAGES, RunPaths, point_label, shard_unit, split_unit
from .rundir.plan import PLANNED_STAGES, Plan

log = logging.getLogger(__name__)


def _records(folder: Path, prefixes: tuple[str, ...] = ()) -> list[Path]:
    found = sorted((folder / "manifest").glob("*.json"))
    return [r for r in found if not prefixes or split_unit(r.stem)[0] in prefixes]


def _load(record: Path) -> dict | None:
    try:
        return read_record(record)
    except (OSError, BadRecord):
        return None


def unit_done(paths: RunPaths, record: Path) -> Path:
    """The file whose existence says a record's unit is finished (a shard, or the unit's marker), from
    the record's file name alone: a damaged record's own `done` is not to be trusted."""
    iteration, _ = _scope_of(paths, record)
    stage, part = split_unit(record.stem)
    if stage in PLANNED_STAGES:  # a shard: the unit's part is its file name
        return record.parent.parent / stage / f"{part}.json"
    return paths.marker(iteration, stage, part)


def _scope_of(paths: RunPaths, record: Path) -> tuple[int, tuple[str, ...]]:
    """(iteration or evaluation point, the stages of that scope) of a record file."""
    folder = record.parent.parent
    if folder == paths.sft_root:
        return INITIAL, RUN_STAGES
    if folder.parent == paths.root / "eval":
        return (INITIAL if folder == paths.eval_point(INITIAL) else int(folder.name[len("iter_"):])), EVAL_STAGES
    return int(folder.name[len("iter_"):]), STAGES


def pending_records(cfg: Config, paths: RunPaths, points: list[int] | None = None) -> list[Path]:
    """The records of every finished unit the pending work reads or skips (module docstring)."""
    records: list[Path] = []
    last = next((t for t in range(cfg.tribe.iterations) if not paths.is_done(t, "train")), None)
    if points is None:  # the driver's walk: sft, every iteration and its evaluation points
        points = [p for p in eval_points(cfg) if p == INITIAL or paths.is_done(p, "train")]
    else:
        last = None  # `sparta-hpc eval`: only evaluation points
    points = [p for p in points if not paths.is_done(p, EVAL_STAGES[-1])]
    if cfg.sft.data and (not paths.is_done(INITIAL, "sft") or last == 0 or INITIAL in points):
        records += _records(paths.sft_root)
    if last is not None:
        folder = paths.iteration(last)
        shards = ("generate", "judge") if paths.is_done(last, "gather") else ()
        records += [r for r in _records(folder) if split_unit(r.stem)[0] not in shards]
        if last > 0:  # the adapters its members start from; its ratings (aggregate of t-1) apart
            records += _records(paths.iteration(last - 1), ("train",))
    for p in points:
        records += _records(paths.eval_point(p))
        if p != INITIAL:
            records += _records(paths.iteration(p), ("train",))
    return records


def resume_check(cfg: Config, paths: RunPaths, events: EventLog, points: list[int] | None = None) -> int:
    """Check what the pending work reads; invalidate the units of damaged files. Returns how many."""
    entries = load_entries(paths)
    files: dict[Path, None] = {}
    bad: dict[Path, str] = {}  # finished units whose own record is damaged: recomputed
    for record in pending_records(cfg, paths, points):
        if not unit_done(paths, record).exists():  # finished units only
            continue
        try:
            files.update((paths.root / rel, None) for rel in read_record(record)["files"])
        except (OSError, BadRecord) as err:
            bad[record] = str(err)
            events.write(DAMAGED, path=paths.relative(record), problem=f"bad record: {err}")
            log.warning("%s is a bad record (%s): its unit is recomputed", record, err)
    last = next((t for t in range(cfg.tribe.iterations) if not paths.is_done(t, "train")), None)
    if points is None and last:
        files[paths.ratings(last)] = None  # recorded by the previous iteration's aggregate
    units: dict[Path, tuple[Path, dict[str, str]]] = {}  # record -> (done, {damaged file: problem})
    for f in files:
        what = problem(paths, f, entries)
        if not what:
            continue
        rel = paths.relative(f)
        events.write(DAMAGED, path=rel, problem=what)
        log.warning("%s is %s: it is not used", f, what)
        for entry in entries.get(rel, []):  # every unit that wrote it (the archive: gather and aggregate)
            units.setdefault(entry.record, (entry.done, {}))[1][rel] = what
    for record, (done, damaged) in units.items():
        invalidate(paths, events, record, done, damaged)
    for record, why in bad.items():
        invalidate(paths, events, record, unit_done(paths, record), {}, f"its record is bad: {why}")
    return len(units) + len(bad)


def invalidate(paths: RunPaths, events: EventLog, record: Path, done: Path, damaged: dict[str, str],
               reason: str = "") -> None:
    """Make a unit unfinished: its damaged files and marker go (for a shard: the shard itself), and
    the stage-level markers of its stage and of the later ones of its iteration (or point), which
    the walk then recomputes. Its record keeps the intact files only: an unfinished unit's record is
    no reference, but the archive copy aggregate recorded stays recognisable for the rerun."""
    data = _load(record) or {"unit": record.stem, "files": {}}  # a bad record: its unit, nothing intact
    iteration, stages = _scope_of(paths, record)
    stage = split_unit(data["unit"])[0]
    for rel in damaged:
        (paths.root / rel).unlink(missing_ok=True)
    done.unlink(missing_ok=True)
    intact = {rel: d for rel, d in data["files"].items() if rel not in damaged and paths.root / rel != done}
    if intact:
        atomic_write_json(record, {**data, "files": intact})
    else:
        record.unlink(missing_ok=True)
    for later in stages[stages.index(stage):]:
        paths.marker(iteration, later).unlink(missing_ok=True)
    why = reason or "; ".join(f"{rel} is {what}" for rel, what in damaged.items())
    events.write(INVALIDATED, unit=data["unit"], stage=stage, iteration=iteration, reason=why,
                 files=_contents(data["files"]))
    where = "sft" if stage in RUN_STAGES else \
        point_label(iteration, "evaluation point {}" if stage in EVAL_STAGES else "iteration {}", "initial evaluation")
    log.warning("recomputing %s of the %s: %s", data["unit"], where, why)


# files of a unit that record how the work went (timings), not what it made: not compared
RUN_LOGS = ("log_history.json",)


def _contents(files: dict[str, dict]) -> dict[str, str]:
    """{file: the digest that says what it holds}: a shard's without its timings, else its sha256."""
    return {rel: d.get("content", d["sha256"]) for rel, d in files.items()}


def after_stage(cfg: Config, paths: RunPaths, events: EventLog, stage: str, iteration: int) -> None:
    """Compare the units this stage recomputed with the records they replaced; when a regenerated
    answer differs, recompute the judgments (ratings) made of the earlier one too."""
    pending: dict[str, dict] = {}
    for e in events.read():
        if e.get("stage") == stage and e.get("iteration") == iteration:
            if e["event"] == INVALIDATED:
                pending[e["unit"]] = e["files"]
            elif e["event"] == RECOMPUTED:
                pending.pop(e["unit"], None)
    for unit, before in pending.items():
        record = _load(paths.manifest(iteration, unit))
        if record is None:
            continue
        now = _contents(record["files"])
        changed = sorted(rel for rel in before if now.get(rel) != before[rel] and Path(rel).name not in RUN_LOGS)
        events.write(RECOMPUTED, unit=unit, stage=stage, iteration=iteration, identical=not changed,
                     changed=changed)
        if not changed:
            log.info("recomputed %s: identical to what was recorded before", unit)
            continue
        readers = consumers(paths, stage, iteration, unit)
        log.warning("recomputed %s differs from what was recorded before (%s)%s", unit, ", ".join(changed),
                    f"; recomputing what read it: {', '.join(r.stem for r in readers)}" if readers else
                    "; work that read the earlier version is kept (see docs/faults.md)")
        for r in readers:
            data = _load(r)
            if data:
                invalidate(paths, events, r, paths.root / data["done"], {}, f"it read the earlier {unit}")


def consumers(paths: RunPaths, stage: str, iteration: int, unit: str) -> list[Path]:
    """The finished shards of the next stage that read a shard of `stage` (judge shards read
    generate shards; rate shards read evaluate shards), while their own results are not archived."""
    if stage == "generate" and not paths.is_done(iteration, "gather"):
        from .stages.common import shard_rows

        plan = Plan.read(paths.plan(iteration))
        answered = set(shard_rows(plan, "generate", int(split_unit(unit)[1].split("_s")[1])))  # gGG_sKKKK
        readers = [paths.shard(iteration, "judge", g, k) for g, k in plan.tasks("judge")
                   if set(shard_rows(plan, "judge", k)) & answered]
        return [paths.manifest(iteration, shard_unit("judge", shard)) for shard in readers if shard.exists()]
    if stage == "evaluate" and not paths.is_done(iteration, "score"):
        plan = Plan.read(paths.eval_plan(iteration))
        name = split_unit(unit)[1].split("_", 1)[1]  # gGG_<shard name>
        items = {i for s in plan["evaluate_shards"] if s["name"] == name for i, _, _ in s["segments"]}
        return [paths.manifest(iteration, shard_unit("rate", paths.eval_shard(iteration, "rate", s["name"])))
                for s in plan["rate_shards"]
                if {i for i, _, _ in s["segments"]} & items and paths.eval_shard(iteration, "rate", s["name"]).exists()]
    return []
