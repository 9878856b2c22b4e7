"""A suite of runs: methods x tasks, one driver per pair (the paper's per-task protocol for Table 1).

    sparta-hpc suite plan   SUITE.yaml              # every run: run dir, overrides, jobs, cost; the totals
    sparta-hpc suite submit SUITE.yaml [--dry-run]  # each new/failed run's driver (sbatch, or here); idempotent
    sparta-hpc suite status SUITE.yaml              # one line per run
    sparta-hpc suite table  SUITE.yaml [--format md|csv] [--selection best-dev|last] [--seed 0]
                                                    # Table 1 (methods x tasks) and the ablations'

spec.py reads the suite file and expands it into runs; state.py says where each run stands;
submit.py sends the drivers; plan.py and table.py print. The suite keeps no state of its own
beyond each run's last submission (SUITE_DIR/suite/<run>.json): the run directories are the state.
"""

from __future__ import annotations

import argparse
import logging

from ...errors import ConfigError
from .spec import Run, Suite, expand, load_suite

log = logging.getLogger("sparta_hpc")

__all__ = ["Run", "Suite", "command", "expand", "load_suite", "status_lines"]


def status_lines(suite: Suite, runs: list[Run]) -> list[str]:
    from .state import progress, read_states

    states = read_states(suite, runs)
    width = max((len(r.name) for r in runs), default=0)
    lines = []
    for run in runs:
        s = states[run.name]
        detail = f"  [{progress(run)}]" if run.cfg is not None and s.state != "new" else ""
        lines.append(f"{run.name:{width}s}  {s.state:8s} {s.words}{detail}")
    counts = {}
    for s in states.values():
        counts[s.state] = counts.get(s.state, 0) + 1
    lines.append(f"{len(runs)} runs: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    return lines


def command(args: argparse.Namespace) -> int:
    """The `sparta-hpc suite` command; 2 for a suite file or config that is refused."""
    action, path = args.action, args.suite
    try:
        suite = load_suite(path)
        runs = expand(suite)
    except ConfigError as err:
        log.error("suite: %s", err)
        return 2
    unset = ""
    if suite.unset:
        unset = (f"{suite.path}: dir/data name ${', $'.join(suite.unset)}, not set: export "
                 f"{'it' if len(suite.unset) == 1 else 'them'} (the paths hold the literal name until then)")
    if action == "plan":
        from .plan import render

        print(render(suite, runs) + (f"\nwarning: {unset}" if unset else ""))
        return 0
    if action == "status":
        print("\n".join(status_lines(suite, runs)))
        return 0
    if action == "table":
        from .table import render as table

        print(table(suite, runs, args.format, args.selection, args.seed))
        return 0
    from .submit import check_runs, submit

    try:
        if unset:
            raise ConfigError(unset.replace(" (the paths hold the literal name until then)", "; nothing submitted"))
        check_runs(runs)
    except ConfigError as err:
        log.error("suite: %s", err)
        return 2
    lines = submit(suite, runs, args.dry_run)
    waiting = [x for x in lines if "waiting:" in x]
    if waiting:
        print(f"{len(waiting)} run(s) wait for their task's BEST INIT: run `sparta-hpc suite submit {path}` again "
              "once those initial evaluations are scored (it submits nothing twice)")
    return 1 if any(" NOT submitted" in x or "exit 1" in x for x in lines) else 0
