"""`sparta-hpc verify RUN`: is every finished file of a run what was recorded, and does the archive agree with itself?

    sparta-hpc verify runs/demo

1. Files: every file of every finished unit (manifest.py) exists with its recorded size and
   sha256; every unit a marker says is finished has its files and its record (a shard the plan
   lists under a finished stage, an adapter of a trained member).
2. Each aggregated iteration's archive against the plan, the shards, the files next to it and the
   algorithm: instructions and duels are the plan's; every answer slot has a response (the same
   text as its generate shard); only the plan's judges judged; each judge score is the mean of its
   valid rounds; the weighted scores, ratings and pairs equal a replay of the archived judgments
   (SPARTA; with the reputation settings archived with it); ratings_before / ratings_after equal
   RUN/ratings/iter_t.json / iter_{t+1}.json; pairs.jsonl holds the archive's pairs.
3. Each scored evaluation point: summary.json holds what the members' result files hold.

Prints a report and exits 1 naming every missing, changed or inconsistent file (0: all good;
2: not a run directory). Reads only; a rerun of the driver recomputes what pending work needs
(docs/faults.md).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadRecord
from ..rundir.copies import check_copies
from ..rundir.manifest import load_entries, problem, read_record
from ..rundir.paths import EVAL_STAGES, INITIAL, RunPaths, point_label, shard_unit, split_unit
from ..rundir.plan import Plan

log = logging.getLogger("sparta_hpc")


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: int = 0  # files checked against a record

    def text(self, root: Path) -> str:
        lines = [f"sparta-hpc verify {root}", f"{self.files} recorded files checked"] + [f"  {n}" for n in self.notes]
        if self.problems:
            lines += [f"{len(self.problems)} problem(s):"] + [f"  {p}" for p in self.problems]
            lines.append("Running the driver's command again recomputes the damaged files its pending work reads; "
                         "a finished iteration keeps its answers and judgments in its archive (docs/faults.md)")
        else:
            lines.append("OK: every recorded file matches and every archive is consistent")
        return "\n".join(lines)


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check_records(paths: RunPaths, report: Report) -> set[str]:
    """Every file of every finished unit against its record; returns the damaged relative paths."""
    entries, damaged = load_entries(paths), set()
    for record in paths.manifests():
        try:
            data = read_record(record)
        except (OSError, BadRecord) as err:
            report.problems.append(f"BAD RECORD {paths.relative(record)}: {err}")
            continue
        if not (paths.root / data["done"]).exists():
            report.notes.append(f"in progress: {data['unit']} ({paths.relative(record.parent.parent) or '.'})")
            continue
        for rel in data["files"]:
            if rel in damaged:
                continue
            report.files += 1
            what = problem(paths, paths.root / rel, entries)
            if what:
                damaged.add(rel)
                kind, _, detail = what.partition(": ")
                report.problems.append(f"{kind.upper()} {rel}" + (f": {detail}" if detail else ""))
    return damaged


def expected_units(paths: RunPaths, report: Report) -> None:
    """What the markers say is finished has its files and its record."""
    def need(unit_iter: int, unit: str, done: Path, what: str) -> None:
        if not done.exists():
            report.problems.append(f"MISSING {paths.relative(done)}: {what}")
        elif not paths.manifest(unit_iter, unit).exists():
            report.problems.append(f"NOT RECORDED {paths.relative(done)} (unit {unit}; a run from before "
                                   "manifests existed?)")

    for marker in sorted(paths.sft_root.glob("done/sft.*")):
        need(INITIAL, marker.name, marker, "")  # a member's marker is named as its unit
    for folder in sorted(paths.root.glob("iter_[0-9]*")):
        t = int(folder.name[len("iter_"):])
        plan = _plan(paths.plan(t)) if paths.is_done(t, "plan") else None
        for stage in ("plan", "gather", "aggregate"):
            if paths.is_done(t, stage):
                need(t, stage, paths.marker(t, stage), "")
        for stage in ("generate", "judge"):
            if plan and paths.is_done(t, stage):
                for g, k in plan.tasks(stage):
                    shard = paths.shard(t, stage, g, k)
                    need(t, shard_unit(stage, shard), shard, f"a shard of the finished {stage} stage")
        for marker in sorted(folder.glob("done/train.*")):
            member = split_unit(marker.name)[1]
            need(t, marker.name, marker, "")
            if not (paths.adapter(t, member) / "adapter_config.json").exists():
                report.problems.append(f"MISSING {paths.relative(paths.adapter(t, member))}/: trained member "
                                       f"{member}'s adapter")
    for point in eval_points_started(paths):
        plan = _plan(paths.eval_plan(point))
        if plan and paths.is_done(point, "evaluate"):
            for g, k in plan.tasks("evaluate"):
                shard = paths.eval_shard(point, "evaluate", plan["evaluate_shards"][k]["name"], g)
                need(point, shard_unit("evaluate", shard), shard, "an answer shard")
        if plan and paths.is_done(point, "rate"):
            for k in plan.tasks("rate"):
                shard = paths.eval_shard(point, "rate", plan["rate_shards"][k]["name"])
                need(point, shard_unit("rate", shard), shard, "a rating shard")
        if paths.is_done(point, "score"):
            need(point, "score", paths.marker(point, "score"), "")


def eval_points_started(paths: RunPaths) -> list[int]:
    """Evaluation points with a plan (finished or not), INITIAL first."""
    found = [INITIAL] if paths.eval_plan(INITIAL).exists() else []
    return found + sorted(int(p.parent.name[len("iter_"):]) for p in paths.root.glob("eval/iter_*/plan.json"))


def same(a, b) -> bool:
    """Arrays equal, NaN equal to NaN."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return bool(np.array_equal(a.astype(float), b.astype(float), equal_nan=True))
    return bool(np.array_equal(a, b))


