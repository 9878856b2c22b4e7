"""What an evaluation point runs, and the checks made before any job starts.

An evaluation point is the tribe at one moment: INITIAL (the members as they
start) or t (after iteration t's training). Its plan, written by the driver,
lists the task splits and the shards of the `evaluate` array (base-model
group x task split x shard of items) and of the `rate` array (the evaluator
model on the open-ended tasks' answers). The prompts come from lm-eval once
per run (RUN/eval/prompts/), so that the answering jobs need neither lm-eval
nor its data files: they may run in another venv (vLLM's).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ..config.checks import missing_model
from ..config.overrides import to_dict
from ..config.ranges import require
from ..config.schema import Config
from ..errors import ConfigError, EvalDataError
from ..rundir.files import atomic_write_json, read_json
from ..rundir.manifest import load_entries, read_checked_json
from ..rundir.paths import INITIAL, RunPaths
from ..rundir.plan import Plan
from . import data
from .leakage import overlap

log = logging.getLogger("sparta_hpc")

# A task's file under eval.data_dir: the names of shared/data/eval-samples (the authors' group's files)
DEFAULT_FILES = {
    "gsm8k": ("gsm8k.json",), "medqa": ("medqa.json",), "kcross": ("knowledge_crosswords.json",),
    "normad_country": ("normad_country.json",), "normad_value": ("normad_value.json",),
    "normad_rot": ("normad_rot.json",), "truthfulqa": ("truthfulqa.json",),
    "math_easy": ("math_easy.jsonl",), "math_medium": ("math_medium.jsonl",), "math_hard": ("math_hard.jsonl",),
    "com2": ("com2.json",), "alpaca": ("alpaca.json", "alpaca.jsonl"),
}


def splits(cfg: Config) -> tuple[str, ...]:
    return ("dev", "test") if cfg.eval.split == "both" else (cfg.eval.split,)


def eval_points(cfg: Config) -> list[int]:
    """The points the driver evaluates: INITIAL (eval.initial), then after every `every`-th
    iteration's training and after the last one; none without eval.tasks."""
    ev, last = cfg.eval, cfg.tribe.iterations - 1
    if not ev.tasks:
        return []
    after = [t for t in range(last + 1) if t == last or (ev.every and (t + 1) % ev.every == 0)]
    return ([INITIAL] if ev.initial else []) + after


def task_file(cfg: Config, task: str) -> Path:
    """The data file of `task`: eval.files.<task>, else its usual name under eval.data_dir."""
    if task in cfg.eval.files:
        return Path(cfg.eval.files[task])
    if not cfg.eval.data_dir:
        raise ConfigError(f"eval.tasks: no file for task {task!r}: set eval.data_dir (a folder holding "
                          f"{DEFAULT_FILES.get(task, ('<task>.json',))[0]}) or eval.files.{task}")
    names = DEFAULT_FILES.get(task, (f"{task}.json",))
    found = [Path(cfg.eval.data_dir, n) for n in names if Path(cfg.eval.data_dir, n).is_file()]
    return found[0] if found else Path(cfg.eval.data_dir, names[0])


def check_eval(cfg: Config, instruction_texts: list[str] | None = None, missing: list[str] | None = None) -> None:
    """Every evaluation check that needs no model: task names, files, formats, fields, the
    evaluator, and no evaluation item among the duel instructions. ConfigError names the place.
    `missing`: collects a missing evaluator folder instead of refusing it (a dry run)."""
    ev = cfg.eval
    if not ev.tasks:
        return
    for name, value in (("eval.items_per_shard", ev.items_per_shard), ("eval.batch_size", ev.batch_size),
                        ("eval.limit", ev.limit or 1), ("eval.max_new_tokens", ev.max_new_tokens or 1),
                        ("eval.evaluator.max_new_tokens", ev.evaluator.max_new_tokens)):
        require(name, value)
    if ev.test == "selected" and ev.split != "both":
        raise ConfigError(f"eval.test: selected evaluates test where dev selects, so it needs eval.split: both "
                          f"(got {ev.split}); or eval.test: every")
    require("eval.every", ev.every, " (0: only after the last iteration)")
    unknown = [t for t in ev.tasks if t not in data.TASK_NAMES] + [t for t in ev.files if t not in data.TASK_NAMES]
    if unknown:
        raise ConfigError(f"eval.tasks: unknown task {unknown[0]!r}; the tasks are: {', '.join(data.TASK_NAMES)}")
    if len(set(ev.tasks)) != len(ev.tasks):
        raise ConfigError(f"eval.tasks: a task is listed twice: {ev.tasks}")
    present = list(ev.tasks)
    for task in ev.tasks:
        if missing is not None and not task_file(cfg, task).exists():  # a dry run before `data prepare`
            missing.append(f"eval.tasks: {task}: no file at {task_file(cfg, task)} (eval.data_dir; sparta-hpc data "
                           "prepare writes DIR/eval)")
            present.remove(task)
            continue
        for split in splits(cfg):
            try:
                data.read_split(data.get_spec(task), task_file(cfg, task), split)
            except EvalDataError as err:
                raise ConfigError(f"eval.tasks: {err}") from None
    if any(data.SPECS[t].kind == "rated" for t in ev.tasks):
        e = ev.evaluator
        if not e.model:
            raise ConfigError(f"eval.evaluator.model: tasks {[t for t in ev.tasks if data.SPECS[t].kind == 'rated']} "
                              "are rated by an evaluator model; set it (a folder with config.json)")
        if not Path(e.model, "config.json").is_file():
            missing_model(f"eval.evaluator.model: tasks {[t for t in ev.tasks if data.SPECS[t].kind == 'rated']} "
                          f"are rated by an evaluator model; no model at {e.model} (a folder with config.json)",
                          missing)
        if e.adapter and not Path(e.adapter, "adapter_config.json").is_file():
            missing_model(f"eval.evaluator.adapter: no LoRA adapter at {e.adapter} (expected adapter_config.json)",
                          missing)
    if instruction_texts is not None:
        check_leakage(cfg, instruction_texts, present)


