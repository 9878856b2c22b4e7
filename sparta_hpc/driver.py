"""The driver: walks the iterations and stages of a SPARTA run, submitting their jobs.

    sparta-hpc run configs/tiny.yaml run.dir=runs/demo tribe.iterations=1
    sparta-hpc run configs/tiny.yaml --dry-run
    python -m sparta_hpc.driver --config configs/tiny.yaml --dry-run   # the same driver (sbatch scripts use it)
    sparta-hpc init-tribe --config configs/tiny-sft.yaml   # = the driver with --stop-after sft

With sft.data set, the run starts with the sft stage (the initial tribe: one
expert adapter per member), then the initial evaluation and iteration 0.
The run directory is the state: running the same command again resumes,
skipping finished stages and shards. A resume with a changed config is
refused unless --force-config. The driver never imports torch, transformers
or h5py: those load inside the jobs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from . import methods, preflight, repair
from .config.overrides import add_override_arguments, given_overrides
from .config.schema import Config, config_to_yaml, load_config
from .errors import ConfigError, DamagedFile, DiskFull, StageFailed
from .eval import plan as eval_plan
from .eval import selected
from .eval import table as eval_table
from .launch import run_stage
from .report.overview import dry_run, first_plan, sbatch_scripts, stand_ins, summary_table, tribe_table
from .rundir import copies, provenance
from .rundir.events import (
    CONFIG_FORCED,
    DECONTAMINATED,
    DRIVER_DONE,
    DRIVER_FAILED,
    DRIVER_START,
    DRIVER_STOPPED,
    POLICY,
    RESOURCES_CHANGED,
    SELECTED_TESTS,
    STAGE_DONE,
    EventLog,
    clock,
)
from .rundir.files import atomic_write_json, atomic_write_text, private_run_dir, read_json
from .rundir.logs import setup_logging
from .rundir.paths import ARRAY_STAGES, EVAL_STAGES, INITIAL, RUN_STAGES, STAGES, RunPaths
from .rundir.plan import stage_plan
from .stages import plan as plan_stage

log = logging.getLogger("sparta_hpc")
REWALKS = 2  # walks again after a task found a damaged input mid-run


def lock_run(paths: RunPaths):
    """Hold RUN/driver.lock for the driver's lifetime: two drivers on one run would race for its shards.

    The lock is released by the kernel when the process dies, so a killed
    driver never leaves a stale lock behind.
    """
    import fcntl
    import os
    import socket

    try:
        private_run_dir(paths.root)  # and nothing the run writes is world-writable (umask)
    except PermissionError as err:
        raise ConfigError(str(err)) from None
    handle = open(paths.lock, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        raise ConfigError(f"{paths.root} is in use by another driver ({handle.read().strip() or 'unknown'}); "
                          "wait for it to finish or stop it first") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle


def check_resume(cfg: Config, paths: RunPaths, force: bool) -> tuple[str, str] | None:
    """Refuse to continue a run with a config other than the one it was started with.

    Changes under `cluster`, `eval`, `cost` and `run` alone (resources, time limits,
    executor, retries; what is evaluated; where the run directory now is) are
    accepted: they say how the jobs run and what is measured, not what the tribe
    computes, and the usual fix after a time-limit kill is a larger
    `cluster.<stage>.time_min`. Returns (event, diff) for an
    accepted change (None: the same config, or a new run).
    """
    if not paths.config.exists():
        return None
    import difflib

    new = config_to_yaml(cfg)
    try:  # both sides through today's code, so that a field added since reads as its default
        started = load_config(paths.config)
        old = config_to_yaml(started)
        unchanged = replace(cfg, run=started.run, cluster=started.cluster, eval=started.eval, cost=started.cost)
        work_unchanged = config_to_yaml(unchanged) == old
    except ConfigError:
        old, work_unchanged = paths.config.read_text(), False
    if old == new:
        return None
    diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "started with", "now"))
    if work_unchanged:
        log.info("continuing %s with changed cluster resources or evaluation settings:\n%s", paths.root, diff)
        return RESOURCES_CHANGED, diff
    if not force:
        raise ConfigError(f"{paths.config}: this run was started with another config:\n{diff}\n"
                          "Use the same config to resume (changes under cluster.* and eval.* are accepted), another "
                          "run.dir for a new run, or --force-config to continue with the new one.")
    log.warning("continuing %s with a changed config (--force-config):\n%s", paths.root, diff)
    return CONFIG_FORCED, diff


def stage_tasks(cfg: Config, paths: RunPaths, stage: str, iteration: int) -> list[int | None]:
    """The tasks of a stage that are not done yet (finished shards and members are skipped)."""
    if stage not in ARRAY_STAGES:
        return [None]
    if stage == "sft":  # one task per member (`iteration` is INITIAL)
        return [i for i, m in enumerate(cfg.members) if not paths.is_done(iteration, stage, m.name)]
    if stage == "train":
        return [i for i in methods.trainees(cfg, paths) if not paths.is_done(iteration, "train", cfg.members[i].name)]
    plan = stage_plan(paths, stage, iteration)  # evaluation stages: `iteration` is the evaluation point
    if stage in EVAL_STAGES:
        shards = plan[f"{stage}_shards"]
        if stage == "evaluate":
            return [n for n, (g, k) in enumerate(plan.tasks(stage))
                    if not paths.eval_shard(iteration, stage, shards[k]["name"], g).exists()]
        return [n for n, k in enumerate(plan.tasks(stage))
                if not paths.eval_shard(iteration, stage, shards[k]["name"]).exists()]
    return [i for i, (g, k) in enumerate(plan.tasks(stage))
            if not paths.shard(iteration, stage, g, k).exists()]


def run_iteration(cfg: Config, paths: RunPaths, events: EventLog, iteration: int,
                  stop_after: str | None = None) -> bool:
    """Run the stages of one iteration that are not done; False if it stopped at `stop_after`."""
    if paths.is_done(iteration, STAGES[-1]):
        return True
    for stage in STAGES:
        if not paths.is_done(iteration, stage):
            run_one_stage(cfg, paths, events, stage, iteration)
        if stage == stop_after:
            return False
    return True


def run_eval_point(cfg: Config, paths: RunPaths, events: EventLog, point: int, refresh: bool = False) -> None:
    """Evaluate every member at `point` (INITIAL, or after iteration `point`'s training): the
    point's plan (in the driver), the members' answers, the evaluator's ratings, the scores.

    A finished point is left alone unless `refresh` (`sparta-hpc eval`): then a plan
    that differs from the config's (tasks added, other settings) replaces it, and only
    the shards it does not have yet are computed.
    """
    if paths.is_done(point, EVAL_STAGES[-1]) and not refresh:
        return
    # a single-model method changes one member: after the start, only that one is evaluated
    members = None if point == INITIAL or cfg.method == "sparta" else methods.trainees(cfg, paths)
    # eval.test selected: once dev has chosen, the point's plan holds its selected test items too
    tests = selected.selected_tests(cfg, paths).get(point)
    plan = eval_plan.make_plan(cfg, paths, point, members, tests)
    if _read_or_none(paths.eval_plan(point)) != plan:  # none yet, another one, or an unreadable one
        for stage in EVAL_STAGES:
            paths.marker(point, stage).unlink(missing_ok=True)
        atomic_write_json(paths.eval_plan(point), plan)
    for stage in EVAL_STAGES:
        if not paths.is_done(point, stage):
            run_one_stage(cfg, paths, events, stage, point)


def run_selected_tests(cfg: Config, paths: RunPaths, events: EventLog) -> None:
    """eval.test selected: after the last point's dev evaluation, the test split of each task for the
    member x point that dev selects (BEST INIT, the selected model), at each such point; a point
    already done is left alone, a crash re-runs only the missing shards."""
    chosen = selected.selected_tests(cfg, paths)
    if chosen:
        events.write(SELECTED_TESTS, points={str(p): tests for p, tests in sorted(chosen.items())})
    for point in sorted(chosen):
        run_eval_point(cfg, paths, events, point, refresh=True)


def _read_or_none(path):
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def run_one_stage(cfg: Config, paths: RunPaths, events: EventLog, stage: str, iteration: int) -> None:
    if stage == "plan":
        pool = plan_stage.run(cfg, paths, iteration)  # cheap, no model: in the driver
        if pool and pool.get("split"):  # the instructions left out of this iteration's pool, per task
            events.write(DECONTAMINATED, iteration=iteration, **pool)
        events.write(STAGE_DONE, stage="plan", iteration=iteration)
    else:
        run_stage(cfg, paths, events, stage, iteration, stage_tasks(cfg, paths, stage, iteration))
        if stage in ARRAY_STAGES:
            # gather and aggregate write their own markers; an array stage is
            # done once every one of its tasks is
            atomic_write_text(paths.marker(iteration, stage), "\n")
    repair.after_stage(cfg, paths, events, stage, iteration)  # recomputed units vs. what they replaced


def add_arguments(parser: argparse.ArgumentParser, config_positional: bool = False) -> None:
    """The driver's command line, one definition for `python -m sparta_hpc.driver --config CONFIG`
    and `sparta-hpc run CONFIG` (`config_positional`: CONFIG positional, `--config` still taken)."""
    if config_positional:
        parser.add_argument("config", nargs="?", metavar="CONFIG", help="a YAML file (configs/*.yaml)")
        parser.add_argument("--config", dest="config_option", metavar="CONFIG",
                            help="the same, as `python -m sparta_hpc.driver` takes it")
    else:
        parser.add_argument("--config", required=True, help="a YAML file (configs/*.yaml)")
    add_override_arguments(parser, example="run.dir=runs/demo tribe.iterations=1")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    parser.add_argument("--show-sbatch", action="store_true", help="with --dry-run: print the sbatch scripts")
    parser.add_argument("--force-config", action="store_true", help="resume even though the config changed")
    parser.add_argument("--stop-after", choices=RUN_STAGES + STAGES, metavar="STAGE",
                        help="stop once this stage of the next unfinished iteration is done (e.g. judge, to "
                             "inspect answers and judgments first; sft: once the initial tribe is trained); "
                             "the same command without it goes on")
    parser.add_argument("--current-code", action="store_true",
                        help="resume with the checkout's code (a new snapshot) instead of the run's snapshot")


def driver_argv(args: argparse.Namespace) -> list[str]:
    """The words of `python -m sparta_hpc.driver` for parsed arguments: what `sparta-hpc run`
    records as the driver's command line and re-executes from the run's code snapshot."""
    flags = [("--dry-run", args.dry_run), ("--show-sbatch", args.show_sbatch),
             ("--force-config", args.force_config), ("--current-code", args.current_code)]
    return (["--config", str(args.config), *args.overrides] + [flag for flag, on in flags if on]
            + (["--stop-after", args.stop_after] if args.stop_after else []))


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(prog="python -m sparta_hpc.driver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_intermixed_args(argv)  # overrides may come before and after options
    args.overrides = given_overrides(args, [])
    return run(args, sys.argv[1:] if argv is None else argv, reexec=argv is None)


def run_command(args: argparse.Namespace) -> int:
    """`sparta-hpc run CONFIG [overrides]`: the driver, as `python -m sparta_hpc.driver --config CONFIG` runs."""
    if (args.config is None) == (args.config_option is None):
        log.error("run: give the config once: sparta-hpc run CONFIG [section.name=value ...]")
        return 2
    args.config = args.config or args.config_option
    return run(args, driver_argv(args), reexec=args.from_shell)


def init_tribe(args: argparse.Namespace) -> int:
    """`sparta-hpc init-tribe`: the driver, stopping once the sft stage is done: the same config
    without it goes on into SPARTA."""
    return main(["--config", args.config, *args.overrides, "--stop-after", "sft"]
                + (["--dry-run"] if args.dry_run else []))


def run(args: argparse.Namespace, argv: list[str], reexec: bool) -> int:
    """The driver on parsed arguments; `argv`: its command line (recorded, and re-executed from the
    run's code snapshot when `reexec`: a driver process of its own, not a call from a test or a suite)."""
    try:
        cfg = load_config(args.config, args.overrides)
        # a dry run shows the plan and its cost before the models are downloaded: missing model and
        # adapter folders are warnings there (a run refuses them)
        missing: list[str] | None = [] if args.dry_run else None
        paths = RunPaths(cfg.run.dir)
        # once the sft stage is done its (possibly gigabytes of) data is not read again: a changed
        # sft section is refused by check_resume
        checked = preflight.check(cfg, missing=missing, sft_done=paths.is_done(INITIAL, "sft"))
        if args.stop_after == "sft" and not cfg.sft.data:
            raise ConfigError("--stop-after sft (init-tribe): this config has no sft stage; set sft.data "
                              "(a .jsonl/.json/.parquet of chat rows, or demo) and the members' sft_source")
        changed = check_resume(cfg, paths, args.force_config)
    except ConfigError as err:
        log.error("config error: %s", err)
        return err.exit_code
    if args.dry_run:
        for problem in missing or []:
            log.warning("not there yet (a run would refuse it): %s", problem)
        instructions = checked.instructions
        plan = first_plan(cfg, instructions if instructions is not None else stand_ins(cfg))
        print(dry_run(cfg, paths, plan, checked.sft_sizes, checked.pool))
        if args.show_sbatch:
            print(sbatch_scripts(cfg, paths, plan))
        return 0
    try:
        lock = lock_run(paths)
    except ConfigError as err:
        log.error("%s", err)
        return err.exit_code
    if reexec and not args.current_code:
        reexec_from_snapshot(paths, argv)  # a resume runs the code the run started with (returns if it does)
    with lock:  # released when the driver returns (the kernel drops it if the process dies)
        return drive(cfg, paths, argv, changed, args.stop_after, current_code=args.current_code)


def reexec_from_snapshot(paths: RunPaths, argv: list[str]) -> None:
    """Run this driver from the run's code snapshot when it is not already (a resume after the
    checkout changed): jobs and driver then execute the code the run started with."""
    if not paths.provenance.exists():
        return
    code = read_json(paths.provenance).get("code", {})
    package = Path(code.get("snapshot", ""), "sparta_hpc")
    if not package.is_dir() or package.resolve() == Path(__file__).resolve().parent:
        return
    log.info("resuming with the run's code snapshot %s (git %s%s, taken %s); --current-code runs the checkout's",
             code["snapshot"], code.get("commit"), ", dirty" if code.get("dirty") else "", code.get("taken"))
    pythonpath = [code["snapshot"]] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath), PYTHONSAFEPATH="1")
    os.execve(sys.executable, [sys.executable, "-m", "sparta_hpc.driver", *argv], env)


