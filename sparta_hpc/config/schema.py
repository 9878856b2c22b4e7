"""The pipeline's configuration: dataclasses, YAML presets, dotted overrides.

    cfg = load_config("configs/tiny.yaml", ["run.dir=runs/demo", "tribe.iterations=1"])

Defaults <- YAML <- overrides. Unknown keys and wrong types are errors that
name the field; `validate()` checks the fields themselves, and
`preflight.check` runs it with every other check that needs no model load,
before the driver submits anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from ..algorithm.matchmaking import MatchConfig
from ..algorithm.reputation import ReputationConfig
from ..errors import ConfigError
from .overrides import apply_overrides, from_dict, to_dict


@dataclass(frozen=True)
class MemberConfig:
    """One tribe member: a base model, an optional LoRA adapter, its own sampling."""

    name: str
    model: str  # folder of a Hugging Face model (safetensors + tokenizer)
    adapter: str | None = None  # folder of a PEFT LoRA adapter; None: the base model as is
    system_prompt: str | None = None
    temperature: float = 0.7  # 0: greedy
    top_p: float = 0.9
    max_new_tokens: int = 256
    top_k: int | None = None  # None: no top-k cut (the authors' generation: 50)
    initial_rating: float | None = None  # default: reputation.initial_rating
    # sft stage (sft.data set): the member's slice of the SFT data, the rows whose sft.source_field
    # equals it or starts with it + "." ("science" takes every "science.*"); None: the member's name
    sft_source: str | None = None
    # this member's training (and sft) jobs: fields of cluster.train / cluster.sft it changes, e.g.
    # {nodes: 2, gpus_per_node: 8} for a 70B member of a mixed tribe (sparta_hpc/config/resources.py)
    resources: dict[str, Any] = field(default_factory=dict)
    deepspeed: str | None = None  # its DeepSpeed config (e.g. zero3.json); None: train.deepspeed
    # Run the model folder's own Python code (transformers' trust_remote_code), for architectures
    # transformers does not ship. Off: a model folder cannot run code in the jobs (docs/security.md).
    # Members sharing a base model must agree (one load serves them all).
    trust_remote_code: bool = False


@dataclass(frozen=True)
class TribeConfig:
    members: list[MemberConfig] = field(default_factory=list)
    iterations: int = 8  # T
    duels_per_iteration: int = 1000  # N
    seed: int = 42


@dataclass(frozen=True)
class InstructionsConfig:
    source: str = "demo"  # "demo" (built in) or a .jsonl / .json / .parquet file
    prompt_field: str = "instruction"  # the field holding the instruction text
    id_field: str | None = None  # a stable id per instruction; default: its position
    reference_field: str | None = None  # a reference answer per instruction (SPIN's chosen answers)
    with_reference_only: bool = False  # keep only the instructions that have a reference answer
    limit: int | None = None  # use only the first `limit` instructions
    # instructions that hold an evaluation task's test item, wrapped or not (eval/decontaminate.py):
    # remove them from the pool (the counts are recorded), refuse the run, or off (the authors' pools)
    decontaminate: Literal["remove", "refuse", "off"] = "remove"
    # fresh: each iteration draws unused instructions first (SPEC 1.1); same: every iteration duels on
    # iteration 0's draw, as the authors' code does (it re-seeds its shuffle with 42 each iteration:
    # src1/competition.py:804, 439 at 05a2aab)
    each_iteration: Literal["fresh", "same"] = "fresh"


@dataclass(frozen=True)
class GenerateConfig:
    # hf: Hugging Face transformers (CPU or GPU); vllm: vLLM's offline engine (GPU nodes;
    # its CPU build in tests), settings in the `vllm` section
    backend: Literal["hf", "vllm"] = "hf"
    duels_per_shard: int = 50  # one array task: one base model x one shard of duels
    batch_size: int = 8
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # fp32 on CPU: bf16 is ~15x slower there


@dataclass(frozen=True)
class VLLMConfig:
    """The vLLM engine of a generate or judge task (backend: vllm): one per base model."""

    tensor_parallel_size: int | None = None  # None: every GPU the job was given
    gpu_memory_utilization: float = 0.85  # share of each GPU for weights + KV cache
    max_model_len: int | None = 4096  # prompt + answer; None: the model's own (large KV cache)
    enforce_eager: bool = False  # True: no CUDA graphs (faster start, slower decoding); always on CPU
    cpu_kv_cache_gb: int = 4  # CPU build only: KV cache size
    # KV cache block (prefix caching shares whole blocks); None: vLLM's own (16 on GPUs,
    # 128 on CPUs, where 32 makes the judge's candidate scoring several times faster)
    block_size: int | None = None


@dataclass(frozen=True)
class JudgeConfig:
    backend: Literal["hf", "vllm"] | None = None  # None: the same as generate.backend
    duels_per_shard: int = 50
    rounds: int = 1  # sampled rounds per judge and response; valid scores are averaged
    temperature: float = 0.0  # 0: greedy (then rounds > 1 would repeat the same answer)
    max_new_tokens: int = 24
    top_p: float = 1.0  # when sampling (temperature > 0); the authors': 0.95 with top_k 50
    top_k: int | None = None  # None: no top-k cut
    # the prompt (algorithm/judging.py): spec (SPEC 1.4's 1..10 rubric), authors (the SPARTA authors'
    # judge.py prompt, verbatim), additive5 (Self-Rewarding's additive 5-point rubric, 0..5 points,
    # with a justification); reasoning: the judge justifies briefly, then scores; the score is read
    # from the end of its reply. Both need score: parsed, no answer_prefix, and a budget to write
    # in (max_new_tokens 256, as the authors' judges had).
    rubric: Literal["spec", "additive5", "authors"] = "spec"
    reasoning: bool = False
    batch_size: int = 8
    few_shot: bool = False  # worked examples before the prompt: small judges need them
    # Prefilled start of the judge's answer, e.g. '{"score": ' so that even a weak
    # judge answers in the format; the archived raw text includes it.
    answer_prefix: str = ""
    # "parsed": the score the judge wrote (SPEC). "expected": the mean of the judge's
    # distribution over 1..10 from its log-probabilities, which always exists.
    score: Literal["parsed", "expected"] = "parsed"
    # A longer answer is shown to the judge cut here, with a visible note (the archive and the
    # pairs keep all of it): a runaway answer cannot blow up the judge's context. None: no cut.
    max_response_chars: int | None = 8000
    # Beyond the paper: judging grows as duels x (M - 2), so a large tribe may have each duel judged
    # by a seeded random panel of this many of the non-duelling members (docs/algorithm.md,
    # "Judge panels"); None: every one of them (SPEC). Method sparta only.
    panel_size: int | None = None
    # uniform, or with probability proportional to reputation (at the start of the iteration)
    panel_sampling: Literal["uniform", "reputation"] = "uniform"


@dataclass(frozen=True)
class TrainConfig:
    """DPO with LoRA (SPEC 1.8; defaults from the authors' dpo_new.py)."""

    beta: float = 0.1
    learning_rate: float = 1e-6
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    epochs: float = 1.0
    max_steps: int = -1  # > 0 caps the steps (tests, demos)
    batch_size: int = 4  # per device
    gradient_accumulation_steps: int = 1
    max_length: int = 512  # prompt + the longer answer, tokens; a pair whose prompt reaches it is dropped, counted
    # a prompt longer than this keeps its last tokens (the question); None: no cut. Dropped and cut pairs
    # are counted in the member's marker, its log and the report (stages/dpo_trainer.py)
    max_prompt_length: int | None = None
    weight_decay: float = 0.0  # AdamW's
    lora_r: int = 64
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    bf16: bool = False  # True on GPUs; on CPU fp32 is much faster
    gradient_checkpointing: bool = False  # recompute activations: less GPU memory for ~30% more time
    # "4bit": QLoRA, the frozen base in 4-bit NF4 (bitsandbytes, GPUs only) for models that do not fit
    quantization: Literal["none", "4bit"] = "none"
    # the reference log-probs computed once before training: the frozen reference
    # adapter then never runs during the steps (less memory and time per step)
    precompute_ref_log_probs: bool = False
    save_steps: int = 50  # checkpoint every N steps: a killed or preempted job resumes from the last
    # The checkpoints (adapter, optimizer state, DeepSpeed's shards: several times the adapter) serve a
    # resume until the member's adapter for the iteration is final; then they are deleted, unless kept
    keep_checkpoints: bool = False
    # TRL's DPO loss; None: the method's ("sigmoid", the DPO loss; SPPO: baseline.sppo_loss)
    loss_type: str | None = None
    # a DeepSpeed JSON (configs/deepspeed/zero2.json, zero3.json; ZeRO-3 has no train_batch_size:
    # TRL's reference-model init asserts on it); None: plain data parallel
    deepspeed: str | None = None


METHODS = ("sparta", "self_rewarding", "meta_rewarding", "spin", "sppo")


@dataclass(frozen=True)
class BaselineConfig:
    """The single-model self-alignment methods (method: self_rewarding, meta_rewarding, spin, sppo)."""

    # the member they align; None: BEST INIT, the member best on the initial evaluation's dev split
    member: str | None = None
    samples: int = 4  # responses per instruction (self-/meta-rewarding, SPPO; SPIN takes one)
    # SPPO's preference model, which compares two responses; None: the aligned model itself
    judge_model: str | None = None
    judge_adapter: str | None = None
    # Meta-Rewarding's length control (Wu et al. 2024): the chosen answer is the shortest whose score is
    # in the top tier [(1 - rho) S_max + rho S_min, S_max]; None: best vs worst (methods/pairs.py)
    length_control: float | None = None
    # SPIN: iteration t >= 1 trains on its own pairs and iteration t-1's (RUN/iter_{t-1}/pairs.jsonl as
    # recorded), as SPIN's iterations 1-3 mix SPIN_iter{t-1} and SPIN_iter{t} (uclaml/SPIN README:203,
    # configs/config_iter{1,2,3}.yaml); false: iteration t's pairs only
    spin_previous: bool = True
    # SPPO may not use the evaluator (eval.evaluator.model, same adapter) as its preference model: it
    # would optimise the metric it is scored by. True allows it, on purpose.
    judge_is_evaluator: bool = False
    # SPPO's loss: "soft", its own squared loss with the answers' estimated win rates (sppo/trainer.py:876-879
    # of uclaml/SPPO @5e61c4e), or "hard", TRL's sppo_hard (win rates 1 and 0, targets +-0.5/train.beta)
    sppo_loss: Literal["soft", "hard"] = "soft"
    # η of the soft loss (their β = 1/η): 1000, the paper's code's default (BETA="0.001", scripts/pipeline.sh:8)
    sppo_eta: float = 1000.0


@dataclass(frozen=True)
class SFTConfig:
    """The initial tribe: each member's expert adapter, a LoRA SFT'd on its own slice of a chat
    dataset (the paper: one source of the Tulu-v2 SFT mixture each), before iteration 0.

    The LoRA's shape (train.lora_*), precision (train.bf16), train.gradient_checkpointing,
    train.quantization and train.deepspeed are the DPO's: one LoRA shape per tribe, since DPO
    continues the SFT adapter. Defaults: common LoRA-SFT settings (lr 2e-4, 1 epoch).
    """

    data: str | None = None  # a .jsonl / .json / .parquet of chat rows, or "demo" (built in); None: no SFT
    source_field: str = "dataset"  # the row's source (Tulu: flan_v2, cot, science.evidence_inference, ...)
    messages_field: str = "messages"  # [{"role": "user"|"assistant"|"system", "content": ...}, ...]
    max_examples: int | None = None  # per member: a seeded sample of its slice; None: all of it
    learning_rate: float = 2.0e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    epochs: float = 1.0
    max_steps: int = -1  # > 0 caps the steps (tests, demos)
    batch_size: int = 4  # per device
    gradient_accumulation_steps: int = 4
    max_length: int = 1024  # prompt + answer tokens; longer rows are cut at the end
    save_steps: int = 200  # checkpoint every N steps: a killed or preempted job resumes from the last


@dataclass(frozen=True)
class EvaluatorConfig:
    """The model that rates open-ended answers (COM2, Alpaca) 1..10, run like a judge."""

    model: str | None = None  # folder of a Hugging Face model; needed when a rated task is evaluated
    adapter: str | None = None  # its LoRA adapter, if any
    max_new_tokens: int = 16
    answer_prefix: str = '{"score": '  # prefilled start of its answer (kept in the archived text)
    # "parsed": the score it wrote (missing when none); "expected": the mean of its
    # distribution over 1..10 from log-probabilities (always exists; small evaluators)
    score: Literal["parsed", "expected"] = "parsed"


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation of every member on benchmark tasks (lm-eval tasks in sparta_hpc/eval/tasks)."""

    tasks: list[str] = field(default_factory=list)  # e.g. [gsm8k, medqa]; empty: no evaluation
    data_dir: str | None = None  # the tasks' files under their usual names (docs/evaluation.md)
    files: dict[str, str] = field(default_factory=dict)  # a task's file, where it is not data_dir's
    split: Literal["dev", "test", "both"] = "both"  # both: select on dev, report on test
    # with split both: "every": test at every point too; "selected": test only for the member x point
    # that dev selects per task (BEST INIT, the selected model), after the last point: the same table
    # for a fraction of the test items (sparta_hpc/eval/selected.py)
    test: Literal["every", "selected"] = "every"
    limit: int | None = None  # the first N items of each split
    initial: bool = True  # evaluate the members as they start (BEST INIT)
    every: int = 1  # after every N-th iteration's training, and after the last; 0: only the last
    backend: Literal["hf", "vllm"] | None = None  # None: the same as generate.backend
    items_per_shard: int = 200  # one evaluate task: one base-model group x one task's items
    batch_size: int = 8
    max_new_tokens: int | None = None  # caps every task's answer length (quick checks); None: the task's own
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)


@dataclass(frozen=True)
class CostConfig:
    """Throughputs the dry run's cost estimate divides tokens by (sparta_hpc/report/cost.py). ASSUMED, not
    measured: docs/reproduce.md's figures for a 7B model on one H100 (vLLM; LoRA DPO). Measure your
    own (bench/bench_vllm.py, tests/test_gpu.py) and set them here."""

    gen_tokens_per_s_per_gpu: float = 2000.0  # generated tokens (answers, judgments, evaluation)
    prompt_tokens_per_s_per_gpu: float = 20000.0  # prompt tokens read (prefill; also scored candidates)
    train_tokens_per_s_per_gpu: float = 3000.0  # DPO forward tokens (policy and reference)


@dataclass(frozen=True)
class TrackingConfig:
    """Where TRL's training metrics and the pipeline's own go (sparta_hpc/stages/tracking.py); offline."""

    report_to: Literal["none", "tensorboard", "wandb", "mlflow"] = "none"
    project: str | None = None  # W&B project / MLflow experiment; None: "sparta_hpc" / the group
    group: str | None = None  # the tribe's group of runs; None: the run directory's name


@dataclass(frozen=True)
class Resources:
    """What one job of a stage asks Slurm for (ignored by the local executor)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 60
    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 4
    mem_gb: int = 16
    constraint: str | None = None
    array_parallelism: int = 64  # array tasks running at once
    setup: list[str] = field(default_factory=list)  # e.g. "module load cuda/12.4", "source .venv/bin/activate"
    # The Python that runs this stage's tasks (local and slurm executors), e.g. a vLLM
    # venv's for generate and judge: "/path/.venv-vllm/bin/python", or with environment
    # "env LD_PRELOAD=/path/lib.so /path/bin/python". None: the driver's own Python.
    python: str | None = None
    extra_sbatch: dict[str, str] = field(default_factory=dict)  # further #SBATCH flags


@dataclass(frozen=True)
class ModelResources:
    """The generate / judge / evaluate jobs serving one base model: the fields of cluster.<stage>
    they change (e.g. {gpus_per_node: 4} for a 72B group; vLLM then runs tensor parallel over 4)."""

    model: str
    generate: dict[str, Any] = field(default_factory=dict)
    judge: dict[str, Any] = field(default_factory=dict)
    evaluate: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterConfig:
    # local: tasks run as processes on this machine (the default); debug: inside the
    # driver's process (breakpoints work); slurm: through sbatch (resources below)
    executor: Literal["local", "slurm", "debug"] = "local"
    local_parallel: int = 1  # local executor: tasks of a stage running at once
    local_threads: int = 2  # local executor: torch threads per task
    max_retries: int = 2  # a failed or cancelled task is resubmitted (its own shards only) this often
    # Slurm: a job that reaches its time limit or is preempted is requeued (and resumes) this often
    max_timeouts: int = 3
    generate: Resources = field(default_factory=lambda: Resources(gpus_per_node=1, cpus_per_task=8, mem_gb=64))
    judge: Resources = field(default_factory=lambda: Resources(gpus_per_node=1, cpus_per_task=8, mem_gb=64))
    gather: Resources = field(default_factory=lambda: Resources(cpus_per_task=2, mem_gb=8, time_min=30))
    aggregate: Resources = field(default_factory=lambda: Resources(cpus_per_task=2, mem_gb=8, time_min=30))
    train: Resources = field(default_factory=lambda: Resources(gpus_per_node=1, cpus_per_task=8, mem_gb=64,
                                                              time_min=240))
    sft: Resources = field(default_factory=lambda: Resources(gpus_per_node=1, cpus_per_task=8, mem_gb=64,
                                                            time_min=240))
    evaluate: Resources = field(default_factory=lambda: Resources(gpus_per_node=1, cpus_per_task=8, mem_gb=64))
    rate: Resources = field(default_factory=lambda: Resources(gpus_per_node=1, cpus_per_task=8, mem_gb=64))
    score: Resources = field(default_factory=lambda: Resources(cpus_per_task=2, mem_gb=8, time_min=30))
    models: list[ModelResources] = field(default_factory=list)  # per base model (mixed tribes)
    max_array_size: int = 1001  # Slurm's MaxArraySize: a larger array goes out as several


@dataclass(frozen=True)
class RunConfig:
    dir: str = "runs/default"
    # long-term storage (a project or archive filesystem): each finished iteration's archive, pairs,
    # ratings, adapters and evaluation are copied there, checked by sha256 (sparta_hpc/rundir/copies.py)
    archive_dir: str | None = None


@dataclass(frozen=True)
class Config:
    # sparta (the tribe), or a single-model baseline: self_rewarding, meta_rewarding, spin, sppo
    method: Literal["sparta", "self_rewarding", "meta_rewarding", "spin", "sppo"] = "sparta"
    run: RunConfig = field(default_factory=RunConfig)
    tribe: TribeConfig = field(default_factory=TribeConfig)
    instructions: InstructionsConfig = field(default_factory=InstructionsConfig)
    matchmaking: MatchConfig = field(default_factory=MatchConfig)
    reputation: ReputationConfig = field(default_factory=ReputationConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    @property
    def members(self) -> list[MemberConfig]:
        return self.tribe.members

    @property
    def judge_backend(self) -> str:
        return self.judge.backend or self.generate.backend

    @property
    def eval_backend(self) -> str:
        return self.eval.backend or self.generate.backend

    @property
    def loss_type(self) -> str:
        """The loss the train marker reports: train.loss_type, else SPPO's ("sppo": its soft loss,
        stages/sppo_trainer.py; "sppo_hard": TRL's) or DPO's sigmoid."""
        if self.train.loss_type:
            return self.train.loss_type
        if self.method == "sppo":
            return "sppo" if self.baseline.sppo_loss == "soft" else "sppo_hard"
        return "sigmoid"

    def member_names(self) -> list[str]:
        return [m.name for m in self.tribe.members]

    def trusts_remote_code(self, model: str) -> bool:
        """Whether the members on base model `model` let it run its own code (they agree: validate)."""
        return any(m.trust_remote_code for m in self.tribe.members if m.model == model)

    def base_groups(self) -> list[list[int]]:
        """Member indices grouped by base model (one loaded model serves a group)."""
        groups: dict[str, list[int]] = {}
        for i, m in enumerate(self.tribe.members):
            groups.setdefault(m.model, []).append(i)
        return list(groups.values())


def resolve_path(path: str) -> str:
    """~ and $VARS expanded, relative paths made absolute (jobs may run elsewhere)."""
    return str(Path(os.path.expandvars(os.path.expanduser(path))).resolve())


def read_yaml(path: str | Path, seen: tuple = ()) -> dict:
    """A config file's mapping; `inherit: OTHER.yaml` (relative to the file) starts from OTHER's,
    which this file's sections then update key by key (ablation presets change a few fields)."""
    path = Path(path).resolve()
    if path in seen:
        raise ConfigError(f"{path}: inherits from itself (through {' -> '.join(map(str, seen))})")
    try:
        # libyaml's loader where PyYAML has it: every task of a run reads the run's config
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text file (invalid UTF-8 at byte {err.start})") from err
    except (yaml.YAMLError, RecursionError) as err:
        raise ConfigError(f"{path}: not valid YAML: {str(err)[:500]}") from err
    data = {} if data is None else data  # an empty file: every default
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections, got {type(data).__name__}")
    parent = data.pop("inherit", None)
    if parent is not None and not isinstance(parent, str):
        raise ConfigError(f"{path}: inherit: expected the path of another config file, got {parent!r}")
    return _merge(read_yaml(path.parent / parent, seen + (path,)), data) if parent else data


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    data = read_yaml(path) if path is not None else {}
    try:
        cfg = from_dict(Config, data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
    except RecursionError:  # YAML aliases can build a structure that contains itself
        raise ConfigError(f"{path}: nested too deeply (or a YAML alias refers to itself)") from None
    cfg = apply_overrides(cfg, list(overrides))
    return resolve_paths(cfg)


def resolve_paths(cfg: Config) -> Config:
    members = [replace(m, model=resolve_path(m.model), adapter=resolve_path(m.adapter) if m.adapter else None,
                       deepspeed=resolve_path(m.deepspeed) if m.deepspeed else None) for m in cfg.members]
    models = [replace(r, model=resolve_path(r.model)) for r in cfg.cluster.models]
    source = cfg.instructions.source
    if source != "demo":
        source = resolve_path(source)
    deepspeed = resolve_path(cfg.train.deepspeed) if cfg.train.deepspeed else None
    baseline = replace(cfg.baseline, **{k: resolve_path(getattr(cfg.baseline, k)) if getattr(cfg.baseline, k)
                                        else None for k in ("judge_model", "judge_adapter")})
    ev = cfg.eval
    evaluator = replace(ev.evaluator, **{k: resolve_path(getattr(ev.evaluator, k)) if getattr(ev.evaluator, k)
                                         else None for k in ("model", "adapter")})
    for task, path in ev.files.items():
        if not isinstance(path, str):
            raise ConfigError(f"eval.files.{task}: expected the path of a data file, got {path!r} "
                              "(on the command line: eval.files='{task: /path/file.json}', a space after the colon)")
    ev = replace(ev, data_dir=resolve_path(ev.data_dir) if ev.data_dir else None, evaluator=evaluator,
                 files={task: resolve_path(path) for task, path in ev.files.items()})
    sft_data = cfg.sft.data if cfg.sft.data in (None, "demo") else resolve_path(cfg.sft.data)
    # a stage's interpreter may name its venv through the environment ($SPARTA_VLLM_PYTHON in the presets);
    # expanded here, once, so that the checks, submitit and the sbatch scripts all see the same path
    stages = {f.name: replace(r, python=os.path.expandvars(os.path.expanduser(r.python)))
              for f in fields(cfg.cluster) if isinstance(r := getattr(cfg.cluster, f.name), Resources) and r.python}
    return replace(cfg, run=replace(cfg.run, dir=resolve_path(cfg.run.dir)),
                   tribe=replace(cfg.tribe, members=members), train=replace(cfg.train, deepspeed=deepspeed),
                   instructions=replace(cfg.instructions, source=source), eval=ev, baseline=baseline,
                   sft=replace(cfg.sft, data=sft_data), cluster=replace(cfg.cluster, models=models, **stages))


def config_to_yaml(cfg: Config) -> str:
    return yaml.dump(to_dict(cfg), Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False, width=100)

