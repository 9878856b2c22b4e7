"""Test-only launcher: the real driver with the scripted model in one process (debug executor),
which SIGKILLs itself at a named point. No test hook lives in sparta_hpc: the kill is installed
here by wrapping the function that reaches the point.

    python -m tests.fault_launcher --kill-at gather.writing -- --config FAULT.yaml run.dir=RUN

Kill points (KILL_POINTS):
    plan.marker          plan.json and its record written, the plan's marker not yet
    generate.N           after the N-th generate task of the run finished (judge.N, train.N, evaluate.N alike)
    gather.writing       in the middle of writing the HDF5 archive: its temp file holds some datasets
    aggregate.renamed    the completed archive renamed into place, pairs/ratings/marker not yet written
    score.writing        after the first per-member result file of the evaluation point's scores

The tests call `run_killed` (a fork of the test process: no second interpreter start-up) and then
run the same command again in-process to resume.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

KILL_POINTS = ("plan.marker", "gather.writing", "aggregate.renamed", "score.writing") + tuple(
    f"{stage}.N" for stage in ("generate", "judge", "train", "evaluate"))


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _after_calls(owner, name: str, n: int, when=lambda *a, **k: True) -> None:
    """Replace owner.name by a wrapper that SIGKILLs this process after its n-th call (with `when`)."""
    original, count = getattr(owner, name), [0]

    def wrapper(*args, **kwargs):
        out = original(*args, **kwargs)
        if when(*args, **kwargs):
            count[0] += 1
            if count[0] >= n:
                die()
        return out

    setattr(owner, name, wrapper)


def install(point: str) -> None:
    """Arrange for this process to SIGKILL itself at `point` (KILL_POINTS)."""
    import h5py

    from sparta_hpc import tasks
    from sparta_hpc.rundir import archive
    from sparta_hpc.stages import aggregate, plan, score

    stage, _, what = point.partition(".")
    if point == "plan.marker":  # the plan's record is written, its marker is next
        _after_calls(plan, "record_files", 1)
    elif point == "gather.writing":
        original = archive.write_gathered

        def writing(*args, **kwargs):
            _after_calls(h5py.Group, "create_dataset", 4)  # a few datasets into the temp file, then die
            return original(*args, **kwargs)

        archive.write_gathered = writing
        from sparta_hpc.stages import gather

        gather.write_gathered = writing
    elif point == "aggregate.renamed":
        _after_calls(aggregate, "write_aggregated", 1)
    elif point == "score.writing":
        _after_calls(score, "atomic_write_json", 1)
    elif what.isdigit():  # after the n-th task of that stage
        _after_calls(tasks, "run_task", int(what), lambda run_dir, s, *a, **k: s == stage)
    else:
        raise ValueError(f"unknown kill point {point!r}; known: {', '.join(KILL_POINTS)}")


def launch(driver_args: list[str], kill_at: str | None) -> int:
    """The driver's main with the scripted model, killed at `kill_at` (None: not killed)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sparta_hpc import driver
    from tests.scripted_model import scripted_models

    if kill_at:
        install(kill_at)
    with scripted_models():
        return driver.main(driver_args)


def run_killed(driver_args: list[str], kill_at: str) -> int:
    """`launch` in a forked child of this process; returns the signal that ended it (or -exit code)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller (a test runner)
        code = 1
        try:
            code = launch(driver_args, kill_at)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else -os.WEXITSTATUS(status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kill-at", metavar="POINT", help=f"one of {', '.join(KILL_POINTS)} (N: a number)")
    parser.add_argument("driver_args", nargs=argparse.REMAINDER)
    args, rest = parser.parse_known_args(argv)
    driver_args = [a for a in args.driver_args + rest if a != "--"]
    return launch(driver_args, args.kill_at)


if __name__ == "__main__":
    sys.exit(main())
