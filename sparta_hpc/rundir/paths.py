"""Every file name of a run directory, in one place.

    RUN/
      config.yaml                    the resolved config (a resume must match it)
      driver.lock                    held by the running driver (one driver per run)
      code/NNNN-<commit>-<hash>/     the sparta_hpc code the jobs import (a snapshot per start or --current-code)
      provenance.json                that code's git commit and dirty flag; each interpreter's package versions
      policy.json                    single-model methods: the member they align (BEST INIT)
      events.jsonl                   one JSON line per event (stage start/end, task retries, ...)
      logs/<stage>/<job id>/         submitit's job logs (stdout/stderr per task)
      cache/<stage>-<task>/          per-task engine caches (vLLM, inductor); cache/torch_extensions/
      ratings/iter_0000.json         ratings at the start of each iteration
      export/iter_0000/              `sparta-hpc export` output (default place)
      tracking/                      TensorBoard, W&B offline, MLflow files (tracking.report_to)
      report/                        `sparta-hpc report` output (default place): index.html and its PNGs
      sft/                           the initial tribe (only with sft.data): before iteration 0
        <member>/                    checkpoints of a member's SFT job (+ initial_adapter/: its fresh LoRA)
        <member>/adapter/            the member's expert adapter: its weights at iteration 0
        done/sft.<member>, done/sft  completion markers (a member's holds its JSON summary)
      iter_0000/
        plan.json                    instructions, who answers (authors) and judges each, shards
        generate/g00_s0003.json      responses of base-model group 0 for duel shard 3
        judge/g00_s0003.json         raw and parsed judgments
        iter_0000.h5                 the archive (gather, then aggregate)
        pairs.jsonl                  preference pairs in TRL's conversational format
        summary.json                 duels, judgments used and parsed, pairs, ratings (the driver's table)
        train/<member>/              checkpoints of a member's DPO job (+ initial_adapter/: a fresh LoRA,
                                     log_history.json: TRL's per-step metrics)
        adapters/<member>/           the member's LoRA adapter for iteration t+1
        done/<stage>                 completion markers, written last
        manifest/<unit>.json         size and sha256 of each file a unit of work finished (manifest.py):
                                     plan, generate.g00_s0003, judge.g00_s0003, gather, aggregate, train.<member>
      eval/prompts/<task>.<split>.json   each evaluation task's prompts (built once by lm-eval)
      eval/initial/, eval/iter_0000/     an evaluation point: the members as they start (initial),
                                         or after iteration t's training
        plan.json                    tasks, splits and the shards of the evaluate and rate arrays
        evaluate/gGG_sKKKK.<digest>.json   answers of base-model group GG to a shard of items
        rate/sKKKK.<digest>.json           the evaluator's ratings of open-ended answers (COM2, Alpaca)
        <member>/<task>.json         score, N, stderr per split, settings
        <member>/<task>.<split>.samples.jsonl   prompt, response, extracted answer, correct / rating
        summary.json                 every member's scores of this point
        done/<stage>                 completion markers
        manifest/<unit>.json         evaluate.gGG_sKKKK.<digest>, rate.sKKKK.<digest>, score
      sft/manifest/sft.<member>.json the expert adapters' files

A shard or stage is done exactly when its file (shard output, marker) exists;
every such file is written to a temp name and renamed. A unit's manifest
record is written before that file appears, so every finished unit has one.
"""

from __future__ import annotations

from pathlib import Path

# Run-level stages, once before iteration 0 (`sft`: the initial tribe, only with sft.data);
# their "iteration" is INITIAL.
RUN_STAGES = ("sft",)
STAGES = ("plan", "generate", "judge", "gather", "aggregate", "train")
# An evaluation point's stages (its plan is written by the driver): answers, the evaluator's
# ratings of open-ended answers, and the scores (lm-eval's metrics, one CPU job)
EVAL_STAGES = ("evaluate", "rate", "score")
JOB_STAGES = RUN_STAGES + STAGES[1:] + EVAL_STAGES  # plan runs in the driver
# many tasks (job arrays); the others are one job
ARRAY_STAGES = ("sft", "generate", "judge", "train", "evaluate", "rate")
INITIAL = -1  # the evaluation point of the members as they start, before iteration 0