def evaluate(cfg: Config, points: list[int], argv: list[str]) -> int:
    """`sparta-hpc eval`: only evaluation points of a run (or of models outside one), under the
    run's lock, resumable like the rest; `cfg` must differ from the run's only in eval.* and cluster.*."""
    paths = RunPaths(cfg.run.dir)
    try:
        changed = check_resume(cfg, paths, force=False)
        lock = lock_run(paths)
    except ConfigError as err:
        log.error("%s", err)
        return err.exit_code
    with lock:
        return drive(cfg, paths, argv, changed, points=points)


def run_all(cfg: Config, paths: RunPaths, events: EventLog, stop_after: str | None) -> bool:
    """The sft stage (with sft.data), then every iteration, each followed by its evaluation point;
    False: stopped at `stop_after`."""
    repair.resume_check(cfg, paths, events)  # damaged files the pending work would read: recomputed
    if cfg.sft.data:
        if not paths.is_done(INITIAL, "sft"):
            run_one_stage(cfg, paths, events, "sft", INITIAL)
        if stop_after == "sft":
            events.write(DRIVER_STOPPED, iteration=INITIAL, stage="sft")
            print(tribe_table(cfg, paths))
            log.info("stopped after sft (--stop-after, init-tribe): the initial tribe is trained; run the same "
                     "config without it to go on into SPARTA")
            return False
    points = eval_plan.eval_points(cfg)
    if INITIAL in points:
        run_eval_point(cfg, paths, events, INITIAL)
    if cfg.method != "sparta":
        events.write(POLICY, member=methods.choose_policy(cfg, paths))
    for t in range(cfg.tribe.iterations):
        if not run_iteration(cfg, paths, events, t, stop_after):
            events.write(DRIVER_STOPPED, iteration=t, stage=stop_after)
            log.info("stopped after %s of iteration %d (--stop-after); run again without it to go on",
                     stop_after, t)
            return False
        if t in points:
            run_eval_point(cfg, paths, events, t)
        copies.copy_iteration(cfg.run.archive_dir, [m.name for m in cfg.members], paths, events, t)  # checked by sha256
    run_selected_tests(cfg, paths, events)
    return True


