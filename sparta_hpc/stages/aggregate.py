"""Aggregate: reputation-weighted winners, the reputation update, preference pairs (SPEC 1.5-1.7).

Reads the archive's judge scores, runs the algorithm core, adds its results
to the archive and writes the ratings for the next iteration and the pairs
for training (TRL's conversational format; each member's system prompt is
added by its own training job). A single-model method builds its pairs with
its own rule (sparta_hpc.methods) and leaves the ratings as they are.
"""

from __future__ import annotations

import json
import logging

from ..algorithm.variants import run_iteration
from ..config.schema import Config
from ..methods import previous_iterations
from ..methods.rows import baseline_rows, counts
from ..rundir.archive import pair_rows, read_archive, read_judged, write_aggregated, write_pairs
from ..rundir.files import atomic_write_bytes, atomic_write_json, atomic_write_text, mark_done
from ..rundir.manifest import check_file, digest_file, record_files, write_record
from ..rundir.paths import RunPaths
from ..rundir.ratings import earlier_ratings, load_ratings, ratings_to_json
from .common import stage_main
from .tracking import iteration_metrics, log_pipeline

log = logging.getLogger(__name__)


def archive_recorder(paths: RunPaths, iteration: int):
    """Record the completed archive copy before it replaces the gathered one: a rerun after a crash
    between that rename and the marker then finds an archive it recognises."""
    def record(tmp):
        write_record(paths, iteration, "aggregate", paths.marker(iteration, "aggregate"),
                     {paths.archive(iteration): digest_file(tmp)})
    return record


def finish(paths: RunPaths, iteration: int) -> None:
    """The aggregate's record (archive, pairs, summary, next ratings), then its marker."""
    marker = paths.marker(iteration, "aggregate")
    record_files(paths, iteration, "aggregate", marker, [paths.archive(iteration), paths.pairs(iteration),
                                                         paths.summary(iteration), paths.ratings(iteration + 1)])
    mark_done(marker)


def used(report: dict) -> int:
    """The judgments whose score the algorithm used (an archive gathered before `used` was counted:
    the parsed ones)."""
    return sum(r.get("used", r["judgments"] - r["unparsed"]) for r in report.values())


def run_baseline(cfg: Config, paths: RunPaths, iteration: int) -> None:
    names = cfg.member_names()
    check_file(paths, paths.archive(iteration))
    archive = read_archive(paths.archive(iteration))
    rows = baseline_rows(cfg, archive, names)
    write_pairs(paths.archive(iteration), rows, archive_recorder(paths, iteration))
    atomic_write_text(paths.pairs(iteration), "".join(json.dumps(r) + "\n" for r in rows))
    check_file(paths, paths.ratings(iteration))
    atomic_write_bytes(paths.ratings(iteration + 1), paths.ratings(iteration).read_bytes())
    report = json.loads(archive["attrs"]["judge_report"])
    summary = {"method": cfg.method, **counts(rows, len(archive["instructions/text"])),
               "judgments": sum(r["judgments"] for r in report.values()),
               "unparsed": sum(r["unparsed"] for r in report.values()), "used": used(report), "judges": report}
    earlier = previous_iterations(cfg, iteration)
    if earlier:  # SPIN: the training job adds these iterations' pairs (stages/train.py training_rows_for)
        summary["pairs_previous"] = sum(len(paths.pairs(p).read_text().splitlines()) for p in earlier)
    atomic_write_json(paths.summary(iteration), summary)
    _, ratings = load_ratings(paths.ratings(iteration + 1))
    log_pipeline(cfg, paths, iteration + 1, iteration_metrics(summary, dict(zip(names, ratings.rating)),
                                                            dict(zip(names, ratings.deviation))))
    finish(paths, iteration)
    log.info("iteration %d (%s): %d response pairs, %d judge pairs from %d instructions%s", iteration, cfg.method,
             summary["pairs"], summary["judge_pairs"], summary["instructions"],
             f"; trained with iteration {iteration - 1}'s {summary['pairs_previous']} pairs (baseline.spin_previous)"
             if earlier else "")


def run(cfg: Config, paths: RunPaths, iteration: int) -> None:
    if paths.is_done(iteration, "aggregate"):
        return
    if cfg.method != "sparta":
        return run_baseline(cfg, paths, iteration)
    archive_path = paths.archive(iteration)
    check_file(paths, archive_path)  # the gathered archive (or the copy an interrupted aggregate recorded)
    duels, scores, before = read_judged(archive_path)
    names = cfg.member_names()
    after = earlier_ratings(paths, iteration, names) if cfg.reputation.authors_static else []
    result = run_iteration(before, duels, scores, cfg.reputation, iteration=iteration, ratings_after=after)
    write_aggregated(archive_path, result, archive_recorder(paths, iteration))
    archive = read_archive(archive_path)
    rows = pair_rows(archive, names)
    atomic_write_text(paths.pairs(iteration), "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write_json(paths.ratings(iteration + 1), ratings_to_json(names, result.ratings))
    report = json.loads(archive["attrs"]["judge_report"])
    margins = [r["score_chosen"] - r["score_rejected"] for r in rows]
    summary = {"method": "sparta", "duels": len(duels), "duels_with_judge": int((result.n_judges > 0).sum()),
               "judgments": sum(r["judgments"] for r in report.values()),
               "unparsed": sum(r["unparsed"] for r in report.values()), "used": used(report), "judges": report,
               "pairs": len(rows),
               "mean_margin": sum(margins) / len(margins) if margins else None,
               "ratings": {n: float(r) for n, r in zip(names, result.ratings.rating)}}
    atomic_write_json(paths.summary(iteration), summary)
    log_pipeline(cfg, paths, iteration + 1, iteration_metrics(summary, summary["ratings"],
                                                            dict(zip(names, result.ratings.deviation))))
    finish(paths, iteration)
    log.info("iteration %d: %d of %d duels had a valid judge, %d preference pairs", iteration,
             int((result.n_judges > 0).sum()), len(duels), len(rows))


if __name__ == "__main__":
    stage_main(__doc__, run, with_task=False)
