"""`sparta-hpc eval` and `sparta-hpc eval-table`: evaluation points of a run (or of a model outside
one) on benchmark tasks, and their table.

    sparta-hpc eval RUN_DIR [--iteration N | --initial] [eval.NAME=VALUE ...]
    sparta-hpc eval --model PATH [--adapter PATH] --tasks gsm8k,medqa --data-dir DIR --out DIR [eval.NAME=VALUE ...]
    sparta-hpc eval-table RUN_DIR [--format md|csv]

The points run through the driver (`driver.evaluate`): under the run's lock, resumable like the rest.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from .. import driver, preflight
from ..config.overrides import apply_overrides
from ..config.schema import Config, EvalConfig, MemberConfig, RunConfig, TribeConfig, load_config, resolve_paths
from ..errors import ConfigError
from ..eval.plan import eval_points
from ..eval.table import render
from ..rundir.paths import INITIAL, RunPaths

log = logging.getLogger("sparta_hpc")


def eval_config(args: argparse.Namespace) -> Config:
    """The config of an evaluation: the run's (with eval.*/cluster.* overrides), or one model outside a run."""
    if args.run_dir is not None:
        paths = RunPaths(args.run_dir)
        if not paths.config.exists():
            raise ConfigError(f"{args.run_dir}: not a run directory (no config.yaml); to evaluate a model outside "
                              "a run, use --model PATH --tasks ... --out DIR")
        return load_config(paths.config, args.overrides + [f"run.dir={paths.root}"])
    if not (args.model and args.tasks and args.out):
        raise ConfigError("give a run directory, or --model PATH --tasks TASK,... --out DIR")
    member = MemberConfig(name=args.name or Path(args.model).name, model=args.model, adapter=args.adapter,
                          system_prompt=args.system_prompt)
    cfg = Config(run=RunConfig(dir=str(args.out)), tribe=TribeConfig(members=[member], iterations=1),
                 eval=EvalConfig(tasks=args.tasks.split(","), data_dir=args.data_dir))
    cfg = apply_overrides(cfg, args.overrides)
    return resolve_paths(replace(cfg, eval=replace(cfg.eval, initial=True)))


def points_to_evaluate(cfg: Config, args: argparse.Namespace) -> list[int]:
    """The points asked for, each ready to be evaluated (its members trained), or ConfigError."""
    paths = RunPaths(cfg.run.dir)
    if args.run_dir is None or args.initial:
        points = [INITIAL]
    elif args.iteration is not None:
        points = [args.iteration]
    else:  # the run's schedule, as far as it has trained
        points = [p for p in eval_points(cfg) if p == INITIAL or paths.is_done(p, "train")]
    for p in points:
        if p == INITIAL and cfg.sft.data and not paths.is_done(INITIAL, "sft"):
            raise ConfigError(f"{paths.root}: the sft stage (the initial tribe) has not finished; run the "
                              "driver or `sparta-hpc init-tribe` on this run first")
        if p != INITIAL and not paths.is_done(p, "train"):
            raise ConfigError(f"{paths.root}: iteration {p} has not finished training; evaluate an "
                              "earlier iteration or --initial")
    return points


def command(args: argparse.Namespace) -> int:
    """`sparta-hpc eval`: the driver's exit status; 2 for a config or point that is refused."""
    try:
        cfg = eval_config(args)
        preflight.check(cfg, tribe=args.run_dir is not None, evaluation_only=True)
        if not cfg.eval.tasks:
            raise ConfigError("eval.tasks: no evaluation tasks configured; add e.g. eval.tasks=[gsm8k,medqa] "
                              "eval.data_dir=DIR")
        points = points_to_evaluate(cfg, args)
    except ConfigError as err:
        log.error("eval: %s", err)
        return 2
    return driver.evaluate(cfg, points, ["sparta-hpc", "eval", *args.argv])


def table(args: argparse.Namespace) -> int:
    """`sparta-hpc eval-table`: the table on stdout; 2 before any evaluation result."""
    paths = RunPaths(args.run_dir)
    if not paths.evaluated_points():
        log.error("eval-table: %s has no evaluation results yet (run `sparta-hpc eval %s`)", args.run_dir,
                  args.run_dir)
        return 2
    print(render(paths, args.format))
    return 0
