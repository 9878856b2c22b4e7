"""The alignment methods: SPARTA and four single-model self-alignment baselines.

A method is a plan (who answers each instruction, who judges which answer)
and a pair builder (which answers become DPO pairs); the stages, the archive,
resume, job arrays and evaluation are the same for all of them.

    sparta          every member answers as a duelist, the others judge, reputation decides (SPEC 1)
    self_rewarding  the model samples N answers and judges them itself; best vs worst (Yuan et al. 2024)
    meta_rewarding  self-rewarding, and the model meta-judges its own judgments: judge pairs too
                    (Wu et al. 2024, arXiv 2407.19594)
    spin            the instruction's reference answer vs the model's own sample (Chen et al. 2024)
    sppo            N samples, pairwise win probabilities from a preference model, SPPO's squared loss on
                    the answers' win rates (stages/sppo_trainer.py; TRL's sppo_hard with baseline.sppo_loss: hard)
                    (Wu et al. 2024, arXiv 2405.00675)

The single-model methods align one member, by default BEST INIT: the member
best on the initial evaluation's dev split (recorded in RUN/policy.json).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config.checks import missing_model
from ..config.schema import METHODS, Config, resolve_path
from ..errors import ConfigError
from ..rundir.files import atomic_write_json, read_json
from ..rundir.paths import INITIAL, RunPaths

log = logging.getLogger(__name__)

SINGLE_MODEL = METHODS[1:]
POINTWISE = ("sparta", "self_rewarding", "meta_rewarding")  # judges score each answer 1..10
# TRL's DPO losses (DPOConfig.loss_type) that take chosen/rejected pairs
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "apo_zero", "apo_down", "discopop", "sigmoid_norm")


def samples(cfg: Config) -> int:
    """Answers per instruction: the two duelists, SPIN's one sample, or baseline.samples."""
    return {"sparta": 2, "spin": 1}.get(cfg.method, cfg.baseline.samples)


def previous_iterations(cfg: Config, iteration: int) -> list[int]:
    """The earlier iterations whose pairs iteration t's DPO trains on besides its own: SPIN's t-1
    (baseline.spin_previous; SPIN's iterations 1-3 mix the previous iteration's synthetic data with the
    current one's, uclaml/SPIN README:203), none for every other method and for iteration 0."""
    return [iteration - 1] if cfg.method == "spin" and cfg.baseline.spin_previous and iteration > 0 else []


def check_method(cfg: Config, instructions: list, missing: list[str] | None = None) -> None:
    """Every check of the method's settings that needs no model; ConfigError names the field.
    `missing`: collects a missing preference-model folder instead of refusing it (a dry run)."""
    names = cfg.member_names()
    if cfg.train.loss_type is not None and cfg.train.loss_type not in LOSS_TYPES:
        raise ConfigError(f"train.loss_type: must be one of {LOSS_TYPES} or null, got {cfg.train.loss_type!r}")
    if cfg.method == "sparta":
        return
    b = cfg.baseline
    if b.member is not None and b.member not in names:
        raise ConfigError(f"baseline.member: no member {b.member!r} (members: {', '.join(names)})")
    if b.member is None and not (cfg.eval.tasks and cfg.eval.initial):
        raise ConfigError(f"method {cfg.method}: baseline.member is not set, and BEST INIT needs the initial "
                          "evaluation: set baseline.member, or eval.tasks with eval.initial: true")
    if cfg.method in ("self_rewarding", "meta_rewarding", "sppo") and b.samples < 2:
        raise ConfigError(f"baseline.samples: {cfg.method} compares several answers per instruction; "
                          f"need >= 2, got {b.samples}")
    if b.length_control is not None and cfg.method != "meta_rewarding":
        raise ConfigError(f"baseline.length_control: Meta-Rewarding's length control; method {cfg.method} does not "
                          "use it (set it to null)")
    if cfg.method == "meta_rewarding" and (cfg.judge.rounds < 2 or cfg.judge.temperature <= 0):
        raise ConfigError("meta_rewarding: the model's judgments are compared with each other: set "
                          "judge.rounds >= 2 and judge.temperature > 0 (sampled judgments)")
    if cfg.method == "spin" and instructions is not None:  # None: a dry run before the file exists
        missing = [it for it in instructions if not it.reference.strip()]
        if missing:
            raise ConfigError(f"method spin: the chosen answer is each instruction's reference, and {len(missing)} "
                              f"of {len(instructions)} instructions of {cfg.instructions.source} have none (e.g. "
                              f"{missing[0].text[:80]!r}); set instructions.reference_field, or "
                              "instructions.with_reference_only: true")
    if cfg.method == "sppo":
        if b.judge_model and not Path(b.judge_model, "config.json").is_file():
            missing_model(f"baseline.judge_model: no model at {b.judge_model} (a folder with config.json)", missing)
        if b.judge_adapter and not Path(b.judge_adapter, "adapter_config.json").is_file():
            missing_model(f"baseline.judge_adapter: no LoRA adapter at {b.judge_adapter}", missing)
        if judge_is_evaluator(cfg) and not b.judge_is_evaluator:
            raise ConfigError(f"baseline.judge_model: SPPO's preference model is the evaluator (eval.evaluator.model "
                              f"{cfg.eval.evaluator.model}, the same adapter): SPPO would optimise the metric it is "
                              "scored by. Name another preference model, or set baseline.judge_is_evaluator: true "
                              "to do it on purpose")
    elif b.judge_model or b.judge_adapter:
        raise ConfigError("baseline.judge_model / judge_adapter: only SPPO uses a preference model")