def drive(cfg: Config, paths: RunPaths, argv: list[str], changed: tuple[str, str] | None = None,
          stop_after: str | None = None, points: list[int] | None = None, current_code: bool = False) -> int:
    """Walk a locked run directory: its iterations and evaluation points, or with `points`
    only those evaluation points (`sparta-hpc eval`); the driver's exit status."""
    events = EventLog(paths.events)
    if cfg.cluster.executor == "debug":  # every task runs in this process, on the code it imported
        code = {"snapshot": None, "source": str(Path(__file__).resolve().parent)}
    else:  # every job imports the run's snapshot
        code = provenance.use_snapshot(paths, current_code)
    provenance.write_config(paths, config_to_yaml(cfg))
    events.write(DRIVER_START, argv=argv, code=code.get("snapshot"), commit=code.get("commit"),
                 dirty=code.get("dirty"))
    if changed:
        events.write(changed[0], diff=changed[1])
    start = time.time()
    for walk in range(REWALKS + 1):
        try:
            if points is None and not run_all(cfg, paths, events, stop_after):
                return 0
            if points is not None:
                repair.resume_check(cfg, paths, events, points)
            for point in points or []:
                run_eval_point(cfg, paths, events, point, refresh=True)
            if points is not None:
                run_selected_tests(cfg, paths, events)
            break
        except (StageFailed, DamagedFile, DiskFull) as err:
            # a task found a damaged input (it names it): invalidate it and walk again
            if walk < REWALKS and not isinstance(err, DiskFull) and repair.resume_check(cfg, paths, events, points):
                log.warning("%s\nrecomputing what was damaged and resuming", err)
                continue
            events.write(DRIVER_FAILED, error=str(err))
            log.error("%s", err)
            return err.exit_code
    events.write(DRIVER_DONE, seconds=round(time.time() - start, 2))
    log.info("finished in %s: %s", clock(time.time() - start), paths.root)
    if points is None:
        print(summary_table(cfg, paths))
    if paths.evaluated_points():
        print(eval_table.render(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
