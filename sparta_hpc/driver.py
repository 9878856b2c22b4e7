"""The driver: walks the iterations and stages of a SPARTA run, submitting their jobs.

    python -m sparta_hpc.driver --config configs/tiny.yaml run.dir=runs/demo tribe.iterations=1
    python -m sparta_hpc.driver --config configs/tiny.yaml --dry-run

The run directory is the state: running the same command again resumes,
skipping finished stages and shards. A resume with a changed config is
refused unless --force-config. The driver never imports torch, transformers
or h5py: those load inside the jobs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace

from .config import Config, ConfigError, config_to_yaml, load_config, validate
from .events import EventLog, clock
from .instructions import load_instructions
from .io_utils import atomic_write_text, read_json
from .launch import StageFailed, run_stage
from .logs import setup_logging
from .paths import ARRAY_STAGES, JOB_STAGES, STAGES, RunPaths
from .stages import plan as plan_stage

log = logging.getLogger("sparta_hpc")


def lock_run(paths: RunPaths):
    """Hold RUN/driver.lock for the driver's lifetime: two drivers on one run would race for its shards.

    The lock is released by the kernel when the process dies, so a killed
    driver never leaves a stale lock behind.
    """
    import fcntl
    import os
    import socket

    paths.root.mkdir(parents=True, exist_ok=True)
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

    Changes under `cluster` alone (resources, time limits, executor, retries) are
    accepted: they say how the jobs run, not what they compute, and the usual fix
    after a time-limit kill is a larger `cluster.<stage>.time_min`. Returns (event,
    diff) for an accepted change (None: the same config, or a new run).
    """
    if not paths.config.exists():
        return None
    import difflib

    new = config_to_yaml(cfg)
    try:  # both sides through today's code, so that a field added since reads as its default
        started = load_config(paths.config)
        old = config_to_yaml(started)
        work_unchanged = config_to_yaml(replace(cfg, cluster=started.cluster)) == old
    except ConfigError:
        old, work_unchanged = paths.config.read_text(), False
    if old == new:
        return None
    diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "started with", "now"))
    if work_unchanged:
        log.info("continuing %s with changed cluster resources:\n%s", paths.root, diff)
        return "resources_changed", diff
    if not force:
        raise ConfigError(f"{paths.config}: this run was started with another config:\n{diff}\n"
                          "Use the same config to resume (changes under cluster.* are accepted), another "
                          "run.dir for a new run, or --force-config to continue with the new one.")
    log.warning("continuing %s with a changed config (--force-config):\n%s", paths.root, diff)
    return "config_forced", diff


