"""The checks of a Config's own fields (`validate`): names, model folders, ranges, combinations;
each raises ConfigError naming the field. Not every check: those that read the instruction, eval
or SFT files, or probe the GPU path, live with what they check; `preflight.check` runs them all.

Kept apart from the dataclasses in schema.py, which re-exports `validate`.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..rundir.paths import JOB_STAGES
from .ranges import check_ranges, require

if TYPE_CHECKING:
    from .schema import Config, Resources

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# folders that sit next to the members' own under RUN/sft/ and RUN/eval/<point>/
RESERVED_NAMES = ("done", "manifest", "evaluate", "rate")
SBATCH_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def zero_stage(deepspeed_json: str) -> int | None:
    try:
        return json.loads(Path(deepspeed_json).read_text()).get("zero_optimization", {}).get("stage")
    except (OSError, ValueError) as err:
        raise ConfigError(f"train.deepspeed: cannot read {deepspeed_json}: {err}") from err


def validate_vllm(cfg: Config) -> None:
    v = cfg.vllm
    if v.tensor_parallel_size is not None:
        require("vllm.tensor_parallel_size", v.tensor_parallel_size, " or null (every GPU of the job)")
    require("vllm.gpu_memory_utilization", v.gpu_memory_utilization)
    if v.max_model_len is not None:
        require("vllm.max_model_len", v.max_model_len, " or null")
    if v.block_size is not None:
        require("vllm.block_size", v.block_size, " or null")
    require("vllm.cpu_kv_cache_gb", v.cpu_kv_cache_gb)


def validate_pythons(cfg: Config) -> None:
    """A stage's interpreter names no unset variable; local tasks' interpreter must exist here."""
    for stage in JOB_STAGES:
        python = getattr(cfg.cluster, stage).python
        unset = re.findall(r"\$\{?(\w+)", python or "")  # resolve_paths expanded the variables that are set
        if unset:
            raise ConfigError(f"cluster.{stage}.python: {python!r} names ${unset[0]}, which is not set: export it "
                              "(the presets' vLLM stages: SPARTA_VLLM_PYTHON=/path/to/.venv-vllm/bin/python)")
    if cfg.cluster.executor != "local":
        return
    for stage in JOB_STAGES:
        python = getattr(cfg.cluster, stage).python
        if python and not shutil.which(shlex.split(python)[-1]):
            raise ConfigError(f"cluster.{stage}.python: no executable {shlex.split(python)[-1]!r}")


def validate_panel(cfg: Config) -> None:
    """judge.panel_size: k of the M - 2 members outside each duel, for SPARTA's spec rules only."""
    k, m = cfg.judge.panel_size, len(cfg.members)
    if k is None:
        return
    if cfg.method != "sparta":
        raise ConfigError(f"judge.panel_size: a panel of the tribe's judges is SPARTA's (method sparta); "
                          f"method {cfg.method} has its own judge, so leave it null")
    if not 1 <= k <= m - 2:
        raise ConfigError(f"judge.panel_size: must be in 1..{m - 2} (the members outside a duel of a tribe of "
                          f"{m}), got {k}; null: all of them")
    if cfg.reputation.duelists_judge:
        raise ConfigError("judge.panel_size: draws from the members outside each duel; reputation.duelists_judge "
                          "(a tribe of 2) has none, so set one of them, not both")
    if cfg.reputation.variant == "authors":
        raise ConfigError("judge.panel_size: the authors' rating code counts every non-duelling member without a "
                          "score as a 5-5 judge, so everyone outside the panel would vote 5-5; use variant spec")


def validate_judge_prompt(cfg: Config) -> None:
    """judge.rubric / judge.reasoning: a judge that writes before it scores is read from its words."""
    jc = cfg.judge
    if jc.rubric == "spec" and not jc.reasoning:
        return
    what = f"judge.rubric: {jc.rubric}" if not jc.reasoning else "judge.reasoning: true"
    if jc.score != "parsed":
        raise ConfigError(f"judge.score: {jc.score} reads a score from the first tokens of the answer, but with "
                          f"{what} the judge writes before it scores; set judge.score: parsed")
    if jc.answer_prefix:
        raise ConfigError(f"judge.answer_prefix: {jc.answer_prefix!r} makes the judge start with its score, but with "
                          f"{what} it justifies first; set judge.answer_prefix: ''")


def missing_model(problem: str, missing: list[str] | None) -> None:
    """A model or adapter folder that is not there: refused, or noted in `missing` (a dry run, which
    shows the plan and its cost before the models are downloaded; the driver warns)."""
    if missing is None:
        raise ConfigError(problem)
    missing.append(problem)


