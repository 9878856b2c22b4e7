"""Which resources each job gets: per base model and per member, inheriting `cluster.<stage>`.

A mixed tribe (members on 7B, 14B and 72B base models) needs more GPUs for the
72B group's generate and judge tasks, and more nodes (and ZeRO-3) for the 72B
member's training, than for the others:

    cluster:
      generate: {gpus_per_node: 1, ...}          # every group's default
      models:
        - {model: /models/Qwen2.5-72B-Instruct, generate: {gpus_per_node: 4}, judge: {gpus_per_node: 4}}
    tribe:
      members:
        - {name: big, model: /models/Qwen2.5-72B-Instruct, resources: {nodes: 2, gpus_per_node: 8},
           deepspeed: configs/deepspeed/zero3.json}

A task's resources are its stage's, with the fields its base model (generate,
judge, evaluate) or its member (train, sft) changes. The launcher submits one
job array per distinct set of resources (and splits an array above Slurm's
MaxArraySize); vLLM's tensor parallelism follows a task's GPUs.
"""

from __future__ import annotations

import json
import typing
from dataclasses import asdict, replace
from pathlib import Path

from ..errors import ConfigError
from .overrides import build_value
from .schema import Config, Resources

PER_MODEL = ("generate", "judge", "evaluate")  # tasks that serve one base model
PER_MEMBER = ("train", "sft")  # tasks that are one member


def override(base: Resources, changes: dict, where: str) -> Resources:
    """`base` with the fields `changes` names; ConfigError names an unknown field or a bad value."""
    types = typing.get_type_hints(Resources)
    typed = {}
    for name, value in changes.items():
        if name not in types:
            raise ConfigError(f"{where}: unknown resource field {name!r}; known: {', '.join(types)}")
        typed[name] = build_value(types[name], value, f"{where}.{name}")
    return replace(base, **typed)


def for_model(cfg: Config, stage: str, model: str) -> Resources:
    """The resources of a `stage` task serving base model `model`."""
    base = getattr(cfg.cluster, stage)
    for i, entry in enumerate(cfg.cluster.models):
        if entry.model == model:
            return override(base, getattr(entry, stage), f"cluster.models.{i}.{stage}")
    return base


def for_member(cfg: Config, stage: str, member: int) -> Resources:
    """The resources of member `member`'s `stage` (train, sft) job."""
    m = cfg.members[member]
    return override(getattr(cfg.cluster, stage), m.resources, f"tribe.members.{member} ({m.name!r}).resources")


def for_task(cfg: Config, stage: str, task: int | None, plan=None) -> Resources:
    """A task's resources: its base model's (plan: the iteration's or evaluation point's rundir.plan.Plan,
    whose task list names the group), its member's, or the stage's."""
    if stage in PER_MEMBER and task is not None:
        return for_member(cfg, stage, task)
    if stage in PER_MODEL and task is not None and plan is not None:
        group = plan.tasks(stage)[task][0]
        members = plan["groups"][group] if group < len(plan["groups"]) else []
        if members:
            return for_model(cfg, stage, cfg.members[members[0]].model)
    return getattr(cfg.cluster, stage)


def key(resources: Resources) -> str:
    """Tasks with equal keys can share a job array."""
    return json.dumps(asdict(resources), sort_keys=True)


def check_resources(cfg: Config) -> None:
    """Every per-model and per-member override, resolved once before any job."""
    models = {m.model for m in cfg.members}
    for i, entry in enumerate(cfg.cluster.models):
        if entry.model not in models:
            raise ConfigError(f"cluster.models.{i}.model: no member uses {entry.model}")
        for stage in PER_MODEL:
            override(getattr(cfg.cluster, stage), getattr(entry, stage), f"cluster.models.{i}.{stage}")
    for i, m in enumerate(cfg.members):
        if m.deepspeed and not Path(m.deepspeed).is_file():
            raise ConfigError(f"tribe.members.{i} ({m.name!r}).deepspeed: no DeepSpeed config at {m.deepspeed}")
        for stage in PER_MEMBER:
            r = for_member(cfg, stage, i)
            if r.nodes < 1 or r.tasks_per_node < 1:
                raise ConfigError(f"tribe.members.{i} ({m.name!r}).resources: nodes and tasks_per_node must be >= 1")
    if cfg.cluster.max_array_size < 1:
        raise ConfigError(f"cluster.max_array_size: must be >= 1, got {cfg.cluster.max_array_size}")
