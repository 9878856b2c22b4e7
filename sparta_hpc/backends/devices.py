"""The GPUs a process may use, found without initializing CUDA.

`torch.cuda.is_available()` and `device_count()` initialize the CUDA runtime in
the calling process; a process that then forks (vLLM's engine starts its
workers with fork by default) gets "Cannot re-initialize CUDA in forked
subprocess" in every worker. So the job's GPUs are read from what the scheduler
or the user set (CUDA_VISIBLE_DEVICES) and, without it, from the device files
the NVIDIA driver creates, as nvidia-smi would list them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEV = Path("/dev")


def visible_gpus(environ: dict | None = None, dev: Path = DEV) -> list[str]:
    """The GPU ids this process may use (as CUDA_VISIBLE_DEVICES names them: indices, UUIDs or MIG
    ids); [] when none. An empty CUDA_VISIBLE_DEVICES (or "-1", or "NoDevFiles" as some Slurm
    set-ups write) hides every GPU."""
    environ = os.environ if environ is None else environ
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is not None:
        ids = [x.strip() for x in value.split(",") if x.strip()]
        if not ids or ids[0] in ("-1", "NoDevFiles"):
            return []
        return ids
    found = sorted(int(m.group(1)) for p in dev.glob("nvidia*") if (m := re.fullmatch(r"nvidia(\d+)", p.name)))
    return [str(i) for i in found]


def has_gpu(environ: dict | None = None, dev: Path = DEV) -> bool:
    return bool(visible_gpus(environ, dev))


class GpuPool:
    """The GPUs of this machine, handed out to the local executor's tasks: each running task has its
    own, and a task whose GPUs are not free yet waits (as Slurm would make it). submitit's
    LocalExecutor alone would give every task CUDA_VISIBLE_DEVICES="" unless told a count, and then
    always the first devices of the machine, whatever the driver was given."""

    def __init__(self, ids: list[str]):
        self.ids = list(ids)
        self.free = list(ids)

    def take(self, wanted: int) -> list[str] | None:
        """GPUs for a task that asks for `wanted` (at most every GPU there is; none on a machine
        without any); None while not enough are free."""
        n = min(wanted, len(self.ids))
        if n > len(self.free):
            return None
        taken, self.free = self.free[:n], self.free[n:]
        return taken

    def give(self, ids: list[str]) -> None:
        self.free = [g for g in self.ids if g in self.free or g in ids]
