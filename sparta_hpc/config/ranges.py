"""The range of every number in the config: the only place the config's numeric bounds are written,
checked before any job (check_ranges, at the end of config.checks.validate).

A number outside its range would otherwise surface deep inside a job (a negative learning rate
in TRL, a NaN temperature in sampling, 10**30 duels in the plan's allocation). Every integer
must also stay below INT_LIMIT and every float be finite (overrides.coerce), so a field
without an entry here is still safe to allocate from. The checks that run earlier with a message
of their own (vllm, counts, shares) read their bound here through `require`. The reputation and
matchmaking sections are checked first by the algorithm's own `validate` (algorithm/ sits below
config/, and `sparta-hpc replay`/`simulate` use it without a Config), so their bounds are also
written there: the first check that fails names the field.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from typing import Any

from ..errors import ConfigError

INT_LIMIT = 10**9  # a count beyond this is a typo, not an experiment (seeds: below 2**32)


@dataclasses.dataclass(frozen=True)
class Range:
    lo: float
    hi: float | None = None
    lo_open: bool = False  # lo itself is not allowed
    hi_open: bool = False  # hi itself is not allowed

    def holds(self, x: float) -> bool:
        above_lo = x > self.lo if self.lo_open else x >= self.lo
        return above_lo and (self.hi is None or (x < self.hi if self.hi_open else x <= self.hi))

    def __str__(self) -> str:
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


def at_least(lo: float, hi: float | None = None) -> Range:
    return Range(lo, hi)


def above(lo: float, hi: float | None = None) -> Range:
    return Range(lo, hi, lo_open=True)


def share(lo_open: bool = False) -> Range:
    """A share: in [0, 1) (or (0, 1))."""
    return Range(0, 1, lo_open=lo_open, hi_open=True)


COUNT = at_least(1)
# dotted names; "*" stands for a member's position or a cluster stage
RANGES: dict[str, Range] = {
    "tribe.members.*.temperature": at_least(0, 100),
    "tribe.members.*.top_p": above(0, 1),
    "tribe.members.*.top_k": COUNT,
    "tribe.members.*.max_new_tokens": at_least(1, 10**6),
    "tribe.members.*.initial_rating": above(0),
    "tribe.iterations": at_least(1, 10**4),
    "tribe.duels_per_iteration": at_least(1, 10**6),
    "tribe.seed": at_least(0, 2**32 - 1),
    "instructions.limit": COUNT,
    "matchmaking.alpha": at_least(0, 1),
    "matchmaking.k": COUNT,
    "reputation.initial_rating": above(0),
    "reputation.initial_deviation": above(0),
    "reputation.initial_k": above(0),
    "reputation.min_k": at_least(0),
    "reputation.decay_rate": above(0, 1),
    "reputation.decay_steps": above(0),
    "reputation.scaling_factor": above(0),
    "reputation.epsilon": above(0),
    "reputation.window_size": COUNT,
    "reputation.min_deviation": above(0),
    "reputation.floor": above(0),
    "generate.duels_per_shard": COUNT,
    "generate.batch_size": COUNT,
    "vllm.tensor_parallel_size": COUNT,
    "vllm.gpu_memory_utilization": above(0, 1),
    "vllm.max_model_len": COUNT,
    "vllm.cpu_kv_cache_gb": COUNT,
    "vllm.block_size": COUNT,
    "judge.duels_per_shard": COUNT,
    "judge.rounds": at_least(1, 1000),
    "judge.temperature": at_least(0, 100),
    "judge.max_new_tokens": at_least(1, 10**6),
    "judge.top_p": above(0, 1),
    "judge.top_k": COUNT,
    "judge.batch_size": COUNT,
    "judge.max_response_chars": COUNT,
    "judge.panel_size": COUNT,
    "train.beta": above(0),
    "train.learning_rate": above(0),
    "train.warmup_ratio": share(),
    "train.epochs": at_least(0),
    "train.max_steps": at_least(-1),
    "train.batch_size": COUNT,
    "train.gradient_accumulation_steps": COUNT,
    "train.max_length": COUNT,
    "train.max_prompt_length": COUNT,
    "train.weight_decay": at_least(0, 1),
    "train.lora_r": COUNT,
    "train.lora_alpha": COUNT,
    "train.lora_dropout": share(),
    "train.save_steps": COUNT,
    "baseline.samples": COUNT,
    "baseline.length_control": share(),
    "baseline.sppo_eta": above(0),
    "sft.max_examples": COUNT,
    "sft.learning_rate": above(0),
    "sft.warmup_ratio": share(),
    "sft.epochs": at_least(0),
    "sft.max_steps": at_least(-1),
    "sft.batch_size": COUNT,
    "sft.gradient_accumulation_steps": COUNT,
    "sft.max_length": COUNT,
    "sft.save_steps": COUNT,
    "eval.limit": COUNT,
    "eval.every": at_least(0),
    "eval.items_per_shard": COUNT,
    "eval.batch_size": COUNT,
    "eval.max_new_tokens": COUNT,
    "eval.evaluator.max_new_tokens": COUNT,
    "cluster.local_parallel": COUNT,
    "cluster.local_threads": COUNT,
    "cluster.max_retries": at_least(0, 1000),
    "cluster.max_timeouts": at_least(0, 1000),
    "cluster.*.time_min": COUNT,
    "cluster.*.nodes": COUNT,
    "cluster.*.tasks_per_node": COUNT,
    "cluster.*.gpus_per_node": at_least(0),
    "cluster.*.cpus_per_task": COUNT,
    "cluster.*.mem_gb": COUNT,
    "cluster.*.array_parallelism": COUNT,
}


def require(name: str, value: float, note: str = "", lower_only: bool = False) -> None:
    """ConfigError unless `value` is in RANGES[name]; `lower_only`: only above its lower end (check_ranges
    checks the upper one later); `note` follows the range in the message."""
    r = RANGES[name]
    if lower_only:
        r = Range(r.lo, lo_open=r.lo_open)
    if not r.holds(value):
        raise ConfigError(f"{name}: must be {r}{note}, got {value}")


def numbers(obj: Any, prefix: str = "") -> list[tuple[str, float]]:
    """(dotted name, value) of every number in a config dataclass (members by position)."""
    out = []
    for f in dataclasses.fields(obj):
        value, name = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out += numbers(value, name + ".")
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                out += numbers(item, f"{name}.{i}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((name, value))
    return out


def range_of(name: str) -> Range | None:
    if name in RANGES:
        return RANGES[name]
    for pattern, r in RANGES.items():
        if "*" in pattern and fnmatch.fnmatchcase(name, pattern):
            return r
    return None


def check_ranges(cfg) -> None:
    """ConfigError naming the first number outside its range (or not finite, or absurdly large)."""
    for name, value in numbers(cfg):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name}: must be a finite number, got {value}")
        if abs(value) >= INT_LIMIT and name != "tribe.seed":
            raise ConfigError(f"{name}: {value:g} is far beyond any sensible value (limit {INT_LIMIT:g})")
        r = range_of(name)
        if r is not None and not r.holds(value):
            raise ConfigError(f"{name}: must be {r}, got {value:g}")
