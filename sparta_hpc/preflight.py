"""Every check of a config before anything is submitted: `check(cfg)`, which the driver (its dry run
included) and `sparta-hpc eval` call. It sits above config/, inputs/, eval/, methods/ and stages/
and calls each one's own checks, in the order their first failure is reported.

Its last part checks the GPU path without a GPU: what would otherwise fail (or quietly waste a node)
only once the jobs are on the GPUs.

- a training job runs one process per GPU: every GPU it asks for is used (tasks_per_node = gpus_per_node);
- ZeRO-3 takes neither QLoRA nor TRL's precomputed reference log-probs, whichever config enables it
  (train.deepspeed or a member's own);
- vLLM's tensor parallelism splits the attention heads: its size must divide them;
- each stage that serves with vLLM runs an interpreter that imports vLLM, at a version that has what
  the judge's scoring asks of it (SamplingParams.logprob_token_ids, first in vLLM 0.20.0).
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from . import methods
from .config.checks import validate, zero_stage
from .config.resources import PER_MEMBER, check_resources, for_member, for_model
from .config.schema import Config
from .errors import ConfigError
from .eval.decontaminate import decontaminate
from .eval.plan import check_eval
from .inputs.instructions import Instruction, load_instructions
from .inputs.sft_data import check_sft
from .stages.tracking import check_tracking

# vLLM 0.20.0 (release notes: "Generative Scoring (#34539)") added SamplingParams.logprob_token_ids,
# which the expected-score judge asks for; 0.19.1's sampling_params.py has no such field
VLLM_FLOOR = (0, 20, 0)
PROBE = ("import importlib.metadata as m, vllm\n"
         "from vllm import SamplingParams\n"
         "SamplingParams(logprob_token_ids=[1])\n"
         "print(vllm.__version__)")


@dataclass
class Checked:
    """What the checks read on the way, for the driver to use rather than read again."""

    instructions: list[Instruction] | None = None  # the pool, decontaminated; None: not read (see check)
    pool: dict | None = None  # the decontamination's record
    sft_sizes: dict[str, dict] = field(default_factory=dict)  # check_sft's, per member


def check(cfg: Config, *, missing: list[str] | None = None, tribe: bool = True, evaluation_only: bool = False,
          sft_done: bool = False) -> Checked:
    """Every check of `cfg` that needs no model load; ConfigError naming the field.

    `missing`: a list that collects what is not there yet (model and adapter folders, the
    instruction file) instead of refusing it: a dry run, which shows the plan and its cost first.
    `tribe=False`: members to evaluate, not a tribe. `evaluation_only`: `sparta-hpc eval`, which
    runs evaluation points alone, so the instructions, the method, tracking, the stages' resources
    and the sft data are not its business. `sft_done`: the sft stage finished, its data is not read again.
    """
    validate(cfg, tribe=tribe, missing=missing)
    if evaluation_only:
        check_eval(cfg)
        check_gpu_path(cfg)
        return Checked()
    checked = Checked()
    if missing is not None and cfg.instructions.source != "demo" and not Path(cfg.instructions.source).is_file():
        # a dry run before `data prepare`: the plan's shape and cost need no instruction text
        missing.append(f"instructions.source: no file at {cfg.instructions.source} (sparta-hpc data prepare "
                       "writes DIR/<task>/train.jsonl)")
    else:
        checked.instructions = load_instructions(cfg.instructions)  # a bad instruction file fails here, not in a job
    texts = None if checked.instructions is None else [i.text for i in checked.instructions]
    check_eval(cfg, texts, missing=missing)
    # the decontamination's refusal stops the run here, before any job
    if checked.instructions is not None:
        checked.instructions, checked.pool = decontaminate(cfg, checked.instructions, missing)
    elif cfg.instructions.decontaminate != "off" and cfg.eval.tasks:
        missing.append("instructions.decontaminate: the pool is not checked for evaluation items (no "
                       "instruction file yet)")
    methods.check_method(cfg, checked.instructions, missing=missing)
    check_tracking(cfg)
    check_resources(cfg)
    check_gpu_path(cfg)  # ranks per GPU, ZeRO-3's limits, tensor parallel sizes, vLLM's interpreters
    # a bad SFT file or an empty slice fails here, not in a job
    checked.sft_sizes = {} if sft_done else check_sft(cfg)
    return checked


def check_gpu_path(cfg: Config) -> None:
    check_training_ranks(cfg)
    check_zero3(cfg)
    check_tensor_parallel(cfg)
    check_vllm_interpreters(cfg)


def check_training_ranks(cfg: Config) -> None:
    for i, m in enumerate(cfg.members):
        for stage in PER_MEMBER:
            if stage == "sft" and not cfg.sft.data:
                continue
            r = for_member(cfg, stage, i)
            if r.gpus_per_node > 1 and r.tasks_per_node != r.gpus_per_node:
                where = f"tribe.members.{i}.resources" if {"gpus_per_node", "tasks_per_node"} & set(m.resources) \
                    else f"cluster.{stage}"
                raise ConfigError(
                    f"{where}: member {m.name!r}'s {stage} job asks for {r.gpus_per_node} GPUs per node but runs "
                    f"{r.tasks_per_node} process(es) per node; training runs one process per GPU, so "
                    f"{r.gpus_per_node - r.tasks_per_node} GPU(s) of each node would idle: set tasks_per_node: "
                    f"{r.gpus_per_node}")


def member_zero_stage(cfg: Config, member: int) -> int | None:
    ds = cfg.members[member].deepspeed or cfg.train.deepspeed
    return zero_stage(ds) if ds else None


def check_zero3(cfg: Config) -> None:
    for i, m in enumerate(cfg.members):
        if member_zero_stage(cfg, i) != 3:
            continue
        source = f"tribe.members.{i}.deepspeed" if m.deepspeed else "train.deepspeed"
        if cfg.train.quantization == "4bit":
            raise ConfigError(f"train.quantization: 4bit (QLoRA) does not shard under ZeRO-3 ({source} of member "
                              f"{m.name!r}); use ZeRO-2 (configs/deepspeed/zero2.json) or no DeepSpeed with QLoRA")
        if cfg.train.precompute_ref_log_probs:
            raise ConfigError(
                f"train.precompute_ref_log_probs: member {m.name!r} trains under ZeRO-3 ({source}); TRL precomputes "
                "through a second DeepSpeed engine around the same model, which ZeRO-3's parameter coordinator "
                "does not survive (DeepSpeed 0.19.8: 'IndexError: pop from an empty deque' at the first step). "
                "Set it false, or train that member with ZeRO-2")


def _heads(model: str) -> tuple[int, int] | None:
    """(attention heads, key-value heads) from a model folder's config.json; None before it is downloaded."""
    try:
        config = json.loads(Path(model, "config.json").read_text())
    except (OSError, ValueError):
        return None
    config = config.get("text_config", config)
    heads = config.get("num_attention_heads")
    if not isinstance(heads, int):
        return None
    return heads, config.get("num_key_value_heads") or heads