def _plan(path: Path) -> Plan | None:
    data = _json(path)
    return None if data is None else Plan(data)


def _ratings_equal(file_ratings, archive_ratings) -> bool:
    return (same(file_ratings.rating, archive_ratings.rating)
            and same(file_ratings.deviation, archive_ratings.deviation)
            and file_ratings.history == archive_ratings.history)


def check_archive(paths: RunPaths, t: int, damaged: set[str] = frozenset()) -> list[str]:
    """The aggregated archive of iteration t against its plan, shards, neighbours and a replay."""
    from ..errors import RatingsError
    from ..rundir.archive import pair_rows, read_archive, read_ratings_from
    from ..rundir.ratings import load_ratings

    where = f"INCONSISTENT iteration {t}:"
    a, plan = read_archive(paths.archive(t)), _plan(paths.plan(t))
    if plan is None:
        return [f"{where} plan.json is unreadable"]
    names, out = json.loads(a["attrs"]["members"]), []
    if names != plan["members"]:
        out.append(f"{where} the archive's members {names} are not the plan's {plan['members']}")
    if a["instructions/id"].tolist() != [r["id"] for r in plan["instructions"]] or \
            a["instructions/text"].tolist() != [r["text"] for r in plan["instructions"]]:
        out.append(f"{where} the archive's instructions are not the plan's")
    authors = np.array(plan["authors"], dtype=np.int64)
    if not same(a["responses/author"], authors):
        out.append(f"{where} the archive's answer authors (duels) are not the plan's")
    n, slots = authors.shape
    out += _responses(paths, plan, a, t, where, damaged)
    allowed = np.zeros((n, len(names)), dtype=bool)
    for c, judges in enumerate(plan["judges"]):
        allowed[c, judges] = True
    raw = a["judgments/raw"]
    judged = (raw != "").any(axis=(2, 3)) | np.isfinite(a["judgments/parsed"]).any(axis=(2, 3))
    if (judged & ~allowed).any():
        c, j = np.argwhere(judged & ~allowed)[0]
        out.append(f"{where} member {names[j]} judged instruction {c} but the plan's judges are "
                   f"{[names[x] for x in plan['judges'][c]]}")
    source = a["judgments/expected"] if _score_kind(a) == "expected" else a["judgments/parsed"]
    with np.errstate(invalid="ignore"):
        valid = ~np.isnan(source)
        mean = np.where(valid.any(axis=3), np.nansum(source, axis=3) / valid.sum(axis=3), np.nan)
    if not same(mean, a["judgments/score"]):
        out.append(f"{where} judgments/score is not the mean of each judge's valid rounds")
    try:
        _, start = load_ratings(paths.ratings(t))
        _, end = load_ratings(paths.ratings(t + 1))
    except RatingsError as err:
        return out + [f"{where} {err}"]
    if not _ratings_equal(start, read_ratings_from(paths.archive(t), "ratings_before")):
        out.append(f"{where} ratings_before differs from {paths.relative(paths.ratings(t))}")
    rows = [json.loads(line) for line in paths.pairs(t).read_text().splitlines() if line.strip()]
    if plan["method"] == "sparta":
        out += _replay(paths, a, names, t, end, where)
        if rows != pair_rows(a, names):
            out.append(f"{where} pairs.jsonl does not hold the archive's pairs")
    else:
        if rows != [json.loads(x) for x in a["pairs/json"]]:
            out.append(f"{where} pairs.jsonl does not hold the archive's pairs")
        if paths.ratings(t + 1).read_bytes() != paths.ratings(t).read_bytes():
            out.append(f"{where} a single-model method's ratings moved ({paths.relative(paths.ratings(t + 1))})")
    summary = _json(paths.summary(t)) or {}
    if summary.get("pairs") is not None and plan["method"] == "sparta" and summary["pairs"] != len(rows):
        out.append(f"{where} summary.json counts {summary['pairs']} pairs, pairs.jsonl holds {len(rows)}")
    return out


def _score_kind(a: dict) -> str:
    import yaml

    return (yaml.safe_load(a["attrs"]["config"]).get("judge") or {}).get("score", "parsed")


