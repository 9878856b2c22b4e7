"""What the driver prints: the plan of a dry run, its sbatch scripts, the initial tribe, the closing summary."""

from __future__ import annotations

from ..config import resources
from ..config.schema import Config
from ..eval import data as eval_data
from ..eval import plan as eval_plan
from ..eval.decontaminate import report_lines
from ..inputs.instructions import Instruction
from ..inputs.sft_data import member_source
from ..rundir.files import read_json
from ..rundir.paths import INITIAL, JOB_STAGES, RunPaths, point_label
from ..rundir.plan import Plan
from ..stages import plan as plan_stage
from .cost import cost_lines
from .disk import disk_lines


def first_plan(cfg: Config, instructions: list | None = None) -> Plan:
    """Iteration 0's plan, computed in memory (nothing is written). `instructions`: those of the file
    (None: read it), or stand_ins() in a dry run before the file exists."""
    return plan_stage.make_plan(cfg, 0, plan_stage.initial_ratings(cfg), set(), instructions=instructions)


def stand_ins(cfg: Config) -> list[Instruction]:
    """As many placeholder instructions as an iteration draws: the plan's shape needs no text."""
    return [Instruction(str(i), "(no instruction file yet)") for i in range(cfg.tribe.duels_per_iteration)]


def dry_run(cfg: Config, paths: RunPaths, plan: Plan, sft_sizes: dict | None = None, pool: dict | None = None) -> str:
    """The plan a person checks before spending cluster time (`sft_sizes`: sft_data.check_sft's; `pool`:
    the decontamination's record, None before the instruction file exists)."""
    groups = plan["groups"]
    lines = [f"run directory: {paths.root}" + ("  (exists: would resume)" if paths.config.exists() else ""),
             f"tribe: {len(cfg.members)} members, {cfg.tribe.iterations} iterations x "
             f"{cfg.tribe.duels_per_iteration} duels, seed {cfg.tribe.seed}, executor {cfg.cluster.executor}",
             *method_lines(cfg), *report_lines(pool), "base-model groups (one model load per task serves the whole group):"]
    for g, members in enumerate(groups):
        lines.append(f"  group {g}: {cfg.members[members[0]].model}  <- "
                     + ", ".join(cfg.members[i].name for i in members))
    n_gen = -(-cfg.tribe.duels_per_iteration // cfg.generate.duels_per_shard)
    n_judge = -(-cfg.tribe.duels_per_iteration // cfg.judge.duels_per_shard)

    lines += sft_lines(cfg, sft_sizes or {})
    lines += ["per iteration:",
              "  plan       in the driver",
              f"  generate   job array: {len(plan.tasks('generate'))} tasks (iteration 0) = groups x {n_gen} shards "
              f"of {cfg.generate.duels_per_shard} duels [{cfg.generate.backend}]",
              f"  judge      job array: {len(plan.tasks('judge'))} tasks (iteration 0) = groups x {n_judge} shards "
              f"of {cfg.judge.duels_per_shard} duels, {cfg.judge.rounds} round(s), score: {cfg.judge.score}"
              + (f", panels of {cfg.judge.panel_size} of {len(cfg.members) - 2} judges ({cfg.judge.panel_sampling})"
                 if cfg.judge.panel_size else "") + f" [{cfg.judge_backend}]",
              "  gather     1 CPU job -> one HDF5 archive",
              "  aggregate  1 CPU job -> ratings, preference pairs",
              f"  train      {len(cfg.members)} DPO jobs, one per member (LoRA r={cfg.train.lora_r}, "
              f"lr {cfg.train.learning_rate}, beta {cfg.train.beta}"
              + (f", DeepSpeed {cfg.train.deepspeed}" if cfg.train.deepspeed else "") + ")",
              ] + eval_lines(cfg) + resource_lines(cfg) + cost_lines(cfg) + disk_lines(cfg)
    return "\n".join(lines)


def method_lines(cfg: Config) -> list[str]:
    """SPIN's instruction pool and training data, next to the tribe's (docs/methods.md)."""
    if cfg.method != "spin":
        return []
    ic = cfg.instructions
    return [f"method spin: instructions.source {ic.source}, the pool SPARTA draws from, "
            + ("only its instructions with a reference" if ic.with_reference_only else "every instruction")
            + f" (instructions.reference_field {ic.reference_field!r}, with_reference_only "
            f"{str(ic.with_reference_only).lower()}); chosen = the reference, rejected = the model's sample",
            "  train: iteration t >= 1 on its pairs and iteration t-1's (baseline.spin_previous, as SPIN's "
            "iterations 1-3)" if cfg.baseline.spin_previous else
            "  train: each iteration on its own pairs only (baseline.spin_previous: false)"]


def sft_lines(cfg: Config, sizes: dict) -> list[str]:
    """The sft stage of a dry run: one job per member, its slice and how much of it is used."""
    if not cfg.sft.data:
        return []
    sc, tc = cfg.sft, cfg.train
    steps = f"{sc.max_steps} steps" if sc.max_steps > 0 else f"{sc.epochs:g} epoch(s)"
    lines = [f"before iteration 0: sft  {len(cfg.members)} SFT jobs, one per member, on {sc.data} "
             f"(LoRA r={tc.lora_r}, lr {sc.learning_rate}, {steps}, batch {sc.batch_size} x "
             f"{sc.gradient_accumulation_steps}, max_length {sc.max_length}"
             + (f", DeepSpeed {tc.deepspeed}" if tc.deepspeed else "") + ") -> RUN/sft/<member>/adapter"]
    width = max(len(n) for n in cfg.member_names())
    for m in cfg.members:
        size = sizes.get(m.name, {})
        start = f"continues {m.adapter}" if m.adapter else "fresh LoRA"
        if not size:  # the stage is done: its data was not read again
            lines.append(f"  {m.name:{width}s}  slice {member_source(m)!r}: done")
            continue
        lines.append(f"  {m.name:{width}s}  slice {member_source(m)!r}: {size['rows']} rows, {size['used']} used, "
                     f"{start}")
    return lines


def tribe_table(cfg: Config, paths: RunPaths) -> str:
    """The initial tribe after the sft stage: each member's slice, steps, loss and adapter."""
    rows = [f"{'member':12s}  {'slice':14s}  {'examples':>8}  {'steps':>5}  {'loss first -> last':>18}  adapter"]
    for m in cfg.members:
        marker = paths.marker(INITIAL, "sft", m.name)
        s = read_json(marker) if marker.exists() else {}
        loss = (f"{s['first_loss']:.3f} -> {s['last_loss']:.3f}" if s.get("first_loss") is not None
                else "-")
        rows.append(f"{m.name:12s}  {member_source(m):14s}  {s.get('examples', '-'):>8}  {s.get('steps', '-'):>5}  "
                    f"{loss:>18}  {paths.sft_adapter(m.name)}")
    return "\n".join(rows)


def eval_lines(cfg: Config) -> list[str]:
    points = eval_plan.eval_points(cfg)
    if not points:
        return ["evaluation: none (eval.tasks is empty)"]
    ev, splits = cfg.eval, eval_plan.splits(cfg)
    names = ", ".join(point_label(p, "after iteration {}") for p in points)
    lines = [f"evaluation at {len(points)} point(s): {names}", "  tasks (items per split):"]
    rated = []
    for task in ev.tasks:
        spec, path = eval_data.get_spec(task), eval_plan.task_file(cfg, task)
        if path.exists():
            sizes = ", ".join(f"{s} {len(eval_data.read_split(spec, path, s, ev.limit).rows)}" for s in splits)
        else:  # a dry run before `data prepare` (the driver warned)
            sizes = "not there yet"
        lines.append(f"    {task:15s} {sizes}  <- {path}")
        rated += [task] if spec.kind == "rated" else []
    lines += [f"  evaluate   job array: base-model groups x task splits x shards of {ev.items_per_shard} items, "
              f"greedy [{cfg.eval_backend}]",
              f"  rate       job array: the evaluator {ev.evaluator.model} on {', '.join(rated)}" if rated
              else "  rate       nothing (no open-ended task)",
              "  score      1 CPU job -> lm-eval metrics, RUN/eval/<point>/<member>/<task>.json"]
    return lines


def resource_lines(cfg: Config) -> list[str]:
    c = cfg.cluster
    if c.executor == "local":
        return [f"resources: local executor, {c.local_parallel} task(s) at a time, {c.local_threads} threads each"]
    if c.executor == "debug":
        return ["resources: debug executor, every task inside the driver's process"]
    lines = ["resources (Slurm, per job):"]
    for stage in JOB_STAGES:
        lines.append(f"  {stage:10s} " + describe(getattr(c, stage)))
    for g, members in enumerate(cfg.base_groups()):  # mixed tribes: a base model's own resources
        model = cfg.members[members[0]].model
        for stage in resources.PER_MODEL:
            r = resources.for_model(cfg, stage, model)
            if r != getattr(c, stage):
                lines.append(f"  {stage:10s} group {g} ({model}): " + describe(r))
    for i, m in enumerate(cfg.members):  # and a member's own training job
        r = resources.for_member(cfg, "train", i)
        if r != c.train or m.deepspeed:
            lines.append(f"  {'train':10s} {m.name}: " + describe(r) + (f", DeepSpeed {m.deepspeed}" if m.deepspeed
                                                                        else ""))
    lines.append("  (python -m sparta_hpc.driver ... --dry-run --show-sbatch prints the sbatch scripts)")
    return lines


def describe(r) -> str:
    where = " ".join(f"{k}={getattr(r, k)}" for k in ("partition", "account", "qos", "constraint") if getattr(r, k))
    return (f"{r.nodes} node(s) x {r.tasks_per_node} task(s), {r.gpus_per_node} GPU(s)/node, {r.cpus_per_task} "
            f"CPUs/task, {r.mem_gb} GB, {r.time_min} min, array parallelism {r.array_parallelism} {where}").rstrip()


def sbatch_scripts(cfg: Config, paths: RunPaths, plan: Plan) -> str:
    """The sbatch scripts of iteration 0: one per job array (a stage has one per set of resources)."""
    from ..launch import arrays, sbatch_script

    tasks = {"generate": range(len(plan.tasks("generate"))), "judge": range(len(plan.tasks("judge"))),
             "gather": [None], "aggregate": [None], "train": range(len(cfg.members))}
    if cfg.sft.data:
        tasks = {"sft": range(len(cfg.members)), **tasks}
    out = []
    for stage, ids in tasks.items():
        needs = {t: resources.for_task(cfg, stage, t, plan) for t in ids}
        for chunk in arrays(list(ids), needs, cfg.cluster.max_array_size):
            when = ("before " if stage == "sft" else "") + "iteration 0"
            who = "" if chunk == [None] else f" {chunk}"
            out.append(f"# ---- {stage}: {len(chunk)} task(s){who} ({when})\n"
                       + sbatch_script(cfg, stage, len(chunk), str(paths.logs), needs[chunk[0]]))
    return "\n".join(out)


def baseline_table(cfg: Config, paths: RunPaths) -> str:
    policy = read_json(paths.policy)["member"] if paths.policy.exists() else "?"
    spin = cfg.method == "spin"  # SPIN trains iteration t on its pairs and t-1's (baseline.spin_previous)
    rows = [f"{cfg.method}: aligning {policy}",
            f"{'iter':>4}  {'instructions':>12}  {'pairs':>5}  " + ("+ t-1 pairs  " if spin else "")
            + f"{'judge pairs':>11}  {'no pair':>7}  {'judgments used':>14}  {'parsed':>6}  {'mean margin':>11}"]
    for t in range(cfg.tribe.iterations):
        if not paths.summary(t).exists():
            break
        s = read_json(paths.summary(t))
        used, parsed = judgment_counts(s)
        margin = f"{s['mean_margin']:.3f}" if s["mean_margin"] is not None else "-"
        rows.append(f"{t:>4}  {s['instructions']:>12}  {s['pairs']:>5}  "
                    + (f"{s.get('pairs_previous', 0):>11}  " if spin else "")
                    + f"{s['judge_pairs']:>11}  {s['dropped']:>7}  {used:>14}  {parsed:>6}  {margin:>11}")
    return "\n".join(rows)


def judgment_counts(s: dict) -> tuple[str, str]:
    """("used/asked", "parse rate") of an iteration's summary: the judgments whose score the algorithm
    used (with judge.score=expected, every one whose log-probs were read), and apart from that the
    share whose text held a parsable score."""
    if not s["judgments"]:
        return "-", "-"
    used = s.get("used", s["judgments"] - s["unparsed"])
    return f"{used}/{s['judgments']}", f"{1 - s['unparsed'] / s['judgments']:.0%}"


def summary_table(cfg: Config, paths: RunPaths) -> str:
    if cfg.method != "sparta":
        return baseline_table(cfg, paths)
    names = cfg.member_names()
    width = max(8, *(len(n) for n in names))
    head = f"{'iter':>4}  {'duels':>5}  {'judged':>6}  {'judgments used':>14}  {'parsed':>6}  {'pairs':>5}  " + \
        "  ".join(f"{n:>{width}}" for n in names)
    rows = [head]
    for t in range(cfg.tribe.iterations):
        if not paths.summary(t).exists():
            break
        s = read_json(paths.summary(t))
        used, parsed = judgment_counts(s)
        rows.append(f"{t:>4}  {s['duels']:>5}  {s['duels_with_judge']:>6}  {used:>14}  {parsed:>6}  {s['pairs']:>5}  "
                    + "  ".join(f"{s['ratings'][n]:>{width}.3f}" for n in names))
        silent = [f"{n} {r['unparsed']}/{r['judgments']}" for n, r in s["judges"].items() if r["unparsed"]]
        if silent:
            rows.append(f"{'':>4}  judgments without a parsable score: " + ", ".join(silent))
    return "\n".join(rows)