def stage_tasks(cfg: Config, paths: RunPaths, stage: str, iteration: int) -> list[int | None]:
    """The tasks of a stage that are not done yet (finished shards and members are skipped)."""
    if stage not in ARRAY_STAGES:
        return [None]
    if stage == "train":
        return [i for i, m in enumerate(cfg.members) if not paths.is_done(iteration, "train", m.name)]
    plan = read_json(paths.plan(iteration))
    return [i for i, (g, k) in enumerate(plan[f"{stage}_tasks"])
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


def run_one_stage(cfg: Config, paths: RunPaths, events: EventLog, stage: str, iteration: int) -> None:
    if stage == "plan":
        plan_stage.run(cfg, paths, iteration)  # cheap, no model: in the driver
        events.write("stage_done", stage="plan", iteration=iteration)
        return
    run_stage(cfg, paths, events, stage, iteration, stage_tasks(cfg, paths, stage, iteration))
    if stage in ARRAY_STAGES:
        # gather and aggregate write their own markers; an array stage is
        # done once every one of its tasks is
        atomic_write_text(paths.marker(iteration, stage), "\n")


def first_plan(cfg: Config) -> dict:
    """Iteration 0's plan, computed in memory (nothing is written)."""
    return plan_stage.make_plan(cfg, 0, plan_stage.initial_ratings(cfg), set())


def dry_run(cfg: Config, paths: RunPaths, plan: dict) -> str:
    """The plan a person checks before spending cluster time."""
    groups = plan["groups"]
    lines = [f"run directory: {paths.root}" + ("  (exists: would resume)" if paths.config.exists() else ""),
             f"tribe: {len(cfg.members)} members, {cfg.tribe.iterations} iterations x "
             f"{cfg.tribe.duels_per_iteration} duels, seed {cfg.tribe.seed}, executor {cfg.cluster.executor}",
             "base-model groups (one model load per task serves the whole group):"]
    for g, members in enumerate(groups):
        lines.append(f"  group {g}: {cfg.members[members[0]].model}  <- "
                     + ", ".join(cfg.members[i].name for i in members))
    n_gen = -(-cfg.tribe.duels_per_iteration // cfg.generate.duels_per_shard)
    n_judge = -(-cfg.tribe.duels_per_iteration // cfg.judge.duels_per_shard)

    lines += ["per iteration:",
              "  plan       in the driver",
              f"  generate   job array: {len(plan['generate_tasks'])} tasks (iteration 0) = groups x {n_gen} shards "
              f"of {cfg.generate.duels_per_shard} duels [{cfg.generate.backend}]",
              f"  judge      job array: {len(plan['judge_tasks'])} tasks (iteration 0) = groups x {n_judge} shards "
              f"of {cfg.judge.duels_per_shard} duels, {cfg.judge.rounds} round(s), score: {cfg.judge.score} "
              f"[{cfg.judge_backend}]",
              "  gather     1 CPU job -> one HDF5 archive",
              "  aggregate  1 CPU job -> ratings, preference pairs",
              f"  train      {len(cfg.members)} DPO jobs, one per member (LoRA r={cfg.train.lora_r}, "
              f"lr {cfg.train.learning_rate}, beta {cfg.train.beta}"
              + (f", DeepSpeed {cfg.train.deepspeed}" if cfg.train.deepspeed else "") + ")",
              ] + resource_lines(cfg)
    return "\n".join(lines)


def resource_lines(cfg: Config) -> list[str]:
    c = cfg.cluster
    if c.executor == "local":
        return [f"resources: local executor, {c.local_parallel} task(s) at a time, {c.local_threads} threads each"]
    if c.executor == "debug":
        return ["resources: debug executor, every task inside the driver's process"]
    lines = ["resources (Slurm, per job):"]
    for stage in JOB_STAGES:
        r = getattr(c, stage)
        where = " ".join(f"{k}={getattr(r, k)}" for k in ("partition", "account", "qos", "constraint")
                         if getattr(r, k))
        lines.append(f"  {stage:10s} {r.nodes} node(s) x {r.tasks_per_node} task(s), {r.gpus_per_node} GPU(s)/node, "
                     f"{r.cpus_per_task} CPUs/task, {r.mem_gb} GB, {r.time_min} min, "
                     f"array parallelism {r.array_parallelism} {where}".rstrip())
    lines.append("  (python -m sparta_hpc.driver ... --dry-run --show-sbatch prints the sbatch scripts)")
    return lines


def sbatch_scripts(cfg: Config, paths: RunPaths, plan: dict) -> str:
    from .launch import sbatch_script

    counts = {"generate": len(plan["generate_tasks"]), "judge": len(plan["judge_tasks"]), "gather": 1,
              "aggregate": 1, "train": len(cfg.members)}
    return "\n".join(f"# ---- {stage}: {n} task(s) (iteration 0)\n" + sbatch_script(cfg, stage, n, str(paths.logs))
                     for stage, n in counts.items())


def summary_table(cfg: Config, paths: RunPaths) -> str:
    names = cfg.member_names()
    width = max(8, *(len(n) for n in names))
    head = f"{'iter':>4}  {'duels':>5}  {'judged':>6}  {'valid judgments':>15}  {'pairs':>5}  " + \
        "  ".join(f"{n:>{width}}" for n in names)
    rows = [head]
    for t in range(cfg.tribe.iterations):
        if not paths.summary(t).exists():
            break
        s = read_json(paths.summary(t))
        valid = f"{s['judgments'] - s['unparsed']}/{s['judgments']}"
        rows.append(f"{t:>4}  {s['duels']:>5}  {s['duels_with_judge']:>6}  {valid:>15}  {s['pairs']:>5}  "
                    + "  ".join(f"{s['ratings'][n]:>{width}.3f}" for n in names))
        silent = [f"{n} {r['unparsed']}/{r['judgments']}" for n, r in s["judges"].items() if r["unparsed"]]
        if silent:
            rows.append(f"{'':>4}  judgments without a parsable score: " + ", ".join(silent))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(prog="python -m sparta_hpc.driver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a YAML file (configs/*.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="section.name=value")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    parser.add_argument("--show-sbatch", action="store_true", help="with --dry-run: print the sbatch scripts")
    parser.add_argument("--force-config", action="store_true", help="resume even though the config changed")
    parser.add_argument("--stop-after", choices=STAGES, metavar="STAGE",
                        help="stop once this stage of the next unfinished iteration is done (e.g. judge, to "
                             "inspect answers and judgments first); the same command without it goes on")
    args = parser.parse_intermixed_args(argv)  # overrides may come before and after options
    try:
        cfg = load_config(args.config, args.overrides)
        validate(cfg)
        load_instructions(cfg.instructions)  # a bad instruction file fails here, not in a job
        paths = RunPaths(cfg.run.dir)
        changed = check_resume(cfg, paths, args.force_config)
    except ConfigError as err:
        log.error("config error: %s", err)
        return 2
    if args.dry_run:
        plan = first_plan(cfg)
        print(dry_run(cfg, paths, plan))
        if args.show_sbatch:
            print(sbatch_scripts(cfg, paths, plan))
        return 0
    try:
        lock = lock_run(paths)
    except ConfigError as err:
        log.error("%s", err)
        return 2
    with lock:  # released when the driver returns (the kernel drops it if the process dies)
        return drive(cfg, paths, args.stop_after, changed, sys.argv[1:] if argv is None else argv)


def drive(cfg: Config, paths: RunPaths, stop_after: str | None, changed: tuple[str, str] | None,
          argv: list[str]) -> int:
    """Walk the iterations of a locked run directory; the driver's exit status."""
    atomic_write_text(paths.config, config_to_yaml(cfg))
    events = EventLog(paths.events)
    events.write("driver_start", argv=argv)
    if changed:
        events.write(changed[0], diff=changed[1])
    start = time.time()
    try:
        for t in range(cfg.tribe.iterations):
            if not run_iteration(cfg, paths, events, t, stop_after):
                events.write("driver_stopped", iteration=t, stage=stop_after)
                log.info("stopped after %s of iteration %d (--stop-after); run again without it to go on",
                         stop_after, t)
                return 0
    except StageFailed as err:
        events.write("driver_failed", error=str(err))
        log.error("%s", err)
        return 1
    events.write("driver_done", seconds=round(time.time() - start, 2))
    log.info("run finished in %s; archive: %s", clock(time.time() - start), paths.root)
    print(summary_table(cfg, paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
