"""The code snapshot holds the whole package, wherever provenance.py sits in it.

The slow tier's tests/test_snapshot.py runs jobs from a snapshot; this one checks in a second what
those jobs will import. A module that moves one folder deeper must not shrink the snapshot to its
own folder (the regrouping did once: jobs then imported the checkout behind the run's back).
"""

from pathlib import Path

import sparta_hpc
from sparta_hpc.rundir import provenance
from sparta_hpc.rundir.paths import RunPaths


def python_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.py") if "__pycache__" not in p.parts}


def test_the_snapshot_is_the_whole_package(tmp_path):
    package = Path(sparta_hpc.__file__).resolve().parent
    info = provenance.take_snapshot(RunPaths(tmp_path / "run"))
    copy = Path(info["snapshot"], "sparta_hpc")
    assert info["source"] == str(package)
    assert python_files(copy) == python_files(package)
    assert {"driver.py", "tasks.py", "rundir/provenance.py", "stages/train.py"} <= python_files(copy)
    assert (copy / "eval" / "tasks").is_dir() and list((copy / "eval" / "tasks").glob("*.yaml"))
