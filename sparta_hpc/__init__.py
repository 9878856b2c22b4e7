"""sparta_hpc: SPARTA alignment for a tribe of LLMs, from a laptop to a Slurm cluster.

The algorithm itself (match-making, judge-score parsing, reputation, preference
pairs) lives in `sparta_hpc.algorithm` as pure functions; the pipeline stages
and the driver call it.
"""

__version__ = "0.1.0"