def check_leakage(cfg: Config, instruction_texts: list[str], tasks: list[str] | None = None) -> None:
    """Refuse duel instructions that are test items (default: of every configured task); warn about dev
    items. A dev item in the pool makes model selection on dev less blind but reports nothing on it,
    and `data prepare` keeps and counts them by design (GSM8K's dev split is GSM8K train, which is the
    authors' pool), so refusing them would refuse every clean GSM8K pool."""
    for task in cfg.eval.tasks if tasks is None else tasks:
        spec, path = data.get_spec(task), task_file(cfg, task)
        found = data.read_splits(spec, path)
        rows = [row for name, split in found.items() if name != "dev" for row in split.rows]
        hits = overlap(instruction_texts, [data.doc_text(spec, row) for row in rows])
        if "dev" in found:
            dev = overlap(instruction_texts, [data.doc_text(spec, row) for row in found["dev"].rows])
            if dev:
                log.warning("instructions.source: %d instruction(s) of %s are dev items of evaluation task %r "
                            "(%s): model selection on dev is not blind to them", len({i for i, _ in dev}),
                            cfg.instructions.source, task, path)
        if hits:
            shown = "; ".join(repr(instruction_texts[i][:100]) for i, _ in hits[:2])
            raise ConfigError(f"instructions.source: {len(hits)} instruction(s) of {cfg.instructions.source} are "
                              f"items of evaluation task {task!r} ({path}), e.g. {shown}. An evaluation item must "
                              "never be a duel instruction: remove them from the instruction file")


def write_prompts(cfg: Config, paths: RunPaths) -> None:
    """Each task split's prompts (lm-eval builds them), once per run and settings."""
    from .task import load_task

    for task in cfg.eval.tasks:
        for split in splits(cfg):
            out, path = paths.eval_prompts(task, split), task_file(cfg, task)
            stat = path.stat()  # a file edited in place gets new prompts
            settings = {"task": task, "split": split, "file": str(path), "limit": cfg.eval.limit,
                        "file_stat": [stat.st_size, stat.st_mtime_ns]}
            try:  # built already with these settings (a damaged file is built again)
                if {k: read_json(out).get(k) for k in settings} == settings:
                    continue
            except (OSError, ValueError, AttributeError):
                pass
            loaded = load_task(task, path, split, cfg.eval.limit)
            atomic_write_json(out, {**settings, "kind": loaded.kind, "max_new_tokens": loaded.max_new_tokens,
                                    "docs": loaded.docs, "prompts": loaded.prompts()})


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]


