"""One iteration of the tiny tribe on this machine: where the time and memory go.

    .venv/bin/python bench/bench_pipeline.py [--duels 8] [--keep DIR]

Prints wall time per stage (from the run's events.jsonl), peak memory per
stage (the largest task's max RSS), generated tokens/s of the generate stage,
then the stage's prompts once more on a loaded model, batched (as the stage
runs) and one prompt at a time, both greedy so that their answers must be
identical (left padding, fp32; a difference fails the benchmark: exit 1,
nothing recorded), and the HDF5 archive's size. Output: bench/results/bench_pipeline.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import recorded  # bench/record.py: a script's own folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_tribe(run_dir: Path, duels: int) -> float:
    cmd = [sys.executable, "-m", "sparta_hpc.driver", "--config", "configs/tiny.yaml", f"run.dir={run_dir}",
           "tribe.iterations=1", f"tribe.duels_per_iteration={duels}"]
    start = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - start


def stage_figures(run_dir: Path) -> list[tuple[str, float, float, int]]:
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    out = []
    for stage in ("generate", "judge", "gather", "aggregate", "train"):
        done = [e for e in events if e["event"] == "stage_done" and e["stage"] == stage]
        tasks = [e for e in events if e["event"] == "task_done" and e["stage"] == stage]
        out.append((stage, done[0]["seconds"], max(t["peak_rss_mb"] for t in tasks), len(tasks)))
    return out


def naive_vs_batched(run_dir: Path) -> dict:
    """The generate stage's prompts, one member at a time: batched (as the stage runs) vs one by one,
    greedy (the members' sampling would make the two differ by chance): (tokens, seconds, tokens/s)
    of each, the number of answers and those that differ (member, batched, one by one)."""
    import torch

    from sparta_hpc.backends.hf import HFGroup
    from sparta_hpc.stages.common import load_run, with_system

    torch.set_num_threads(2)
    cfg, paths = load_run(run_dir)
    plan = json.loads(paths.plan(0).read_text())
    model = HFGroup(cfg.members[0].model, {m.name: None for m in cfg.members})
    figures = {"batched": [0, 0.0], "naive": [0, 0.0]}
    answers, differ = 0, []
    for i, m in enumerate(cfg.members):
        convs = [with_system(m.system_prompt, [{"role": "user", "content": plan["instructions"][c]["text"]}])
                 for c, pair in enumerate(plan["authors"]) for side in (0, 1) if pair[side] == i]
        if not convs:
            continue
        kwargs = dict(temperature=0.0, top_p=1.0, max_new_tokens=m.max_new_tokens, seed=0)
        texts = {}
        for name, batch in (("batched", cfg.generate.batch_size), ("naive", 1)):
            start = time.time()
            outs = model.generate(m.name, convs, batch_size=batch, **kwargs)
            figures[name][0] += sum(o.n_tokens for o in outs)
            figures[name][1] += time.time() - start
            texts[name] = [o.text for o in outs]
        answers += len(convs)
        differ += [(m.name, a, b) for a, b in zip(texts["batched"], texts["naive"]) if a != b]
    out = {k: (tokens, seconds, tokens / seconds) for k, (tokens, seconds) in figures.items()}
    return {**out, "answers": answers, "differ": differ}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duels", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="run directory to use (default: a temp dir)")
    args = parser.parse_args()
    with recorded("bench_pipeline"):
        run(args)


def run(args: argparse.Namespace) -> None:
    run_dir = args.keep or Path(tempfile.mkdtemp(prefix="sparta-bench-")) / "run"
    total = run_tribe(run_dir, args.duels)
    print(f"tiny tribe (4 x SmolLM2-135M, fp32, CPU threads 2), 1 iteration of {args.duels} duels: "
          f"{total:.1f} s wall in all")
    print(f"{'stage':10s} {'wall s':>8s} {'tasks':>6s} {'peak RSS MB':>12s}")
    for stage, seconds, rss, tasks in stage_figures(run_dir):
        print(f"{stage:10s} {seconds:8.1f} {tasks:6d} {rss:12.0f}")
    shards = sorted((run_dir / "iter_0000" / "generate").glob("*.json"))
    tokens = sum(json.loads(p.read_text())["new_tokens"] for p in shards)
    seconds = sum(json.loads(p.read_text())["seconds"] for p in shards)
    print(f"generate stage: {tokens} tokens in {seconds:.1f} s of task time (model load included): "
          f"{tokens / seconds:.1f} tok/s")
    fig = naive_vs_batched(run_dir)
    (bt, bs, br), (nt, ns, nr) = fig["batched"], fig["naive"]
    print(f"same prompts, loaded model, greedy: batched {bt} tokens in {bs:.1f} s = {br:.1f} tok/s; "
          f"one prompt at a time {nt} tokens in {ns:.1f} s = {nr:.1f} tok/s; batched/naive x{br / nr:.2f}")
    size = (run_dir / "iter_0000" / "iter_0000.h5").stat().st_size
    print(f"HDF5 archive per iteration: {size / 1024:.1f} KiB ({size / args.duels / 1024:.2f} KiB per duel)")
    print(f"run directory: {run_dir}")
    for member, batched, naive in fig["differ"]:
        print(f"{member}'s answer differs:\n  batched:             {batched!r}\n  one prompt at a time: {naive!r}")
    if fig["differ"]:
        sys.exit(f"batched and one-prompt-at-a-time greedy answers differ on {len(fig['differ'])} of "
                 f"{fig['answers']} prompts")
    print(f"agreement: batched and one-prompt-at-a-time greedy answers are identical on all {fig['answers']} "
          "prompts")


if __name__ == "__main__":
    main()