def vllm_stages(cfg: Config) -> list[str]:
    """The stages whose tasks serve with vLLM (rate only when a task is rated by the evaluator)."""
    stages = [s for s, b in (("generate", cfg.generate.backend), ("judge", cfg.judge_backend)) if b == "vllm"]
    if cfg.eval.tasks and cfg.eval_backend == "vllm":
        from .eval.data import SPECS

        stages.append("evaluate")
        if any(SPECS[t].kind == "rated" for t in cfg.eval.tasks if t in SPECS):
            stages.append("rate")
    return stages


def check_tensor_parallel(cfg: Config) -> None:
    for stage in vllm_stages(cfg):
        for model in sorted({m.model for m in cfg.members}):
            tp = cfg.vllm.tensor_parallel_size or max(1, for_model(cfg, stage, model).gpus_per_node)
            heads = _heads(model)
            if heads is None or tp == 1:
                continue
            q, kv = heads
            if q % tp or (kv % tp and tp % kv):
                what = "vllm.tensor_parallel_size" if cfg.vllm.tensor_parallel_size else \
                    f"cluster.{stage}.gpus_per_node (vLLM runs tensor parallel over every GPU of the task)"
                raise ConfigError(f"{what}: {tp} does not split {model}'s {q} attention heads ({kv} key-value "
                                  f"heads) evenly; vLLM would refuse it in the job. Use a size that divides {q}")


@lru_cache(maxsize=None)
def vllm_version(python: str) -> tuple[str | None, str]:
    """(vLLM's version in that interpreter, or None; what went wrong)."""
    try:
        proc = subprocess.run([*shlex.split(python), "-c", PROBE], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as err:
        return None, f"it does not run here ({err})"
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"it does not import vLLM with SamplingParams.logprob_token_ids ({last})"
    return proc.stdout.strip().splitlines()[-1], ""


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_vllm_interpreters(cfg: Config) -> None:
    """Each interpreter a vLLM stage runs (cluster.<stage>.python, a base model's own, or the driver's)
    imports vLLM at VLLM_FLOOR or later. On Slurm it is the path on the shared filesystem, run here."""
    import sys

    seen = set()
    for stage in vllm_stages(cfg):
        for model in sorted({m.model for m in cfg.members}):
            python = for_model(cfg, stage, model).python or sys.executable
            if python in seen:
                continue
            seen.add(python)
            version, why = vllm_version(python)
            where = f"cluster.{stage}.python ({python})"
            if version is None:
                raise ConfigError(f"{where}: the {stage} stage serves with vLLM but {why}; point it at the Python "
                                  f"of a venv with vLLM >= {'.'.join(map(str, VLLM_FLOOR))} (docs/vllm.md)")
            if _version(version) < VLLM_FLOOR:
                raise ConfigError(f"{where}: vLLM {version} there; the judge's expected scores need "
                                  f"SamplingParams.logprob_token_ids, vLLM >= {'.'.join(map(str, VLLM_FLOOR))}")
