"""What every submitted job runs: one stage task, imported lazily in the job's process.

Kept free of heavy imports at module level: the driver pickles a `StageTask`,
and the job imports only the stage it runs. `StageTask` is checkpointable: on
a timeout or preemption (SIGUSR2 from Slurm) submitit requeues it with the
same arguments, and the rerun skips finished shards or resumes SFT or DPO
from its last checkpoint.
"""

from __future__ import annotations

import importlib
import logging
import os
import resource
import sys
import threading
import time
from pathlib import Path

import submitit

from .backends.devices import has_gpu
from .rundir.files import free_port, no_world_write
from .rundir.logs import setup_logging
from .rundir.paths import EVAL_STAGES, RUN_STAGES, STAGES, RunPaths


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


def distributed_setup(single_process_world: bool) -> None:
    """torch.distributed's env:// variables.

    A Slurm job with several tasks: from Slurm's. A single DeepSpeed training
    process (the local executor, a 1-task job): a world of one, which DeepSpeed
    needs to start at all (it would look for MPI otherwise).
    """
    if "RANK" in os.environ:
        return
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    elif single_process_world:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))


def cpu_only_setup(paths: RunPaths) -> None:
    """DeepSpeed on a node without GPUs: its CPU accelerator (gloo), and its compiled ops
    cached in the run (or $TORCH_EXTENSIONS_DIR), never in the home directory."""
    if not has_gpu():  # none on the node, or none given to this task (CUDA_VISIBLE_DEVICES="")
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(paths.torch_extensions))


def run_task(run_dir: str, stage: str, iteration: int, task: int | None = None,
             driver_pid: int | None = None) -> dict:
    """Run one task; returns its wall time and peak memory for the driver's event log."""
    if stage not in RUN_STAGES + STAGES + EVAL_STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    if driver_pid is not None:
        _exit_with_driver(driver_pid)
    from .stages.common import load_run

    start = time.time()
    no_world_write()  # whatever submitted it: nothing this task writes is world-writable
    cfg, paths = load_run(run_dir)
    # a job's own process logs our way; in the driver's process (debug executor) the driver's set-up stays
    setup_logging(replace=cfg.cluster.executor != "debug")
    if stage in ("sft", "train"):
        from .stages.lora import deepspeed_config

        distributed_setup(bool(deepspeed_config(cfg, task)))
    cpu_only_setup(paths)
    module = importlib.import_module(f"sparta_hpc.stages.{stage}")
    if task is None:
        module.run(cfg, paths, iteration)
    else:
        module.run(cfg, paths, iteration, task)
    from .rundir import provenance

    # ru_maxrss is in KiB on Linux; the code and interpreter that ran: the run's provenance
    return {"seconds": round(time.time() - start, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),  # the GPUs it was given (None: not set)
            "code": str(Path(__file__).resolve().parent), "interpreter": sys.executable,
            "versions": provenance.versions()}


class StageTask(submitit.helpers.Checkpointable):
    """`run_task` as a requeueable job (the default checkpoint() resubmits the same arguments)."""

    def __call__(self, run_dir: str, stage: str, iteration: int, task: int | None = None,
                 driver_pid: int | None = None) -> dict:
        return run_task(run_dir, stage, iteration, task, driver_pid)