def validate(cfg: Config, tribe: bool = True, missing: list[str] | None = None) -> None:
    """The config's own checks (no file but the model folders' is read, no model loaded); raises
    ConfigError naming the field. preflight.check runs these and the rest.
    `tribe=False`: members to evaluate, not a tribe (any number, at least one).
    `missing`: a list that collects missing model and adapter folders instead (missing_model)."""
    members = cfg.members
    if not members:
        raise ConfigError("tribe.members: no members")
    if tribe and len(members) < (2 if cfg.reputation.duelists_judge else 3):
        raise ConfigError(f"tribe.members: SPARTA needs at least 3 members (two duel, one judges), got "
                          f"{len(members)}; a tribe of 2 needs reputation.duelists_judge: true")
    seen: dict[str, int] = {}
    for i, m in enumerate(members):
        # a member's fields by position, as the YAML lists them (and as the other checks name them);
        # its sampling and initial_rating: check_ranges
        where = f"tribe.members.{i}"
        if not SAFE_NAME.match(m.name):
            raise ConfigError(f"{where}.name: {m.name!r} is not 1-64 characters of letters, digits, '_', '.', '-' "
                              "starting with a letter or digit (it becomes a file name)")
        if m.name in RESERVED_NAMES:
            raise ConfigError(f"{where}.name: {m.name!r} is taken by the run directory's own folders "
                              f"({', '.join(RESERVED_NAMES)}); rename the member")
        if m.name in seen:
            raise ConfigError(f"{where}.name: duplicate member name {m.name!r} (also tribe.members.{seen[m.name]}); "
                              "rename one of them")
        seen[m.name] = i
        if not Path(m.model, "config.json").is_file():
            missing_model(f"{where}.model: no model at {m.model} for member {m.name!r} (expected a folder "
                          "with config.json; for the tiny tribe run tools/prepare_tiny_tribe.py)", missing)
        if m.adapter and not Path(m.adapter, "adapter_config.json").is_file():
            missing_model(f"{where}.adapter: no LoRA adapter at {m.adapter} for member {m.name!r} "
                          "(expected adapter_config.json)", missing)
    t = cfg.tribe
    for name, value in (("tribe.iterations", t.iterations), ("tribe.duels_per_iteration", t.duels_per_iteration),
                        ("generate.duels_per_shard", cfg.generate.duels_per_shard),
                        ("generate.batch_size", cfg.generate.batch_size),
                        ("judge.duels_per_shard", cfg.judge.duels_per_shard), ("judge.rounds", cfg.judge.rounds),
                        ("judge.batch_size", cfg.judge.batch_size), ("judge.max_new_tokens", cfg.judge.max_new_tokens),
                        ("train.batch_size", cfg.train.batch_size), ("train.lora_r", cfg.train.lora_r),
                        ("cluster.local_parallel", cfg.cluster.local_parallel),
                        ("cluster.local_threads", cfg.cluster.local_threads)):
        require(name, value, lower_only=True)  # the upper ends: check_ranges, below
    if tribe:
        validate_panel(cfg)
    validate_judge_prompt(cfg)
    validate_vllm(cfg)
    validate_pythons(cfg)
    for name in ("max_retries", "max_timeouts"):
        require(f"cluster.{name}", getattr(cfg.cluster, name), lower_only=True)
    require("train.warmup_ratio", cfg.train.warmup_ratio, " (a share of the training steps)")
    if cfg.train.deepspeed and not Path(cfg.train.deepspeed).is_file():
        raise ConfigError(f"train.deepspeed: no DeepSpeed config at {cfg.train.deepspeed}")
    for section in (cfg.reputation, cfg.matchmaking):
        try:
            section.validate()
        except ValueError as err:
            raise ConfigError(str(err)) from err
    for model in {m.model for m in members}:
        sharing = [m for m in members if m.model == model]
        if len({m.trust_remote_code for m in sharing}) > 1:
            raise ConfigError(f"tribe.members: {', '.join(m.name for m in sharing)} share the base model {model} "
                              "(one load serves them) but not trust_remote_code; set it alike for all of them")
    validate_sbatch(cfg)
    check_ranges(cfg)


def validate_sbatch(cfg: Config) -> None:
    """Strings that become lines of an sbatch script are plain values: a newline in a partition name
    would start a shell command of its own. Only `setup` lines and `python` are shell, by design."""
    for stage in JOB_STAGES:
        r: Resources = getattr(cfg.cluster, stage)
        values = {f"cluster.{stage}.{k}": getattr(r, k) for k in ("partition", "account", "qos", "constraint")}
        for key, value in r.extra_sbatch.items():
            if not SBATCH_KEY.match(key):
                raise ConfigError(f"cluster.{stage}.extra_sbatch: {key!r} is not an sbatch option name")
            if not (value is True or isinstance(value, (str, int, float)) and not isinstance(value, bool)):
                raise ConfigError(f"cluster.{stage}.extra_sbatch.{key}: expected a value or true (a flag), "
                                  f"got {value!r}")
            values[f"cluster.{stage}.extra_sbatch.{key}"] = str(value)
        for name, value in list(values.items()) + [(f"cluster.{stage}.python", r.python)] + \
                [(f"cluster.{stage}.setup.{i}", line) for i, line in enumerate(r.setup)]:
            if value is not None and re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value):
                raise ConfigError(f"{name}: control characters (a newline) are not allowed, got {value!r}")