def point_label(point: int, numbered: str = "iter {}", initial: str = "initial") -> str:
    """A point (an evaluation point, or the iteration a stage runs in) as text: `initial` for INITIAL,
    else `numbered` with the number ("iter 3", "after iteration 3", "3", "iter_0003" from "iter_{:04d}").
    Every place that names a point says it through here, whichever wording its text needs."""
    return initial if point == INITIAL else numbered.format(point)


def unit_name(stage: str, part: str | None = None) -> str:
    """A unit of work's name (manifest.py; its record's file name, a member's marker): the stage, then
    which of its units: "gather", "train.<member>", "generate.g00_s0003", "rate.s0001.1a2b3c4d"."""
    return stage if part is None else f"{stage}.{part}"


def shard_unit(stage: str, shard: Path) -> str:
    """The unit of a shard file of an array stage: the stage, then the file's name without .json."""
    return unit_name(stage, Path(shard).stem)


def split_unit(unit: str) -> tuple[str, str | None]:
    """(stage, part) of a unit's name: ("train", "<member>"), ("generate", "g00_s0003"), ("gather", None)."""
    stage, _, part = unit.partition(".")
    return stage, part or None


class RunPaths:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def code_root(self) -> Path:
        """Snapshots of the sparta_hpc package the run's jobs import (NNNN-<commit>-<tree hash>/)."""
        return self.root / "code"

    @property
    def provenance(self) -> Path:
        return self.root / "provenance.json"

    @property
    def policy(self) -> Path:
        """The member a single-model method aligns, and why (BEST INIT or the config)."""
        return self.root / "policy.json"

    @property
    def lock(self) -> Path:
        return self.root / "driver.lock"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def job_logs(self, stage: str) -> Path:
        """submitit's folder pattern for a stage's jobs (%j: the job id)."""
        return self.logs / stage / "%j"

    def cache(self, slot: str) -> Path:
        """Caches of one task slot (e.g. "generate-3"), reused by that slot in later iterations."""
        return self.root / "cache" / slot

    @property
    def torch_extensions(self) -> Path:
        return self.cache("torch_extensions")

    @property
    def report(self) -> Path:
        """`sparta-hpc report`'s default output folder (index.html and the PNGs it embeds)."""
        return self.root / "report"

    def export(self, iteration: int) -> Path:
        return self.root / "export" / f"iter_{iteration:04d}"

    def ratings(self, iteration: int) -> Path:
        return self.root / "ratings" / f"iter_{iteration:04d}.json"

    def iteration(self, iteration: int) -> Path:
        return self.root / f"iter_{iteration:04d}"

    def plan(self, iteration: int) -> Path:
        return self.iteration(iteration) / "plan.json"

    def shard(self, iteration: int, stage: str, group: int, shard: int) -> Path:
        return self.iteration(iteration) / stage / f"g{group:02d}_s{shard:04d}.json"

    def archive(self, iteration: int) -> Path:
        return self.iteration(iteration) / f"iter_{iteration:04d}.h5"

    def summary(self, iteration: int) -> Path:
        return self.iteration(iteration) / "summary.json"

    def pairs(self, iteration: int) -> Path:
        return self.iteration(iteration) / "pairs.jsonl"

    def train_dir(self, iteration: int, member: str) -> Path:
        return self.iteration(iteration) / "train" / member

    def train_log(self, iteration: int, member: str) -> Path:
        return self.train_dir(iteration, member) / "log_history.json"

    @property
    def tracking(self) -> Path:
        """TensorBoard event files, W&B offline runs, MLflow's file store (tracking.report_to)."""
        return self.root / "tracking"

    def initial_adapter(self, iteration: int, member: str) -> Path:
        """The fresh LoRA a member without an adapter starts its DPO from (saved for resumes)."""
        return self.train_dir(iteration, member) / "initial_adapter"

    def adapter(self, iteration: int, member: str) -> Path:
        """The adapter a member *ends* iteration `iteration` with (its weights for t+1)."""
        return self.iteration(iteration) / "adapters" / member

    def marker(self, iteration: int, stage: str, member: str | None = None) -> Path:
        """A stage's completion marker; evaluation stages: `iteration` is the evaluation point;
        run-level stages (sft): `iteration` is ignored (INITIAL)."""
        name = unit_name(stage, member)
        if stage in RUN_STAGES:
            folder = self.sft_root
        else:
            folder = self.eval_point(iteration) if stage in EVAL_STAGES else self.iteration(iteration)
        return folder / "done" / name

    def is_done(self, iteration: int, stage: str, member: str | None = None) -> bool:
        return self.marker(iteration, stage, member).exists()

    def scope(self, iteration: int, stage: str) -> Path:
        """The folder a stage's work of `iteration` lives in: the sft folder, an evaluation point's, an iteration's."""
        if stage in RUN_STAGES:
            return self.sft_root
        return self.eval_point(iteration) if stage in EVAL_STAGES else self.iteration(iteration)

    def manifest(self, iteration: int, unit: str) -> Path:
        """The record (sizes, sha256) of one unit of work: "gather", "train.<member>", "generate.g00_s0003"."""
        return self.scope(iteration, split_unit(unit)[0]) / "manifest" / f"{unit}.json"

    def manifests(self) -> list[Path]:
        """Every unit record of the run (sft, iterations, evaluation points)."""
        found = []
        for pattern in ("sft/manifest/*.json", "iter_*/manifest/*.json", "eval/*/manifest/*.json"):
            found += sorted(self.root.glob(pattern))
        return found

    def relative(self, path: Path) -> str:
        """A path inside the run as the manifests name it (relative to the run directory)."""
        return Path(path).relative_to(self.root).as_posix()

    def copy_record(self, iteration: int) -> Path:
        """What was copied of an iteration to run.archive_dir, with each copy's size and sha256."""
        return self.root / "copies" / f"iter_{iteration:04d}.json"

    # the initial tribe (sft stage): one expert adapter per member, before iteration 0

    @property
    def sft_root(self) -> Path:
        return self.root / "sft"

    def sft_dir(self, member: str) -> Path:
        """A member's SFT job folder: its checkpoints (checkpoint-N/)."""
        return self.sft_root / member

    def sft_initial_adapter(self, member: str) -> Path:
        """The fresh LoRA a member's SFT starts from (saved for resumes and comparisons)."""
        return self.sft_dir(member) / "initial_adapter"

    def sft_adapter(self, member: str) -> Path:
        """The member's expert adapter: its weights at the start of iteration 0."""
        return self.sft_dir(member) / "adapter"

    # evaluation: point t is the members after iteration t's training, INITIAL before iteration 0

    def eval_prompts(self, task: str, split: str) -> Path:
        return self.root / "eval" / "prompts" / f"{task}.{split}.json"

    def eval_point(self, point: int) -> Path:
        return self.root / "eval" / point_label(point, "iter_{:04d}")

    def eval_plan(self, point: int) -> Path:
        return self.eval_point(point) / "plan.json"

    def eval_shard(self, point: int, stage: str, shard: str, group: int | None = None) -> Path:
        """`shard`: its number and a digest of what it holds ("s0003.1a2b3c4d"), so that a shard made
        with other settings (items, budget, backend, evaluator) is never taken for this one."""
        name = f"{shard}.json"
        return self.eval_point(point) / stage / (name if group is None else f"g{group:02d}_{name}")

    def eval_result(self, point: int, member: str, task: str) -> Path:
        return self.eval_point(point) / member / f"{task}.json"

    def eval_samples(self, point: int, member: str, task: str, split: str) -> Path:
        return self.eval_point(point) / member / f"{task}.{split}.samples.jsonl"

    def eval_summary(self, point: int) -> Path:
        return self.eval_point(point) / "summary.json"

    def evaluated_points(self) -> list[int]:
        """The evaluation points whose scores exist, INITIAL first, then by iteration."""
        found = [INITIAL] if self.eval_summary(INITIAL).exists() else []
        return found + sorted(int(p.parent.name[len("iter_"):]) for p in self.root.glob("eval/iter_*/summary.json"))
