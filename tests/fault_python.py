#!/usr/bin/env python3
"""Test-only: the Python of a local executor's tasks (cluster.<stage>.python = "PYTHON tests/fault_python.py").

It runs the task with the scripted model (tests/scripted_model.py) and, once, SIGKILLs itself just
before writing the shard named in $SPARTA_FAULT_KILL ("judge/g00_s0001.json:ONCE_FILE"; ONCE_FILE
is created then, so the retry runs through). submitit starts it as `... -u -m submitit.core._submit FOLDER`.
"""

import os
import runpy
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def install_kill(spec: str) -> None:
    shard, once = spec.split(":", 1)
    stage = shard.split("/")[0]
    if Path(once).exists():
        return
    import importlib

    module = importlib.import_module(f"sparta_hpc.stages.{stage}")
    original = module.write_shard

    def write_shard(paths, iteration, stage_name, out, data):
        if Path(out).as_posix().endswith(shard):
            Path(once).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return original(paths, iteration, stage_name, out, data)

    module.write_shard = write_shard


def main() -> None:
    import types

    from tests.scripted_model import scripted_models

    # the scripted model needs no torch; the stages only set its thread count (seconds to import)
    sys.modules.setdefault("torch", types.SimpleNamespace(set_num_threads=lambda n: None, get_num_threads=lambda: 1))

    if os.environ.get("SPARTA_FAULT_KILL"):
        install_kill(os.environ["SPARTA_FAULT_KILL"])
    args = sys.argv[1:]
    module = args[args.index("-m") + 1]
    sys.argv = [module] + args[args.index("-m") + 2:]
    with scripted_models():
        runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
