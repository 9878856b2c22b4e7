"""`sparta-hpc`: the pipeline's commands. Overrides (section.name=value) come as words or `--set`.

    sparta-hpc run CONFIG [--dry-run] [--stop-after STAGE] [section.name=value ...]
    sparta-hpc init-tribe --config CONFIG [--dry-run] [section.name=value ...]
    sparta-hpc status RUN_DIR [--watch [SECONDS]] [--events N]
    sparta-hpc report RUN_DIR [--out DIR]
    sparta-hpc verify RUN_DIR
    sparta-hpc export RUN_DIR --iteration N [--out DIR] [--duels]
    sparta-hpc replay DUELS.jsonl --ratings RATINGS.json --out OUT.json [reputation.NAME=VALUE ...]
    sparta-hpc simulate [--members 10 --iterations 8 --duels 1000 --seed 42] [--panel-sizes 1,3,5,all]
                        [reputation.NAME=VALUE ...]
    sparta-hpc eval RUN_DIR [--iteration N | --initial] [eval.NAME=VALUE ...]
    sparta-hpc eval --model PATH [--adapter PATH] --tasks gsm8k,medqa --data-dir DIR --out DIR [eval.NAME=VALUE ...]
    sparta-hpc eval-table RUN_DIR [--format md|csv]
    sparta-hpc compare RUN_DIR [RUN_DIR ...] [--format md|csv] [--selection best-dev|last] [--seed 0]
    sparta-hpc score TASK PREDICTIONS.jsonl
    sparta-hpc data prepare --out DIR [--tasks t1,t2] [--sparta-repo PATH|URL] [--model-swarm-repo PATH|URL]
                            [--alpaca-eval-repo PATH|URL]
                            [--authors-pools] [--math-test PATH] [--eval-file TASK=PATH] [--tulu PATH]
    sparta-hpc suite plan|submit|status|table SUITE.yaml [--format md|csv] [--dry-run] [--selection best-dev|last]
                     [--seed 0]

This module only parses and dispatches: each command's body is a function of the parsed
arguments in commands/ (or the driver's), imported when that command runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from .config.overrides import add_override_arguments, given_overrides
from .errors import SpartaError
from .rundir.logs import setup_logging

log = logging.getLogger("sparta_hpc")


class DeferredParser(argparse.ArgumentParser):
    """A subcommand's parser whose arguments a heavier module defines (the driver's, score's):
    `define` runs only when that subcommand is parsed, so the others start without its imports."""

    def __init__(self, *args, define=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.define = define

    def parse_known_args(self, args=None, namespace=None):
        if self.define is not None:
            self.define, define = None, self.define
            define(self)
        return super().parse_known_args(args, namespace)


def define_run(p: argparse.ArgumentParser) -> None:
    from . import driver

    p.description = driver.__doc__
    driver.add_arguments(p, config_positional=True)


def define_score(p: argparse.ArgumentParser) -> None:
    from .commands import score

    p.description = score.DESCRIPTION
    score.add_arguments(p)


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
    sub = parser.add_subparsers(dest="command", required=True, parser_class=DeferredParser)

    # each command's body: (module, function), called with the parsed arguments
    p = sub.add_parser("run", define=define_run, formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="the driver: a run's stages and iterations, resumed by running it again "
                            "(= python -m sparta_hpc.driver --config CONFIG)")
    p.set_defaults(body=("driver", "run_command"), lead="config")

    p = sub.add_parser("init-tribe", help="SFT the initial tribe (the sft stage: one expert adapter per member) "
                                          "and stop; the same config with `run` goes on into SPARTA")
    p.add_argument("--config", required=True, help="a YAML file with an sft section (configs/tiny-sft.yaml, "
                                                   "configs/tribe-tulu-qwen7b.yaml)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (members, slice sizes) and exit")
    add_override_arguments(p)
    p.set_defaults(body=("driver", "init_tribe"))

    p = sub.add_parser("status", help="where a run is now: stage, tasks done / in flight / failed, ETA, failures, "
                                      "the last events (reads the run directory only)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--watch", type=float, nargs="?", const=10.0, default=None, metavar="SECONDS",
                   help="redraw every SECONDS (default 10) until the run ends or Ctrl-C")
    p.add_argument("--events", type=int, default=10, metavar="N", help="the last N events (default 10)")
    p.set_defaults(body=("commands.status", "command"))

    p = sub.add_parser("report", help="one self-contained HTML page of figures (reputations, judges, pairs, DPO, "
                                      "evaluation, stage timeline) and its PNGs")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/report")
    p.set_defaults(body=("commands.status", "report"))

    p = sub.add_parser("verify", help="check every finished file against its recorded size and sha256, and each "
                                      "archive against its plan, shards, pairs and ratings; exit 1 naming problems")
    p.add_argument("run_dir", type=Path)
    p.set_defaults(body=("commands.verify", "command"))

    p = sub.add_parser("export", help="preference pairs (JSONL + HF dataset) and replay input of an iteration")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--iteration", type=int, required=True)
    p.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/export/iter_NNNN")
    p.add_argument("--duels", action="store_true", help="also write duels.jsonl + ratings.json for replay")
    p.set_defaults(body=("commands.export", "command"))

    p = sub.add_parser("replay", help="re-run the reputation system on recorded judgments")
    p.add_argument("duels", type=Path, help="DUELS.jsonl, one duel per line in plan order")
    p.add_argument("--ratings", type=Path, required=True, help="RATINGS.json, ratings before the iteration")
    p.add_argument("--out", type=Path, required=True, help="OUT.json to write")
    add_override_arguments(p, "reputation.NAME=VALUE")
    p.add_argument("--iteration", type=int, default=None,
                   help="the replayed iteration's number (read by reputation.authors_static only)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="the run whose ratings/iter_NNNN.json hold the earlier iterations' ratings "
                        "(read by reputation.authors_static only)")
    p.set_defaults(body=("commands.replay", "command"))

    p = sub.add_parser("simulate", help="a synthetic tribe: how well reputation finds the true ranking")
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--duels", type=int, default=1000, help="duels per iteration")
    p.add_argument("--seed", type=int, default=42)
    add_override_arguments(p, "NAME=VALUE", "reputation.weighting=uniform matchmaking.alpha=0.5 "
                                            "judge_noise_worst=3 panel_size=3")
    p.add_argument("--panel-sizes", default=None, metavar="K,K,...,all",
                   help="instead of the variants table: per judge panel size (judge.panel_size; all: every "
                        "member outside the duel), tau and pair accuracy for uniform and reputation sampling")
    p.set_defaults(body=("commands.simulate", "command"))

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
    add_override_arguments(p, "eval.NAME=VALUE", "eval.limit=50 cluster.executor=slurm")
    p.set_defaults(body=("commands.evaluate", "command"), lead="run_dir")

    p = sub.add_parser("eval-table", help="BEST INIT, the selected SPARTA model and every member at every point")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--format", choices=("md", "csv"), default="md")
    p.set_defaults(body=("commands.evaluate", "table"))

    p = sub.add_parser("compare", help="runs side by side, the paper's Table 1: a row per method, a column per task")
    p.add_argument("run_dirs", type=Path, nargs="+")
    p.add_argument("--format", choices=("md", "csv"), default="md")
    add_selection_args(p)
    p.set_defaults(body=("commands.compare", "command"))

    p = sub.add_parser("score", define=define_score,
                       help="score existing responses with a task's metric, without a model")
    p.set_defaults(body=("commands.score", "command"))

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
    p.set_defaults(body=("commands.prepare", "command"))

    p = sub.add_parser("suite", help="methods x tasks, one run each (Table 1 per task): plan (jobs, cost), "
                                     "submit (idempotent), status, table")
    p.add_argument("action", choices=("plan", "submit", "status", "table"))
    p.add_argument("suite", help="a suite file (configs/table1.yaml)")
    p.add_argument("--format", choices=("md", "csv"), default="md", help="table: markdown or CSV")
    p.add_argument("--dry-run", action="store_true", help="submit: say what would be submitted, submit nothing")
    add_selection_args(p, "table: ")
    p.set_defaults(body=("commands.suite", "command"))
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    from_shell = argv is None  # this process is the command (the driver may re-execute itself)
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if hasattr(args, "overrides"):  # they may also come after options, which argparse leaves in `extra`
        args.overrides = given_overrides(args, extra, getattr(args, "lead", None))
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv, args.from_shell = argv, from_shell
    module, function = args.body
    try:
        return getattr(importlib.import_module(f".{module}", __package__), function)(args)
    except SpartaError as err:  # a refusal (2) or a failure (1), its message naming the file and what to do
        log.error("%s: %s", " ".join(filter(None, (args.command, getattr(args, "data_command", None)))), err)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
