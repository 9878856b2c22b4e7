"""What each rank holds once a member's model is loaded for DPO: ZeRO-3 vs ZeRO-2, 2 ranks on CPU.

    .venv/bin/python bench/bench_zero_load.py

The train stage builds its DPOConfig before it loads the model (sparta_hpc/stages/train.py), so that
under ZeRO-3 DeepSpeed's zero.Init is active during `from_pretrained` and each rank keeps only its
slice; ZeRO-2 keeps a whole copy per rank. This starts 2 gloo ranks per stage (torch.distributed.run),
each doing exactly what the train stage does up to the model load (training_arguments -> DPOConfig ->
load_policy -> memory_at_load), on the tiny model with LoRA r=16, and prints per rank the parameters
held, the peak RSS at load (VmHWM) and after reading every parameter it holds (as a training step
does), then the ZeRO-3 / ZeRO-2 ratios.

At 135M parameters DeepSpeed's own imports and buffers are a large share of the RSS; the parameters
held are what scales with the model (a 72B member: ~145 GB per rank whole, half of it with 2 ranks).
Output: bench/results/bench_zero_load.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from record import recorded  # bench/record.py: a script's own folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = ROOT / ".cache/models/smollm2-135m-instruct"


def worker(stage: int, out: Path) -> None:
    """One rank: the train stage's steps up to the loaded model, then its figures to `out`."""
    import torch.distributed as dist
    from trl import DPOConfig

    from sparta_hpc.config.schema import load_config
    from sparta_hpc.stages.lora import load_policy, memory_at_load, per_rank, training_arguments

    cfg = load_config(ROOT / "configs/tiny.yaml", [f"train.deepspeed=configs/deepspeed/zero{stage}.json",
                                                   "train.lora_r=16"])
    work = out.parent / f"zero{stage}"
    args = DPOConfig(**training_arguments(cfg, cfg.train, work, seed=0), beta=cfg.train.beta)  # noqa: F841
    model, _ = load_policy(cfg, str(MODEL), None, work / "initial")
    held = memory_at_load(model)
    at_load = peak_rss_mb()
    # from_pretrained may leave fp32 weights as mmap'd file pages that count only once read; training
    # reads every one: sum each parameter this rank holds (under ZeRO-3 its slice, ds_tensor)
    for p in model.parameters():
        float(getattr(p, "ds_tensor", p).detach().float().sum())
    rows = per_rank({"rank": int(os.environ["RANK"]), "params_held": held["params_held"], "peak_rss_mb": at_load,
                     "peak_rss_mb_read": peak_rss_mb()})
    if int(os.environ["RANK"]) == 0:
        out.write_text(json.dumps(rows))
    dist.barrier()


def peak_rss_mb() -> float:
    return next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM:")) / 1024


def run(stage: int, folder: Path) -> list[dict]:
    out = folder / f"zero{stage}.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TORCH_EXTENSIONS_DIR=str(ROOT / ".cache/torch_extensions"))
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                    str(29500 + stage), __file__, "--worker", str(stage), "--out", str(out)],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.out)
        return
    with recorded("bench_zero_load"), tempfile.TemporaryDirectory(prefix="sparta-zero-load-") as tmp:
        print("tiny model (SmolLM2-135M) + LoRA r=16, fp32, 2 gloo ranks per ZeRO stage, loaded as the train stage does")
        found = {stage: run(stage, Path(tmp)) for stage in (2, 3)}
        print(f"{'ZeRO':>4}  {'rank':>4}  {'params held':>12}  {'peak RSS MB at load':>19}  "
              f"{'peak RSS MB, every param read':>29}")
        for stage, rows in found.items():
            for r in rows:
                print(f"{stage:>4}  {r['rank']:>4}  {r['params_held']:>12,}  {r['peak_rss_mb']:>19.0f}  "
                      f"{r['peak_rss_mb_read']:>29.0f}")
        keys = ("params_held", "peak_rss_mb", "peak_rss_mb_read")
        mean = {s: {k: sum(r[k] for r in rows) / len(rows) for k in keys} for s, rows in found.items()}
        print("ZeRO-3 / ZeRO-2 per rank: " + ", ".join(
            f"{k} x{mean[3][k] / mean[2][k]:.2f}" for k in keys))


if __name__ == "__main__":
    main()
