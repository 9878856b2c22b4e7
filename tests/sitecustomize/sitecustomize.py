"""Test-only: with SPARTA_SCRIPTED_MODELS=1 and this folder on PYTHONPATH, every Python process of a
run (the driver and each job it starts) uses tests/scripted_model.py instead of the models, so that
orchestration tests with real processes (code snapshots, kills) need no model compute."""

import os
import sys

if os.environ.get("SPARTA_SCRIPTED_MODELS") == "1":
    # `python -m` puts the working directory first only after this file has run: put it there now
    # (as it will be), so that sparta_hpc is imported from where the process would import it
    if not os.environ.get("PYTHONSAFEPATH"):
        sys.path.insert(0, os.getcwd())
    sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    import scripted_model

    scripted_model.install()