def make_plan(cfg: Config, paths: RunPaths, point: int, members: list[int] | None = None,
              tests: dict[str, list[str]] | None = None) -> Plan:
    """The point's task splits ("items") and the shards of its evaluate and rate arrays.

    The items of every task split, one after another, are cut into shards of
    `eval.items_per_shard`: one evaluate task answers a shard (which may span
    several small task splits) with one model load per base-model group, and
    one rate task rates a shard of the open-ended tasks' answers. An item split
    and a shard are named with a digest of everything their results depend on
    (the prompts, answer budget, backend, evaluator): a shard of an earlier plan
    with the same content is reused, and one with other content is never taken
    for it.

    With eval.test selected the points answer dev only, and `tests` ({member: [task]}, from
    eval/selected.py once dev has chosen) adds the test items of those tasks, answered by those
    members only (an item's "members"), in shards of their own after the dev shards, so that the
    dev shards keep their names and are not computed again.
    """
    write_prompts(cfg, paths)
    ev, per_shard = cfg.eval, cfg.eval.items_per_shard
    selected = ev.test == "selected" and "test" in splits(cfg)
    items = [plan_item(cfg, paths, task, split) for task in ev.tasks for split in splits(cfg)
             if not (selected and split == "test")]
    dev = len(items)
    for task in ev.tasks if selected else []:
        who = sorted(m for m, tasks in (tests or {}).items() if task in tasks)
        if who:
            items.append({**plan_item(cfg, paths, task, "test"), "members": who})
    rated = [i for i, it in enumerate(items) if it["kind"] == "rated"]
    evaluate = cut_shards(items, range(dev), per_shard)
    n_dev = len(evaluate)
    evaluate += cut_shards(items, range(dev, len(items)), per_shard, first=n_dev)
    rate = cut_shards(items, [i for i in rated if i < dev], per_shard)
    rate += cut_shards(items, [i for i in rated if i >= dev], per_shard, first=len(rate))
    members = list(range(len(cfg.members))) if members is None else members  # a baseline: its one model
    groups = [g for g in ([i for i in group if i in members] for group in cfg.base_groups()) if g]
    for shard in evaluate[n_dev:]:  # a selected test shard: only the groups of the members who answer it
        who = {m for i, _, _ in shard["segments"] for m in items[i]["members"]}
        shard["groups"] = [g for g, group in enumerate(groups) if who & {cfg.members[i].name for i in group}]
    names = [cfg.members[i].name for i in members]
    return Plan({"point": point, "members": names, "groups": groups, "items": items,
                 "evaluate_shards": evaluate, "evaluate_tasks": [[g, k] for k, shard in enumerate(evaluate)
                                                                 for g in shard.get("groups", range(len(groups)))],
                 "rate_shards": rate, "rate_tasks": list(range(len(rate)))})


def plan_item(cfg: Config, paths: RunPaths, task: str, split: str) -> dict:
    """A task split as a plan item, named with a digest of everything its results depend on."""
    prompts = read_json(paths.eval_prompts(task, split))
    budget = min(prompts["max_new_tokens"], cfg.eval.max_new_tokens or 10**9)
    settings = [prompts["docs"], prompts["prompts"], budget, cfg.eval_backend]
    if prompts["kind"] == "rated":
        settings.append(to_dict(cfg.eval.evaluator))
    return {"task": task, "split": split, "name": f"{task}.{split}.{digest(settings)}", "kind": prompts["kind"],
            "n": len(prompts["prompts"]), "max_new_tokens": budget}


def item_members(plan: dict, item: int) -> list[str]:
    """The members who answer an item: all of the point's, or (a selected test item) its own."""
    return plan["items"][item].get("members", plan["members"])


def cut_shards(items: list[dict], which, per_shard: int, first: int = 0) -> list[dict]:
    """The rows of items `which`, one item after another, in shards of `per_shard` rows; each
    shard a list of segments [item, first row, end row] and a name (numbered from `first`)."""
    shards, current, room = [], [], per_shard
    for i in which:
        start = 0
        while start < items[i]["n"]:
            take = min(room, items[i]["n"] - start)
            current.append([i, start, start + take])
            start, room = start + take, room - take
            if room == 0:
                shards.append(current)
                current, room = [], per_shard
    if current:
        shards.append(current)
    return [{"name": f"s{k:04d}." + digest([(items[i]["name"], a, b) for i, a, b in segments]),
             "segments": segments} for k, segments in enumerate(shards, first)]


def shard_files(paths: RunPaths, plan: dict, point: int, stage: str, shard: dict) -> list[Path]:
    """An evaluate shard's files (one per base-model group) or a rate shard's file."""
    if stage == "evaluate":  # a selected test shard: only the groups of the members who answer it
        return [paths.eval_shard(point, stage, shard["name"], g)
                for g in shard.get("groups", range(len(plan["groups"])))]
    return [paths.eval_shard(point, stage, shard["name"])]


def item_values(paths: RunPaths, plan: dict, point: int, stage: str, item: int) -> dict[str, list]:
    """Per member, in row order, what the shards of `stage` hold for one item (the answers of
    evaluate, the ratings of rate)."""
    field = "responses" if stage == "evaluate" else "ratings"
    out: dict[str, list] = {m: [] for m in plan["members"]}
    entries = load_entries(paths)  # each shard is checked against its record as it is read
    for shard in plan[f"{stage}_shards"]:
        at = [s for s, (i, _, _) in enumerate(shard["segments"]) if i == item]
        for path in shard_files(paths, plan, point, stage, shard) if at else []:
            held = read_checked_json(paths, path, entries)[field]
            for s in at:
                for member, values in held[s].items():
                    out[member] += values
    return out
