"""`sparta-hpc`: the command-line tools around a run.

    sparta-hpc replay DUELS.jsonl --ratings RATINGS.json --out OUT.json [--set reputation.NAME=VALUE ...]
    sparta-hpc simulate [--members 10 --iterations 8 --duels 1000 --seed 42] [--set reputation.NAME=VALUE ...]
                        [--panel-sizes 1,3,5,all]
    sparta-hpc export RUN_DIR --iteration N [--out DIR] [--duels]
    sparta-hpc eval RUN_DIR [--iteration N | --initial] [eval.NAME=VALUE ...]
    sparta-hpc eval --model PATH [--adapter PATH] --tasks gsm8k,medqa --data-dir DIR --out DIR [eval.NAME=VALUE ...]
    sparta-hpc eval-table RUN_DIR [--format md|csv]
    sparta-hpc compare RUN_DIR [RUN_DIR ...] [--format md|csv] [--selection best-dev|last] [--seed 0]
    sparta-hpc init-tribe --config CONFIG [--dry-run] [section.name=value ...]
    sparta-hpc score TASK PREDICTIONS.jsonl
    sparta-hpc status RUN_DIR [--watch [SECONDS]] [--events N]
    sparta-hpc report RUN_DIR [--out DIR]
    sparta-hpc verify RUN_DIR
    sparta-hpc data prepare --out DIR [--tasks t1,t2] [--sparta-repo PATH|URL] [--model-swarm-repo PATH|URL]
                            [--alpaca-eval-repo PATH|URL]
                            [--authors-pools] [--math-test PATH] [--eval-file TASK=PATH] [--tulu PATH]
    sparta-hpc suite plan|submit|status|table SUITE.yaml [--format md|csv] [--dry-run] [--selection best-dev|last]
                     [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config.overrides import apply_overrides
from .errors import ConfigError, PrepareError, ReplayInputError, SpartaError
from .rundir.logs import setup_logging

log = logging.getLogger("sparta_hpc")


def cmd_replay(args: argparse.Namespace) -> int:
    from .commands.replay import replay

    try:
        out = replay(args.duels, args.ratings, args.out, args.set, args.iteration, args.run_dir)
    except (ReplayInputError, ConfigError) as err:
        log.error("replay: %s", err)
        log.error("replay: nothing was written to %s", args.out)
        return 2
    log.info("replay: %d duels -> %d preference pairs, written to %s",
             len(out["weighted_scores"]), len(out["preferences"]), args.out)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from .commands.simulate import SimulationConfig, check_panel, simulate, variant_order, variants, with_variant

    cfg = SimulationConfig(members=args.members, iterations=args.iterations, duels=args.duels, seed=args.seed)
    try:
        cfg = apply_overrides(cfg, args.set)
        cfg.reputation.validate()
        cfg.matchmaking.validate()
        if cfg.members < 3:
            raise ConfigError(f"members must be >= 3, got {cfg.members}")
        sizes = panel_sizes(args.panel_sizes) if args.panel_sizes else []
        for size in sizes + [cfg.panel_size]:
            check_panel(cfg, size)
    except (ConfigError, ValueError) as err:
        log.error("simulate: %s", err)
        return 2
    if sizes:
        print_panel_sweep(cfg, sizes)
        return 0
    # Every setting (column) under both reputation variants (rows), on the same simulated judgments.
    settings = variants(cfg)
    kinds = variant_order(cfg)
    results = {(name, kind): simulate(with_variant(v, kind)) for name, v in settings.items() for kind in kinds}
    labels = {kind: kind + ("+static" if kind == "authors" and cfg.reputation.authors_static else "")
              for kind in kinds}
    print(f"synthetic tribe: {cfg.members} members, {cfg.iterations} iterations x {cfg.duels} duels, "
          f"seed {cfg.seed}" + (" (reputation.frozen: ratings never change)" if cfg.reputation.frozen else "")
          + (f"; judge panels of {cfg.panel_size} ({cfg.panel_sampling}), spec only" if cfg.panel_size else ""))
    print("tau = Kendall tau of reputation vs. true quality; acc = share of pairs whose chosen answer is better")
    print("spec = SPEC 1.6; authors = the authors' rating code (docs/algorithm.md, Variants)")
    width = max(len(n) for n in settings)
    lw = max(len(label) for label in labels.values())
    print(f"iter  {'variant':{lw}}  " + "  ".join(f"{n:>{width}}" for n in settings))
    print(f"      {'':{lw}}  " + "  ".join(f"{'tau    acc  pairs':>{width}}" for _ in settings))
    for t in range(cfg.iterations):
        for i, kind in enumerate(kinds):
            cells = [f"{r[t].kendall_tau:+.3f}  {r[t].pair_accuracy:.3f} {r[t].pairs:5d}"
                     for r in (results[name, kind] for name in settings)]
            head = f"{t:4d}" if i == 0 else "    "
            print(f"{head}  {labels[kind]:{lw}}  " + "  ".join(f"{c:>{width}}" for c in cells))
    return 0


def panel_sizes(text: str) -> list[int | None]:
    """'1,3,all' -> [1, 3, None]."""
    try:
        return [None if s.strip() == "all" else int(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(f"--panel-sizes: expected judges per duel and/or 'all', comma-separated, got {text!r}")


def print_panel_sweep(cfg, sizes: list[int | None]) -> None:
    """Per judge panel size: judgments asked for, Kendall tau and pair accuracy, for both samplings."""
    from .commands.simulate import panel_sweep

    rows = panel_sweep(cfg, sizes)
    print(f"synthetic tribe: {cfg.members} members, {cfg.iterations} iterations x {cfg.duels} duels, seed "
          f"{cfg.seed}; weighting {cfg.reputation.weighting}, alpha={cfg.matchmaking.alpha:g}, variant spec")
    print(f"judge panel: k of the {cfg.members - 2} members outside each duel (all: every one, nothing sampled)")
    print("judgments = scores asked for per iteration (duels x k x 2 answers); tau = Kendall tau of reputation "
          "vs. true quality after the last iteration; acc = share of all iterations' pairs whose chosen answer "
          "is better")
    print(f"{'k':>5}  {'judgments':>9}  {'uniform: tau':>12}  {'acc':>5}  {'reputation: tau':>15}  {'acc':>5}")
    for size in sizes:
        got = {r.sampling: r for r in rows if r.panel_size == size}
        uni, rep = got["uniform"], got.get("reputation", got["uniform"])
        print(f"{'all' if size is None else size:>5}  {uni.judgments:>9,}  {uni.kendall_tau:>+12.3f}  "
              f"{uni.pair_accuracy:>5.3f}  {rep.kendall_tau:>+15.3f}  {rep.pair_accuracy:>5.3f}")


def cmd_export(args: argparse.Namespace) -> int:
    from .commands.export import export

    try:
        out = export(args.run_dir, args.iteration, args.out, args.duels)
    except OSError as err:  # a full disk too: nothing of the run is at stake, the export is refused (2)
        log.error("export: %s", err)
        return 2
    log.info("export: iteration %d of %s written to %s", args.iteration, args.run_dir, out)
    return 0


def eval_config(args: argparse.Namespace):
    """The config of an evaluation: the run's (with eval.*/cluster.* overrides), or one model outside a run."""
    from dataclasses import replace

    from .config.schema import Config, EvalConfig, MemberConfig, RunConfig, TribeConfig, load_config, resolve_paths

    if args.run_dir is not None:
        from .rundir.paths import RunPaths

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