def _responses(paths: RunPaths, plan: Plan, a: dict, t: int, where: str, damaged: set[str]) -> list[str]:
    """Every answer slot has a response; it is its generate shard's (where the shards are intact)."""
    out, seen = [], set()
    shards = [(g, k) for g, k in plan.tasks("generate")
              if paths.relative(paths.shard(t, "generate", g, k)) not in damaged]
    text = a["responses/text"]
    if text.shape != np.array(plan["authors"]).shape:
        return [f"{where} responses/text has shape {text.shape}, the plan {np.array(plan['authors']).shape}"]
    for g, k in shards:
        shard = _json(paths.shard(t, "generate", g, k))
        for r in (shard or {}).get("responses", []):
            seen.add((r["duel"], r["side"]))
            if text[r["duel"], r["side"]] != r["text"]:
                out.append(f"{where} the archived answer of instruction {r['duel']} slot {r['side']} is not "
                           f"the one in {paths.relative(paths.shard(t, 'generate', g, k))}")
                break
        if shard is None and paths.shard(t, "generate", g, k).exists():
            out.append(f"{where} {paths.relative(paths.shard(t, 'generate', g, k))} is unreadable")
    absent = [(c, s) for c in range(text.shape[0]) for s in range(text.shape[1]) if (c, s) not in seen]
    if absent and len(shards) == len(plan.tasks("generate")) and \
            all(paths.shard(t, "generate", g, k).exists() for g, k in shards):
        out.append(f"{where} no generate shard holds the answer of instruction {absent[0][0]} slot {absent[0][1]} "
                   f"({len(absent)} missing)")
    return out


def _replay(paths: RunPaths, a: dict, names: list[str], t: int, end, where: str) -> list[str]:
    """The archived judgments through the reputation system, with the settings archived with them."""
    import yaml

    from ..algorithm.reputation import ReputationConfig
    from ..algorithm.variants import run_iteration
    from ..config.overrides import from_dict
    from ..rundir.archive import read_ratings_from
    from ..rundir.ratings import earlier_ratings

    rep = from_dict(ReputationConfig, yaml.safe_load(a["attrs"]["config"]).get("reputation") or {}, "reputation.")
    duels = np.stack([a["duels/a"], a["duels/b"]], axis=1)
    after = earlier_ratings(paths, t, names) if rep.authors_static else []
    result = run_iteration(read_ratings_from(paths.archive(t)), duels, a["judgments/score"], rep, iteration=t,
                           ratings_after=after)
    out = []
    for key, value in (("weighted_scores/final", result.final_scores), ("weighted_scores/update", result.update_scores),
                       ("weighted_scores/n_judges", result.n_judges), ("pairs/duel", result.pair_duels),
                       ("pairs/chosen", result.pairs[:, 0]), ("pairs/rejected", result.pairs[:, 1]),
                       ("pairs/score_chosen", result.pair_scores[:, 0]),
                       ("ratings_after/rating", result.ratings.rating)):
        if not same(a[key], value):
            out.append(f"{where} {key} differs from a replay of the archived judgments")
    if not _ratings_equal(end, result.ratings):
        out.append(f"{where} {paths.relative(paths.ratings(t + 1))} differs from the ratings a replay of the "
                   "archived judgments ends with")
    return out


def check_eval_point(paths: RunPaths, point: int) -> list[str]:
    summary = _json(paths.eval_summary(point))
    where = f"INCONSISTENT evaluation point {point_label(point, '{}')}:"
    if summary is None:
        return [f"{where} summary.json is unreadable"]
    out = []
    for member, tasks in summary["scores"].items():
        for task, per_split in tasks.items():
            result = _json(paths.eval_result(point, member, task)) or {}
            if any(result.get(split) != figures for split, figures in per_split.items()):
                out.append(f"{where} {member}/{task}.json differs from summary.json")
    return out


def verify(run_dir: Path) -> Report:
    paths = RunPaths(Path(run_dir))
    report = Report()
    damaged = check_records(paths, report)
    expected_units(paths, report)
    for folder in sorted(paths.root.glob("iter_[0-9]*")):
        t = int(folder.name[len("iter_"):])
        if not paths.is_done(t, "aggregate"):
            continue
        needed = [paths.archive(t), paths.plan(t), paths.pairs(t), paths.ratings(t), paths.ratings(t + 1)]
        if any(paths.relative(f) in damaged or not f.exists() for f in needed):
            report.notes.append(f"iteration {t}: archive consistency not checked (a file it needs is damaged "
                                "or missing)")
            continue
        found = check_archive(paths, t, damaged)
        report.problems += found
        if not found:
            report.notes.append(f"iteration {t}: archive consistent with its plan, shards, pairs and ratings")
    for point in paths.evaluated_points():
        if paths.is_done(point, EVAL_STAGES[-1]):
            report.problems += check_eval_point(paths, point)
    copied, problems = check_copies(paths)  # the copies in run.archive_dir
    report.problems += problems
    if copied:
        report.notes.append(f"{copied} file(s) copied to long-term storage checked against their sha256")
    return report


def command(args: argparse.Namespace) -> int:
    """`sparta-hpc verify`: the report on stdout; 1 naming problems, 2 for no run directory."""
    if not RunPaths(args.run_dir).config.exists():
        log.error("verify: %s is not a run directory (no config.yaml)", args.run_dir)
        return 2
    report = verify(args.run_dir)
    print(report.text(args.run_dir))
    return 1 if report.problems else 0
