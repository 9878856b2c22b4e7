"""Experiment tracking: TRL's training metrics and the pipeline's own, to one tracker, offline.

    tracking:
      report_to: tensorboard   # none | tensorboard | wandb | mlflow

Every member's DPO of every iteration is one tracker run (TRL reports its own
loss, rewards and margins), named `<member>-iter<t>` and grouped under the
tribe (`tracking.group`, default the run directory's name); the pipeline's
metrics (ratings and deviations, pairs, the judges' parse rates,
evaluation scores) go to one more run, `pipeline`, of the same group, at step
t + 1 for iteration t (the initial evaluation at step 0). Nothing needs a
network: TensorBoard event files and MLflow's file store live under
RUN/tracking/, and W&B runs in offline mode there unless WANDB_MODE says
otherwise (`wandb sync RUN/tracking/wandb/offline-run-*` uploads later).

The writers are imported inside the jobs that log (train, aggregate, score),
never in the driver.
"""

from __future__ import annotations

import logging
import math
import os

from ..config.schema import Config
from ..errors import ConfigError
from ..rundir.paths import RunPaths

log = logging.getLogger(__name__)

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def group(cfg: Config, paths: RunPaths) -> str:
    return cfg.tracking.group or paths.root.name


def check_tracking(cfg: Config) -> None:
    """The tracker's package must be importable where the jobs run (checked here, in the driver's
    Python, for the local executors)."""
    import importlib.util

    package = PACKAGES.get(cfg.tracking.report_to)
    if package and cfg.cluster.executor != "slurm" and importlib.util.find_spec(package) is None:
        raise ConfigError(f"tracking.report_to: {cfg.tracking.report_to} needs the {package!r} package "
                          f"(pip install {package}), or set tracking.report_to: none")


def trainer_settings(cfg: Config, paths: RunPaths, iteration: int, member: str) -> dict:
    """TrainingArguments fields (report_to, run_name) of one member's DPO, and the environment the
    trackers' Trainer callbacks read, set here for this process."""
    kind = cfg.tracking.report_to
    if kind == "none":
        return {"report_to": []}
    name = f"{member}-iter{iteration}"
    if kind == "tensorboard":
        # transformers' TensorBoardCallback logs to $TENSORBOARD_LOGGING_DIR
        folder = paths.tracking / "tensorboard" / "train" / member / f"iter_{iteration:04d}"
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(folder)
    elif kind == "wandb":
        _wandb_env(cfg, paths)
        os.environ["WANDB_RUN_GROUP"] = group(cfg, paths)
    elif kind == "mlflow":
        _mlflow_env(cfg, paths)
    return {"report_to": [kind], "run_name": name}


def _wandb_env(cfg: Config, paths: RunPaths) -> None:
    os.environ.setdefault("WANDB_MODE", "offline")  # a user's `online` wins
    os.environ["WANDB_DIR"] = str(paths.tracking)
    os.environ["WANDB_PROJECT"] = cfg.tracking.project or "sparta_hpc"
    paths.tracking.mkdir(parents=True, exist_ok=True)


def _mlflow_env(cfg: Config, paths: RunPaths) -> None:
    os.environ.setdefault("MLFLOW_TRACKING_URI", (paths.tracking / "mlruns").as_uri())
    os.environ["MLFLOW_EXPERIMENT_NAME"] = cfg.tracking.project or group(cfg, paths)


def log_pipeline(cfg: Config, paths: RunPaths, step: int, metrics: dict[str, float]) -> None:
    """The pipeline's metrics of one iteration (or evaluation point) at `step`, to the tracker."""
    kind = cfg.tracking.report_to
    metrics = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
    if kind == "none" or not metrics:
        return
    if kind == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=str(paths.tracking / "tensorboard" / "pipeline")) as writer:
            for key, value in metrics.items():
                writer.add_scalar(key, value, step)
    elif kind == "wandb":
        import wandb

        _wandb_env(cfg, paths)
        # one `pipeline` run per tribe, resumed by every job that logs to it
        run = wandb.init(project=os.environ["WANDB_PROJECT"], group=group(cfg, paths), name="pipeline",
                         id=f"{group(cfg, paths)}-pipeline", resume="allow", dir=str(paths.tracking))
        run.log(metrics, step=step)
        run.finish()
    elif kind == "mlflow":
        import mlflow

        _mlflow_env(cfg, paths)
        mlflow.set_experiment(os.environ["MLFLOW_EXPERIMENT_NAME"])
        with mlflow.start_run(run_name=f"pipeline-step{step}"):
            mlflow.log_metrics(metrics, step=step)


def iteration_metrics(summary: dict, ratings: dict[str, float], deviations: dict[str, float]) -> dict:
    """What aggregate logs of an iteration: ratings, deviations, pairs, judges' parse rates."""
    out = {f"rating/{m}": r for m, r in ratings.items()}
    out.update({f"deviation/{m}": d for m, d in deviations.items()})
    out["pairs/count"] = summary.get("pairs")
    if "mean_margin" in summary:
        out["pairs/mean_margin"] = summary["mean_margin"]
    if "duels" in summary:
        out["duels/with_a_valid_judge"] = summary["duels_with_judge"] / max(summary["duels"], 1)
    for judge, r in summary.get("judges", {}).items():
        if r["judgments"]:
            out[f"judge_parse_rate/{judge}"] = 1 - r["unparsed"] / r["judgments"]
    return out
