"""A suite file: methods x tasks, expanded into one run (a driver, a run directory) per pair.

    dir: runs/table1                 # each run's directory: DIR/<name>-<task>
    data: $SPARTA_DATA               # `sparta-hpc data prepare --out`: <task>/train.jsonl, eval/
    tasks: [gsm8k, medqa]
    overrides: [tribe.iterations=1]  # every run
    methods:                         # Table 1's rows (the table's order)
      sparta: paper-qwen7b.yaml      # a config, relative to this file ...
      spin: {config: baselines/spin.yaml, overrides: [train.beta=0.2]}   # ... or with overrides of its own
    ablations: {uniform_weights: ablations/uniform-weights.yaml}          # a table of their own
    ablation_tasks: [gsm8k]          # default: tasks
    best_init: sparta                # the row whose initial evaluation picks each task's BEST INIT
    sbatch: [--partition=cpu]        # flags of the driver jobs (slurm/sparta.sbatch)

Each run draws its duels from its own task's train.jsonl, is evaluated on that
task alone, and a single-model method (a baseline) aligns that task's BEST
INIT: the member the `best_init` run's initial evaluation chose. That choice
exists only once that run has scored its initial evaluation, so a baseline
*waits on* it and gets `baseline.member=<BEST INIT>` when it is submitted
(and `eval.initial=false`: the BEST INIT row comes from the `best_init` run,
which has already evaluated every member at the start).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...config.schema import Config, load_config, read_yaml
from ...errors import ConfigError
from ...eval.data import TASK_NAMES
from ...methods import best_init
from ...rundir.files import read_json
from ...rundir.paths import INITIAL, RunPaths

SAFE_NAME = re.compile(r"^[A-Za-z0-9_]+$")  # a row's name: part of run directory names ("<name>-<task>")
KEYS = {"dir", "data", "tasks", "overrides", "methods", "ablations", "ablation_tasks", "best_init", "sbatch"}


@dataclass(frozen=True)
class Entry:
    """One row: a name (the table's label), its config file and overrides of its own."""

    name: str
    config: Path
    overrides: tuple[str, ...] = ()
    ablation: bool = False


@dataclass(frozen=True)
class Suite:
    path: Path
    dir: Path
    data: Path
    tasks: tuple[str, ...]
    entries: tuple[Entry, ...]
    ablation_tasks: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    best_init: str = "sparta"
    sbatch: tuple[str, ...] = ()
    unset: tuple[str, ...] = ()  # environment variables that `dir` or `data` name and that are not set


@dataclass
class Run:
    """One method on one task: what the driver is given, and which run it waits on."""

    name: str  # <entry>-<task>
    entry: Entry
    task: str
    dir: Path
    overrides: list[str]  # the suite's, after the config file's own
    cfg: Config | None  # None: the config cannot be loaded (error says why)
    error: str | None = None
    waits_on: str | None = None  # the run whose initial evaluation gives BEST INIT
    member: str | None = None  # BEST INIT, once known (single-model methods that wait)
    notes: list[str] = field(default_factory=list)

    def driver_args(self) -> list[str]:
        """`--config CONFIG overrides...`: what `python -m sparta_hpc.driver` and slurm/sparta.sbatch take."""
        return ["--config", str(self.entry.config), *self.overrides]


def _strings(value, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def _entries(data: dict, key: str, folder: Path, where: Path) -> list[Entry]:
    found = data.get(key) or {}
    if not isinstance(found, dict):
        raise ConfigError(f"{where}: {key}: expected a mapping of name: config, got {found!r}")
    out = []
    for name, value in found.items():
        if not isinstance(name, str) or not SAFE_NAME.match(name):
            raise ConfigError(f"{where}: {key}.{name}: a name is letters, digits and _ (it names run directories)")
        if isinstance(value, str):
            value = {"config": value}
        if not isinstance(value, dict) or not isinstance(value.get("config"), str) or set(value) - {"config",
                                                                                                     "overrides"}:
            raise ConfigError(f"{where}: {key}.{name}: expected a config path or {{config: PATH, overrides: [...]}}")
        config = (folder / os.path.expandvars(value["config"])).resolve()
        if not config.is_file():
            raise ConfigError(f"{where}: {key}.{name}: no config file {config}")
        out.append(Entry(name, config, _strings(value.get("overrides"), f"{where}: {key}.{name}.overrides"),
                         ablation=key == "ablations"))
    return out


def _tasks(value, where: str) -> tuple[str, ...]:
    tasks = _strings(value, where)
    unknown = [t for t in tasks if t not in TASK_NAMES]
    if unknown:
        raise ConfigError(f"{where}: unknown task(s) {', '.join(unknown)}; the tasks are: {', '.join(TASK_NAMES)}")
    return tasks


def load_suite(path: str | Path) -> Suite:
    """The suite file, checked: known keys and tasks, every config file present, unique names."""
    path = Path(path).resolve()
    data = read_yaml(path)
    unknown = set(data) - KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; a suite has {', '.join(sorted(KEYS))}")
    for key in ("dir", "data", "tasks", "methods"):
        if not data.get(key):
            raise ConfigError(f"{path}: {key} is missing")
    entries = _entries(data, "methods", path.parent, path) + _entries(data, "ablations", path.parent, path)
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: a name is used twice among methods and ablations: {', '.join(names)}")
    tasks = _tasks(data["tasks"], f"{path}: tasks")
    best = data.get("best_init", "sparta")
    if best not in [e.name for e in entries if not e.ablation]:
        raise ConfigError(f"{path}: best_init: {best!r} is not one of the methods (the run whose initial evaluation "
                          "chooses each task's BEST INIT)")
    folder = path.parent
    run_dir, data_dir = os.path.expandvars(str(data["dir"])), os.path.expandvars(str(data["data"]))
    # an unset variable stays as `$NAME` in the path: plan says so, submit refuses (suite/__init__.py)
    unset = tuple(dict.fromkeys(re.findall(r"\$\{?(\w+)", run_dir + " " + data_dir)))
    return Suite(path=path, dir=(folder / run_dir).resolve(), data=(folder / data_dir).resolve(), tasks=tasks,
                 entries=tuple(entries),
                 ablation_tasks=_tasks(data.get("ablation_tasks"), f"{path}: ablation_tasks") or tasks,
                 overrides=_strings(data.get("overrides"), f"{path}: overrides"), best_init=best,
                 sbatch=_strings(data.get("sbatch"), f"{path}: sbatch"), unset=unset)


def task_overrides(suite: Suite, task: str, run_dir: Path) -> list[str]:
    """What makes a run per task: its run directory, its task's duel pool and its task's evaluation."""
    return [f"run.dir={run_dir}", f"instructions.source={suite.data / task / 'train.jsonl'}",
            "instructions.prompt_field=instruction", "instructions.id_field=id",
            "instructions.reference_field=reference", f"eval.tasks=[{task}]", f"eval.data_dir={suite.data / 'eval'}"]


def chosen_member(suite: Suite, task: str) -> str | None:
    """BEST INIT of `task`: the `best_init` run's choice over its scored initial evaluation; None until then."""
    paths = RunPaths(suite.dir / f"{suite.best_init}-{task}")
    if not paths.is_done(INITIAL, "score"):
        return None
    names = load_config(paths.config).member_names()
    return best_init(read_json(paths.eval_summary(INITIAL))["scores"], names)["member"]


def expand(suite: Suite) -> list[Run]:
    """Every run: for each task, its methods (the best_init one first), then the ablations."""
    runs = []
    first = sorted((e for e in suite.entries if not e.ablation), key=lambda e: e.name != suite.best_init)
    pairs = [(e, t) for t in suite.tasks for e in first]
    pairs += [(e, t) for t in suite.ablation_tasks for e in suite.entries if e.ablation]
    for entry, task in pairs:
        name = f"{entry.name}-{task}"
        run_dir = suite.dir / name
        overrides = task_overrides(suite, task, run_dir) + list(suite.overrides) + list(entry.overrides)
        run = Run(name, entry, task, run_dir, overrides, cfg=None)
        try:
            run.cfg = load_config(entry.config, overrides)
        except ConfigError as err:
            run.error = str(err)
            runs.append(run)
            continue
        if run.cfg.method != "sparta" and run.cfg.baseline.member is None:
            resolve_best_init(suite, run)
        runs.append(run)
    return runs


def resolve_best_init(suite: Suite, run: Run) -> None:
    """A baseline without baseline.member: it waits on its task's best_init run, and once that run has
    chosen, aligns that member. A run that has started keeps the member it started with."""
    run.waits_on = f"{suite.best_init}-{run.task}"
    started = RunPaths(run.dir).config
    member = load_config(started).baseline.member if started.exists() else None
    try:
        member = member or chosen_member(suite, run.task)
    except (ConfigError, OSError, KeyError, ValueError) as err:
        run.notes.append(f"cannot read BEST INIT from {run.waits_on}: {err}")
        member = None
    if member is None:  # costed as it will run: one member, no initial evaluation of its own
        try:
            run.cfg = load_config(run.entry.config, run.overrides + ["eval.initial=false"])
        except ConfigError as err:
            run.error = str(err)
        return
    run.member = member
    run.overrides += [f"baseline.member={member}", "eval.initial=false"]
    try:
        run.cfg = load_config(run.entry.config, run.overrides)
    except ConfigError as err:
        run.error = str(err)
