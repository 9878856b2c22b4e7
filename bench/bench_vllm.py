"""vLLM vs HF backend: the same generate stage, same prompts and members, in one run.

    make bench-vllm            # .venv-vllm (vLLM's CPU build), LD_PRELOAD set
    .venv-vllm/bin/python bench/bench_vllm.py [--duels 16] [--max-new-tokens 128]

The tiny tribe split over two base models (a hard-linked copy of SmolLM2-135M
counts as a second base), two members with a LoRA adapter and two without,
runs the generate stage (`--stop-after generate`) once per backend. Printed:
generated tokens/s per backend (time after the model load; and with it), the
load time, and base-model loads per generate task, both as the task reports
them and as counted in vLLM's own log ("Loading weights took"). The one
greedy member (`plain`, temperature 0) must get the same answers from both
backends (the others sample, each backend with its own generator): a
difference fails the benchmark (exit 1, nothing recorded).
Output: bench/results/bench_vllm.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from record import recorded  # bench/record.py: a script's own folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
MODEL = ROOT / ".cache/models/smollm2-135m-instruct"

from sparta_hpc.rundir.paths import RunPaths  # noqa: E402 (after the path set-up)


def second_base(folder: Path) -> Path:
    """The same weights under another path: a second base-model group, no extra disk."""
    if not folder.exists():
        shutil.copytree(MODEL, folder, copy_function=os.link)
    return folder


def run_generate(run_dir: Path, backend: str, overrides: list[str]) -> None:
    cmd = [sys.executable, "-m", "sparta_hpc.driver", "--config", "configs/tiny.yaml", f"run.dir={run_dir}",
           f"generate.backend={backend}", *overrides, "--stop-after", "generate"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{backend} run failed:\n{proc.stderr[-3000:]}")


def figures(run_dir: Path) -> dict:
    shards = [json.loads(p.read_text()) for p in sorted((run_dir / "iter_0000" / "generate").glob("g*.json"))]
    logged = []
    for task_dir in sorted((RunPaths(run_dir).logs / "generate").iterdir()):
        for log in task_dir.glob("*_log.out"):
            text = log.read_text() + log.with_name(log.name.replace(".out", ".err")).read_text()
            logged.append(text.count("Loading weights took"))
    tokens = sum(s["new_tokens"] for s in shards)
    gen = sum(s["seconds"] - s["load_seconds"] for s in shards)
    total = sum(s["seconds"] for s in shards)
    greedy = {(r["duel"], r["side"]): r["text"] for s in shards for r in s["responses"] if r["member"] == "plain"}
    return {"tasks": len(shards), "responses": sum(len(s["responses"]) for s in shards), "tokens": tokens,
            "gen_s": gen, "tok_s": tokens / gen, "tok_s_with_load": tokens / total,
            "load_s": sum(s["load_seconds"] for s in shards) / len(shards),
            "loads_reported": [s["model_loads"] for s in shards], "loads_logged": logged, "greedy": greedy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duels", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--keep", type=Path, help="folder for the runs (default: a temp dir)")
    args = parser.parse_args()
    with recorded("bench_vllm"):
        run(args)


def run(args: argparse.Namespace) -> None:
    from random_adapter import random_adapter

    work = args.keep or Path(tempfile.mkdtemp(prefix="sparta-bench-vllm-"))
    work.mkdir(parents=True, exist_ok=True)
    base_b = second_base(work / "smollm2-copy")
    adapters = [random_adapter(MODEL, work / f"adapter{i}", seed=i) for i in (1, 2)]
    overrides = [f"tribe.duels_per_iteration={args.duels}", f"generate.duels_per_shard={args.duels}",
                 f"tribe.members.friendly.model={base_b}", f"tribe.members.plain.model={base_b}",
                 f"tribe.members.concise.adapter={adapters[0]}", f"tribe.members.friendly.adapter={adapters[1]}",
                 "vllm.max_model_len=1024", "vllm.cpu_kv_cache_gb=2", "vllm.block_size=32",
                 # the tiny config's tensorboard is not in .venv-vllm, and a run that stops after generate
                 # tracks nothing
                 "tracking.report_to=none"] + [
        f"tribe.members.{m}.max_new_tokens={args.max_new_tokens}" for m in ("concise", "stepwise", "friendly", "plain")]
    results = {}
    for backend in ("hf", "vllm"):
        run_dir = work / backend
        run_generate(run_dir, backend, overrides)
        results[backend] = figures(run_dir)
    print(f"generate stage, tiny tribe on 2 base models (2 members each: one LoRA adapter, one bare), "
          f"{args.duels} duels, up to {args.max_new_tokens} new tokens, CPU threads 2, fp32")
    print(f"{'backend':8s} {'tasks':>5s} {'answers':>7s} {'tokens':>6s} {'gen s':>6s} {'tok/s':>6s} "
          f"{'tok/s incl. load':>16s} {'load s/task':>11s}  base-model loads per task (reported / vLLM log)")
    for backend, r in results.items():
        logged = r["loads_logged"] if backend == "vllm" else "-"
        print(f"{backend:8s} {r['tasks']:5d} {r['responses']:7d} {r['tokens']:6d} {r['gen_s']:6.1f} {r['tok_s']:6.1f} "
              f"{r['tok_s_with_load']:16.1f} {r['load_s']:11.1f}  {r['loads_reported']} / {logged}")
    print(f"vLLM / HF generated tokens/s: x{results['vllm']['tok_s'] / results['hf']['tok_s']:.2f} "
          f"(incl. load x{results['vllm']['tok_s_with_load'] / results['hf']['tok_s_with_load']:.2f})")
    hf, vllm = results["hf"]["greedy"], results["vllm"]["greedy"]
    differ = sorted(k for k in hf.keys() | vllm.keys() if hf.get(k) != vllm.get(k))
    for duel, side in differ:
        print(f"plain's answer in duel {duel}, side {side}, differs:\n  hf:   {hf.get((duel, side))!r}\n"
              f"  vllm: {vllm.get((duel, side))!r}")
    if differ:
        sys.exit(f"the greedy member's answers differ between the backends on {len(differ)} of {len(hf)} prompts")
    print(f"agreement: the greedy member's answers (plain, temperature 0) are identical on both backends, "
          f"all {len(hf)} of them")


if __name__ == "__main__":
    main()