def cmd_eval(args: argparse.Namespace) -> int:
    from . import driver
    from .config.checks import validate
    from .eval.plan import check_eval, eval_points
    from .preflight import check_gpu_path
    from .rundir.paths import INITIAL, RunPaths

    cfg = eval_config(args)
    validate(cfg, tribe=args.run_dir is not None)
    check_eval(cfg)
    check_gpu_path(cfg)
    if not cfg.eval.tasks:
        raise ConfigError("eval.tasks: no evaluation tasks configured; add e.g. eval.tasks=[gsm8k,medqa] "
                          "eval.data_dir=DIR")
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
    return driver.evaluate(cfg, points, ["sparta-hpc", "eval", *args.argv])


def cmd_eval_table(args: argparse.Namespace) -> int:
    from .eval.table import render
    from .rundir.paths import RunPaths

    paths = RunPaths(args.run_dir)
    if not paths.evaluated_points():
        log.error("eval-table: %s has no evaluation results yet (run `sparta-hpc eval %s`)", args.run_dir,
                  args.run_dir)
        return 2
    print(render(paths, args.format))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .commands.compare import render

    try:
        print(render(args.run_dirs, args.format, args.selection, args.seed))
    except ValueError as err:
        log.error("compare: %s", err)
        return 2
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .commands.verify import verify
    from .rundir.paths import RunPaths

    if not RunPaths(args.run_dir).config.exists():
        log.error("verify: %s is not a run directory (no config.yaml)", args.run_dir)
        return 2
    report = verify(args.run_dir)
    print(report.text(args.run_dir))
    return 1 if report.problems else 0


