"""Test-only, for every Python process of a run that a test starts (the driver and each job it submits,
locally or through Slurm): with this folder on PYTHONPATH,

- SPARTA_SCRIPTED_MODELS=1: tests/scripted_model.py answers, judges and trains instead of the models, so
  that orchestration tests with real processes (code snapshots, kills, Slurm faults) need no model
  compute; SPARTA_SCRIPTED_MODELS=answers: it answers and judges, and DPO is real (training faults);
- SPARTA_TEST_GATES=FOLDER: tests/gates.py holds tasks, submissions and saves where the test says, so
  that a fault happens while the work it names is certainly in flight.
"""

import os
import sys

SCRIPTED = os.environ.get("SPARTA_SCRIPTED_MODELS")
if SCRIPTED in ("1", "answers") or os.environ.get("SPARTA_TEST_GATES"):
    # `python -m` puts the working directory first only after this file has run: put it there now
    # (as it will be), so that sparta_hpc is imported from where the process would import it
    if not os.environ.get("PYTHONSAFEPATH"):
        sys.path.insert(0, os.getcwd())
    sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    if SCRIPTED == "1":
        # no model computes anything here: torch's thread count is all a stage would import torch for
        # (seconds per process)
        from sparta_hpc.stages import common

        common.set_threads = lambda cfg: None
    if SCRIPTED in ("1", "answers"):
        import scripted_model

        scripted_model.install(training=SCRIPTED == "1")
    if os.environ.get("SPARTA_TEST_GATES"):
        import gates

        gates.install()
