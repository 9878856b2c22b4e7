"""`sparta-hpc status` and `sparta-hpc report`: what a person reads of a run (report/ renders both).

    sparta-hpc status RUN_DIR [--watch [SECONDS]] [--events N]
    sparta-hpc report RUN_DIR [--out DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from ..errors import StatusError
from ..report.status import render

log = logging.getLogger("sparta_hpc")


def command(args: argparse.Namespace) -> int:
    """Print the status (every `args.watch` seconds until the run ends or Ctrl-C); 2 for a bad run directory."""
    watch = args.watch
    try:
        while True:
            text, ended = render(args.run_dir, args.events)
            if watch and sys.stdout.isatty():
                sys.stdout.write("\033[H\033[J")  # redraw in place
            print(text + (f"\n\n(every {watch:g} s; Ctrl-C to stop)" if watch and not ended else ""), flush=True)
            if not watch or ended:
                return 0
            time.sleep(watch)
    except StatusError as err:
        log.error("status: %s", err)
        return 2
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `status RUN | head`: the reader has seen enough
        sys.stdout = open(os.devnull, "w")
        return 0


def report(args: argparse.Namespace) -> int:
    """Write the run's HTML report; 2 for a bad run directory or a missing plotting library."""
    from ..report.page import make_report  # numpy and the plotting: loaded for this command only

    try:
        make_report(args.run_dir, args.out)
    except StatusError as err:
        log.error("report: %s", err)
        return 2
    except ImportError as err:  # matplotlib or h5py missing where the report is made
        log.error("report: %s; install it into this environment (e.g. pip install matplotlib)", err)
        return 2
    return 0
