"""A benchmark's printed output, kept: bench/results/<name>.txt, committed, so that a figure the docs
quote can be traced to its file, and the file to the machine, packages, commit and command that made it.

    with recorded("bench_eval"):   # after argument parsing: `--help` records nothing
        ...                         # everything printed goes to the terminal and to the file

The file is written to a temporary name and renamed when the block ends without error: a failed or
interrupted run leaves the committed file as it was (its output was on the terminal).
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


class _Tee:
    """Writes to the terminal and to the file; anything else (isatty, encoding, ...) is the terminal's."""

    def __init__(self, stream, file):
        self.stream, self.file = stream, file

    def write(self, text: str) -> int:
        self.file.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.file.flush()
        self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal:"))
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores usable ({os.cpu_count()} online), {kib / 2**20:.1f} GiB memory"


def _cpu_seconds() -> tuple[float, float]:
    """(CPU-seconds the whole machine has been busy, those of this process and its finished children)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    busy = sum(ticks) - ticks[3] - ticks[4]  # user nice system idle iowait irq softirq: all but idle, iowait
    own = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))
    return busy / os.sysconf("SC_CLK_TCK"), own


def _footer(start: float, cpu: tuple[float, float]) -> str:
    # other work on a shared machine slows a benchmark down: how much of the CPU it took is part of the record
    wall = time.time() - start
    busy, own = (b - a for a, b in zip(cpu, _cpu_seconds()))
    others = max(busy - own, 0.0)
    share = others / (wall * len(os.sched_getaffinity(0)))
    return (f"\n# finished: {time.strftime('%Y-%m-%d %H:%M:%S %z')}, {wall:.0f} s in all; CPU time: this "
            f"benchmark {own:.0f} s, other processes {others:.0f} s ({share:.0%} of the machine's cores)\n")


def _versions() -> str:
    sys.path.insert(0, str(ROOT))  # the checkout's sparta_hpc, as the benchmarks import it
    from sparta_hpc.rundir.provenance import versions

    found = versions()
    try:
        found["numba"] = metadata.version("numba")
    except metadata.PackageNotFoundError:
        pass
    return ", ".join(f"{k} {v}" for k, v in found.items() if v != "not installed")


def _git() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30,
                              check=True).stdout.rstrip("\n")  # not strip(): status lines start with a space
    try:
        commit = git("rev-parse", "HEAD").strip()
        # the results themselves do not make the tree dirty: every run but the first would say so
        dirty = git("status", "--porcelain", "--", ".", ":(exclude)bench/results").splitlines()
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    if not dirty:
        return f"{commit}, clean"
    names = [line[3:] for line in dirty]
    shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    return f"{commit}, dirty: {shown}"


def _command() -> str:
    def short(path: str) -> str:
        return os.path.relpath(path, ROOT) if path.startswith(str(ROOT) + os.sep) else path
    env = [f"LD_PRELOAD={short(os.environ['LD_PRELOAD'])}"] if os.environ.get("LD_PRELOAD") else []
    return shlex.join(env + [short(sys.executable), short(os.path.abspath(sys.argv[0])), *sys.argv[1:]])


def header(name: str) -> str:
    lines = [f"bench/results/{name}.txt: the output of the command below (run it again to update this file)",
             f"command: {_command()}",
             f"started: {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
             f"git: {_git()}",
             f"machine: {_machine()}",
             f"packages: {_versions()}"]
    return "".join(f"# {line}\n" for line in lines) + "\n"


@contextlib.contextmanager
def recorded(name: str):
    """Tee stdout into bench/results/<name>.txt (after the header); the file is kept only on success."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.txt"
    tmp = path.with_name(path.name + ".tmp")
    terminal, start, cpu = sys.stdout, time.time(), _cpu_seconds()
    ok = False
    file = open(tmp, "w")
    try:
        file.write(header(name))
        file.flush()
        sys.stdout = _Tee(terminal, file)
        yield
        ok = True
    except SystemExit as stop:
        ok = stop.code in (None, 0)
        raise
    finally:
        sys.stdout = terminal
        if ok:
            file.write(_footer(start, cpu))
        file.close()
        if ok:
            tmp.replace(path)
            print(f"recorded in {path.relative_to(ROOT)}")
        else:
            tmp.unlink()
            print(f"{path.relative_to(ROOT)} not updated: the benchmark failed", file=sys.stderr)