def cmd_init_tribe(args: argparse.Namespace) -> int:
    """The driver, stopping once the sft stage is done: the same config without it goes on into SPARTA."""
    from . import driver

    return driver.main(["--config", args.config, *args.overrides, "--stop-after", "sft"]
                       + (["--dry-run"] if args.dry_run else []))


def cmd_status(args: argparse.Namespace) -> int:
    from .report.status import main as status_main

    return status_main(args.run_dir, args.watch, args.events)


def cmd_report(args: argparse.Namespace) -> int:
    from .report.page import make_report

    try:
        make_report(args.run_dir, args.out)
    except ImportError as err:  # matplotlib or h5py missing where the report is made
        log.error("report: %s; install it into this environment (e.g. pip install matplotlib)", err)
        return 2
    return 0


def cmd_suite(args: argparse.Namespace) -> int:
    from .commands.suite import main as suite_main

    return suite_main(args.action, args.suite, args.format, args.dry_run, args.selection, args.seed)


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from .commands.prepare.run import Options, prepare
    from .commands.prepare.sources import load_pins
    from .commands.prepare.tasks import TASK_NAMES

    try:
        eval_files = dict(item.split("=", 1) for item in args.eval_file if "=" in item)
        if len(eval_files) != len(args.eval_file):
            raise PrepareError(f"--eval-file: expected TASK=PATH, got {args.eval_file}")
        if args.math_test:
            eval_files.update({t: args.math_test for t in ("math_easy", "math_medium", "math_hard")})
        opts = Options(out=args.out, tasks=tuple(args.tasks.split(",")) if args.tasks else TASK_NAMES,
                       sparta=args.sparta_repo, model_swarm=args.model_swarm_repo,
                       alpaca_eval=args.alpaca_eval_repo, authors_pools=args.authors_pools,
                       eval_files={t: Path(p) for t, p in eval_files.items()}, tulu=args.tulu,
                       pins=load_pins(args.pins), cache=args.cache)
        manifest = prepare(opts)
    except PrepareError as err:
        log.error("data prepare: %s", err)
        log.error("data prepare: the tasks finished before this are kept in %s; nothing half-written is", args.out)
        return 2
    partial = [t for t in opts.tasks if manifest["tasks"][t]["status"] != "complete"]
    if partial:
        log.error("data prepare: incomplete: %s (see the MISSING lines above and %s/MANIFEST.json)",
                  ", ".join(partial), args.out)
        return 1
    log.info("data prepare: %d task(s) ready in %s", len(opts.tasks), args.out)
    return 0


