"""Every file name of a run directory, in one place.

    RUN/
      config.yaml                    the resolved config (a resume must match it)
      driver.lock                    held by the running driver (one driver per run)
      events.jsonl                   one JSON line per event (stage start/end, task retries, ...)
      logs/<stage>/<job id>/         submitit's job logs (stdout/stderr per task)
      cache/<stage>-<task>/          per-task engine caches (vLLM, inductor); cache/torch_extensions/
      ratings/iter_0000.json         ratings at the start of each iteration
      export/iter_0000/              `sparta-hpc export` output (default place)
      iter_0000/
        plan.json                    instructions, duels, shards of this iteration
        generate/g00_s0003.json      responses of base-model group 0 for duel shard 3
        judge/g00_s0003.json         raw and parsed judgments
        iter_0000.h5                 the archive (gather, then aggregate)
        pairs.jsonl                  preference pairs in TRL's conversational format
        summary.json                 duels, valid judgments, pairs, ratings (for the driver's table)
        train/<member>/              checkpoints of a member's DPO job (+ initial_adapter/: a fresh LoRA)
        adapters/<member>/           the member's LoRA adapter for iteration t+1
        done/<stage>                 completion markers, written last

A shard or stage is done exactly when its file (shard output, marker) exists;
every such file is written to a temp name and renamed.
"""

from __future__ import annotations

from pathlib import Path

STAGES = ("plan", "generate", "judge", "gather", "aggregate", "train")
JOB_STAGES = STAGES[1:]  # plan runs in the driver
ARRAY_STAGES = ("generate", "judge", "train")  # many tasks (job arrays); gather and aggregate are one job


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

    def initial_adapter(self, iteration: int, member: str) -> Path:
        """The fresh LoRA a member without an adapter starts its DPO from (saved for resumes)."""
        return self.train_dir(iteration, member) / "initial_adapter"

    def adapter(self, iteration: int, member: str) -> Path:
        """The adapter a member *ends* iteration `iteration` with (its weights for t+1)."""
        return self.iteration(iteration) / "adapters" / member

    def marker(self, iteration: int, stage: str, member: str | None = None) -> Path:
        name = stage if member is None else f"{stage}.{member}"
        return self.iteration(iteration) / "done" / name

    def is_done(self, iteration: int, stage: str, member: str | None = None) -> bool:
        return self.marker(iteration, stage, member).exists()
