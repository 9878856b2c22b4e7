"""`sparta-hpc data prepare`: the paper's per-task duel pools and evaluation files from the pinned
public sources (docs/data.md). sources.py: pins and reading; tasks.py: the tasks and converters;
clean.py: overlap on the identifying part; build.py: one task's files; run.py: the folder, the
manifest, reruns."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ...errors import PrepareError
from .run import Options, prepare
from .sources import load_pins
from .tasks import TASK_NAMES

log = logging.getLogger("sparta_hpc")


def command(args: argparse.Namespace) -> int:
    """`sparta-hpc data prepare`: 1 when a task is incomplete, 2 when a source is refused."""
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
