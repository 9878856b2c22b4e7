"""The layering is a checked contract: import-linter's contracts in pyproject.toml (CONTRIBUTING.md says
what each layer holds). The checkout keeps them, and a copy with one import of each forbidden kind breaks
each of them, with the import named, so a later change that breaks the architecture fails here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
CONTRACTS = ("Layers: each imports only what stands below it",
             "The algorithm is pure computation: no files, processes, models or storage",
             "No import cycles among the modules of any package")


def lint(root: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH first: the copy's package is the one analysed, not the installed checkout
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache", "--no-logo", str(root / "pyproject.toml")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_checkout_keeps_every_contract():
    proc = lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in CONTRACTS:
        assert f"{name} KEPT" in proc.stdout
    assert "3 kept, 0 broken" in proc.stdout


def test_an_import_against_the_layers_breaks_a_contract_and_is_named(tmp_path):
    shutil.copytree(ROOT / "sparta_hpc", tmp_path / "sparta_hpc", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    pkg = tmp_path / "sparta_hpc"

    def add(module: str, line: str) -> None:
        path = pkg / module
        path.write_text(path.read_text() + f"\n{line}\n")

    add("rundir/paths.py", "from ..config import schema  # the run directory reaching up to the config")
    add("algorithm/matchmaking.py", "import json  # file I/O in the algorithm")
    add("algorithm/reputation.py", "from . import variants  # reputation <-> variants")
    proc = lint(tmp_path)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "0 kept, 3 broken" in out
    for name in CONTRACTS:
        assert f"{name} BROKEN" in out
    assert "sparta_hpc.rundir.paths -> sparta_hpc.config.schema" in out
    assert "sparta_hpc.algorithm.matchmaking -> json" in out
    assert ".reputation -> .variants" in out or ".variants -> .reputation" in out