def judge_is_evaluator(cfg: Config) -> bool:
    """Whether SPPO's preference model (baseline.judge_model + judge_adapter) is the evaluator
    (eval.evaluator.model + adapter): the same folders, after resolving."""
    b, ev = cfg.baseline, cfg.eval.evaluator

    def same(x: str | None, y: str | None) -> bool:
        return (x is None and y is None) or (x is not None and y is not None and resolve_path(x) == resolve_path(y))

    return bool(b.judge_model and ev.model) and same(b.judge_model, ev.model) and same(b.judge_adapter, ev.adapter)


def policy(cfg: Config, paths: RunPaths) -> int | None:
    """The member a single-model method aligns (None for SPARTA), as chosen at the run's start."""
    if cfg.method == "sparta":
        return None
    return cfg.member_names().index(read_json(paths.policy)["member"])


def choose_policy(cfg: Config, paths: RunPaths) -> str:
    """Pick and record the aligned member: baseline.member, else BEST INIT over the initial
    evaluation (dev split where evaluated): the highest mean over tasks of the member's score
    relative to the best initial member's, so that 1..10 ratings and accuracies weigh alike."""
    if paths.policy.exists():
        return read_json(paths.policy)["member"]
    if cfg.baseline.member:
        record = {"member": cfg.baseline.member, "why": "baseline.member"}
    else:
        record = best_init(read_json(paths.eval_summary(INITIAL))["scores"], cfg.member_names())
    atomic_write_json(paths.policy, record)
    log.info("%s aligns member %s (%s)", cfg.method, record["member"], record["why"])
    return record["member"]


def best_init(scores: dict, names: list[str]) -> dict:
    """BEST INIT from an initial evaluation's scores ({member: {task: {split: figures}}}): the member
    with the highest mean relative score on dev (test where no dev split was evaluated); ties go to
    the first in `names`. Also what `sparta-hpc suite` passes to a task's baselines."""
    split = "dev" if any("dev" in per for m in scores.values() for per in m.values()) else "test"
    tasks = sorted({t for m in scores.values() for t in m})
    best = {t: max((scores[m][t][split]["score"] or 0) for m in scores if t in scores[m]) for t in tasks}
    relative = {m: sum((scores[m][t][split]["score"] or 0) / best[t] for t in tasks if best[t]) / len(tasks)
                for m in names if m in scores}
    member = max(names, key=lambda m: relative.get(m, -1))
    return {"member": member, "why": f"BEST INIT: the highest mean relative score on the initial "
                                     f"evaluation's {split} split", "split": split, "relative": relative}


def trainees(cfg: Config, paths: RunPaths) -> list[int]:
    """The members a method trains: every member (SPARTA) or the aligned one."""
    p = policy(cfg, paths)
    return list(range(len(cfg.members))) if p is None else [p]
