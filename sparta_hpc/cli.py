"""`sparta-hpc`: the command-line tools around a run.

    sparta-hpc replay DUELS.jsonl --ratings RATINGS.json --out OUT.json [--set reputation.NAME=VALUE ...]
    sparta-hpc simulate [--members 10 --iterations 8 --duels 1000 --seed 42] [--set reputation.NAME=VALUE ...]
    sparta-hpc export RUN_DIR --iteration N [--out DIR] [--duels]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config_overrides import ConfigError, apply_overrides
from .logs import setup_logging

log = logging.getLogger("sparta_hpc")


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import ReplayInputError, replay

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
    from .algorithm.simulate import SimulationConfig, simulate, variant_order, variants, with_variant

    cfg = SimulationConfig(members=args.members, iterations=args.iterations, duels=args.duels, seed=args.seed)
    try:
        cfg = apply_overrides(cfg, args.set)
        cfg.reputation.validate()
        cfg.matchmaking.validate()
        if cfg.members < 3:
            raise ConfigError(f"members must be >= 3, got {cfg.members}")
    except (ConfigError, ValueError) as err:
        log.error("simulate: %s", err)
        return 2
    # Every setting (column) under both reputation variants (rows), on the same simulated judgments.
    settings = variants(cfg)
    kinds = variant_order(cfg)
    results = {(name, kind): simulate(with_variant(v, kind)) for name, v in settings.items() for kind in kinds}
    labels = {kind: kind + ("+static" if kind == "authors" and cfg.reputation.authors_static else "")
              for kind in kinds}
    print(f"synthetic tribe: {cfg.members} members, {cfg.iterations} iterations x {cfg.duels} duels, "
          f"seed {cfg.seed}" + (" (reputation.frozen: ratings never change)" if cfg.reputation.frozen else ""))
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


def cmd_export(args: argparse.Namespace) -> int:
    from .export import ExportError, export

    try:
        out = export(args.run_dir, args.iteration, args.out, args.duels)
    except (ExportError, OSError) as err:
        log.error("export: %s", err)
        return 2
    log.info("export: iteration %d of %s written to %s", args.iteration, args.run_dir, out)
    return 0


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
                   metavar="reputation.NAME=VALUE | matchmaking.alpha=VALUE | judge_noise_worst=VALUE")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("export", help="preference pairs (JSONL + HF dataset) and replay input of an iteration")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--iteration", type=int, required=True)
    p.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/export/iter_NNNN")
    p.add_argument("--duels", action="store_true", help="also write duels.jsonl + ratings.json for replay")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