def add_selection_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """--selection and --seed of the tables that compare a method with BEST INIT."""
    p.add_argument("--selection", choices=("best-dev", "last"), default="best-dev",
                   help=f"{prefix}per task, the member x iteration best on dev (default), or the best on dev "
                        "among the last iteration's members")
    p.add_argument("--seed", type=int, default=0,
                   help=f"{prefix}seed of the paired bootstrap against BEST INIT (10,000 resamples; default 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparta-hpc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("replay", help="re-run the reputation system on recorded judgments")
    p.add_argument("duels", type=Path, help="DUELS.jsonl, one duel per line in plan order")
    p.add_argument("--ratings", type=Path, required=True, help="RATINGS.json, ratings before the iteration")
    p.add_argument("--out", type=Path, required=True, help="OUT.json to write")
    p.add_argument("--set", action="append", default=[], metavar="reputation.NAME=VALUE")
    p.add_argument("--iteration", type=int, default=None,
                   help="the replayed iteration's number (read by reputation.authors_static only)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="the run whose ratings/iter_NNNN.json hold the earlier iterations' ratings "
                        "(read by reputation.authors_static only)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("simulate", help="a synthetic tribe: how well reputation finds the true ranking")
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--duels", type=int, default=1000, help="duels per iteration")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--set", action="append", default=[],
                   metavar="reputation.NAME=VALUE | matchmaking.alpha=VALUE | judge_noise_worst=VALUE | panel_size=K")
    p.add_argument("--panel-sizes", default=None, metavar="K,K,...,all",
                   help="instead of the variants table: per judge panel size (judge.panel_size; all: every "
                        "member outside the duel), tau and pair accuracy for uniform and reputation sampling")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("export", help="preference pairs (JSONL + HF dataset) and replay input of an iteration")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--iteration", type=int, required=True)
    p.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/export/iter_NNNN")
    p.add_argument("--duels", action="store_true", help="also write duels.jsonl + ratings.json for replay")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("eval", help="evaluate a run's members (or a model outside a run) on benchmark tasks")
    p.add_argument("run_dir", nargs="?", type=Path, help="a run directory (its config's eval section)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--iteration", type=int, help="the members after this iteration's training")
    which.add_argument("--initial", action="store_true", help="the members as they started")
    p.add_argument("--model", help="outside a run: a model folder")
    p.add_argument("--adapter", help="outside a run: its LoRA adapter")
    p.add_argument("--name", help="outside a run: the name its results go under (default: the model folder's)")
    p.add_argument("--system-prompt", help="outside a run: a system prompt")
    p.add_argument("--tasks", help="outside a run: comma-separated task names")
    p.add_argument("--data-dir", help="outside a run: the folder of the tasks' data files")
    p.add_argument("--out", type=Path, help="outside a run: the output folder")
    p.add_argument("overrides", nargs="*", metavar="eval.NAME=VALUE", help="e.g. eval.limit=50 cluster.executor=slurm")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("eval-table", help="BEST INIT, the selected SPARTA model and every member at every point")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--format", choices=("md", "csv"), default="md")
    p.set_defaults(func=cmd_eval_table)

    p = sub.add_parser("compare", help="runs side by side, the paper's Table 1: a row per method, a column per task")
    p.add_argument("run_dirs", type=Path, nargs="+")
    p.add_argument("--format", choices=("md", "csv"), default="md")
    add_selection_args(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("init-tribe", help="SFT the initial tribe (the sft stage: one expert adapter per member) "
                                          "and stop; the same config with the driver goes on into SPARTA")
    p.add_argument("--config", required=True, help="a YAML file with an sft section (configs/tiny-sft.yaml, "
                                                   "configs/tribe-tulu-qwen7b.yaml)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (members, slice sizes) and exit")
    p.add_argument("overrides", nargs="*", metavar="section.name=value")
    p.set_defaults(func=cmd_init_tribe)

    p = sub.add_parser("status", help="where a run is now: stage, tasks done / in flight / failed, ETA, failures, "
                                      "the last events (reads the run directory only)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--watch", type=float, nargs="?", const=10.0, default=None, metavar="SECONDS",
                   help="redraw every SECONDS (default 10) until the run ends or Ctrl-C")
    p.add_argument("--events", type=int, default=10, metavar="N", help="the last N events (default 10)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("report", help="one self-contained HTML page of figures (reputations, judges, pairs, DPO, "
                                      "evaluation, stage timeline) and its PNGs")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/report")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("verify", help="check every finished file against its recorded size and sha256, and each "
                                      "archive against its plan, shards, pairs and ratings; exit 1 naming problems")
    p.add_argument("run_dir", type=Path)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("suite", help="methods x tasks, one run each (Table 1 per task): plan (jobs, cost), "
                                     "submit (idempotent), status, table")
    p.add_argument("action", choices=("plan", "submit", "status", "table"))
    p.add_argument("suite", help="a suite file (configs/table1.yaml)")
    p.add_argument("--format", choices=("md", "csv"), default="md", help="table: markdown or CSV")
    p.add_argument("--dry-run", action="store_true", help="submit: say what would be submitted, submit nothing")
    add_selection_args(p, "table: ")
    p.set_defaults(func=cmd_suite)

    p = sub.add_parser("data", help="the paper's data: per-task duel pools and evaluation files")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("prepare", help="build DIR/<task>/train.jsonl, DIR/eval/ and DIR/MANIFEST.json from "
                                            "the pinned sources, test items removed from the pools (docs/data.md)")
    p.add_argument("--out", type=Path, required=True, help="the data folder ($SPARTA_DATA)")
    p.add_argument("--tasks", help="comma-separated task names (default: all 12)")
    p.add_argument("--sparta-repo", help="yurujiang2003/sparta: a checkout, bare git dir or folder, or a URL "
                                         "(default: the GitHub URL, cloned into --cache)")
    p.add_argument("--model-swarm-repo", help="BunsenFeng/model_swarm: the same")
    p.add_argument("--alpaca-eval-repo", help="tatsu-lab/alpaca_eval (the Alpaca column's 805 instructions): the same")
    p.add_argument("--authors-pools", action="store_true",
                   help="keep the authors' pools exactly, test items included (counted in the manifest)")
    p.add_argument("--math-test", help="the MATH test set (.jsonl/.json/.parquet of {problem, level, solution})")
    p.add_argument("--eval-file", action="append", default=[], metavar="TASK=PATH",
                   help="an evaluation file for a task with no published split (com2, normad_rot), "
                        "or one replacing AlpacaEval's for alpaca")
    p.add_argument("--tulu", type=Path, help="a local copy of allenai/tulu-v2-sft-mixture (.jsonl or a folder)")
    p.add_argument("--pins", type=Path, help="a JSON file of commit and sha256 pins replacing the real ones")
    p.add_argument("--cache", type=Path, help="where URLs are cloned (default ~/.cache/sparta_hpc/sources)")
    p.set_defaults(func=cmd_data_prepare)

    # parsed by sparta_hpc.commands.score itself (main() hands it the arguments); listed here for --help
    p = sub.add_parser("score", help="score existing responses with a task's metric, without a model")
    p.add_argument("task", help="gsm8k, math, medqa, normad, kcross or truthfulqa")
    p.add_argument("predictions", help='JSONL: {"doc": <row of the data file>, "response": "<text>"} per line')
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["score"]:
        from .commands.score import main as score_main

        return score_main(argv[1:])
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.argv = argv
    if args.command == "init-tribe" and all("=" in x and not x.startswith("-") for x in extra):
        args.overrides += extra  # overrides after options
        extra = []
    if args.command == "eval":
        # overrides may come after options, and without a run directory the first one lands in run_dir
        if args.run_dir is not None and "=" in str(args.run_dir):
            args.overrides.insert(0, str(args.run_dir))
            args.run_dir = None
        if all("=" in x and not x.startswith("-") for x in extra):
            args.overrides += extra
            extra = []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except SpartaError as err:  # a refusal (2) or a failure (1), its message naming the file and what to do
        log.error("%s: %s", " ".join(filter(None, (args.command, getattr(args, "data_command", None)))), err)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
