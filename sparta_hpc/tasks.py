"""The function every submitted job runs: one stage task, imported lazily in the job's process.

Kept free of heavy imports at module level: the driver pickles a reference to
`run_task`, and the job imports only the stage it runs.
"""

from __future__ import annotations

import importlib
import logging
import os
import resource
import sys
import threading
import time

from .paths import STAGES


def _exit_with_driver(driver_pid: int) -> None:
    """Local executor: end this task if the driver that started it is gone.

    A local task is a child of the driver's machine session; if the driver is
    killed, its tasks would otherwise keep running unseen and race the
    resumed run for the same shard.
    """
    def watch():
        while True:
            try:
                os.kill(driver_pid, 0)
            except ProcessLookupError:
                logging.getLogger(__name__).error("driver %d is gone: stopping this task", driver_pid)
                os._exit(3)
            except PermissionError:
                pass
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()


def run_task(run_dir: str, stage: str, iteration: int, task: int | None = None,
             driver_pid: int | None = None) -> dict:
    """Run one task; returns its wall time and peak memory for the driver's event log."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    if driver_pid is not None:
        _exit_with_driver(driver_pid)
    from .stages.common import load_run

    start = time.time()
    cfg, paths = load_run(run_dir)
    module = importlib.import_module(f"sparta_hpc.stages.{stage}")
    if task is None:
        module.run(cfg, paths, iteration)
    else:
        module.run(cfg, paths, iteration, task)
    # ru_maxrss is in KiB on Linux
    return {"seconds": round(time.time() - start, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
