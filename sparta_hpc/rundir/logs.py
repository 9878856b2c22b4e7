"""The one logging set-up of the driver, the jobs' tasks and the command-line tools.

Every line shows its time, level and logger, so a warning in a long driver
log or a job's stderr file stands out:

    15:02:57 WARNING sparta_hpc.launch: [iter 0] judge: task 1 failed (attempt 1), retrying; log: ...
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO, replace: bool = False) -> None:
    """Log to stderr. `replace`: drop handlers set up before (a job process, where the
    job runner may have installed its own); otherwise a process that already logs
    (a test run, an embedding program) keeps its own set-up."""
    logging.basicConfig(level=level, format=FORMAT, datefmt="%H:%M:%S", stream=sys.stderr, force=replace)
