"""Evaluation throughput on the HF backend: items/s batched (as the evaluate stage runs) vs one at a time.

    .venv/bin/python bench/bench_eval.py [--task gsm8k] [--items 16] [--max-new-tokens 64] [--batch 8]

The same prompts (lm-eval's, from tests/assets/eval-samples), the same loaded tiny model
and greedy decoding, in one run: first batched, then one item at a time; then
both answer sets are scored with the task's lm-eval metric. Greedy answers must
not depend on the batch (left padding, fp32): the two answer texts are compared
item by item, and any difference fails the benchmark (exit 1, nothing recorded).
Output: bench/results/bench_eval.txt.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from record import recorded  # bench/record.py: a script's own folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SAMPLES = ROOT / "tests" / "assets" / "eval-samples"  # in the checkout (licenses: its README.md)
FILES = {"gsm8k": "gsm8k.json", "medqa": "medqa.json", "math_easy": "math_easy.jsonl", "truthfulqa": "truthfulqa.json"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="gsm8k", choices=sorted(FILES))
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    with recorded("bench_eval"):
        run(args)


def run(args: argparse.Namespace) -> None:
    import torch

    from sparta_hpc.backends.hf import HFGroup
    from sparta_hpc.eval import load_task

    torch.set_num_threads(2)
    task = load_task(args.task, SAMPLES / FILES[args.task], "test", args.items)
    prompts = task.prompts()
    model = HFGroup(str(ROOT / ".cache/models/smollm2-135m-instruct"), {"plain": None})
    model.generate("plain", prompts[:1], temperature=0.0, top_p=1.0, max_new_tokens=4, batch_size=1, seed=0)
    figures, texts = {}, {}
    for name, batch in (("batched", args.batch), ("one at a time", 1)):
        start = time.time()
        outs = model.generate("plain", prompts, temperature=0.0, top_p=1.0, max_new_tokens=args.max_new_tokens,
                              batch_size=batch, seed=0)
        seconds = time.time() - start
        texts[name] = [o.text for o in outs]
        result = task.score(texts[name])
        figures[name] = (len(outs) / seconds, sum(o.n_tokens for o in outs) / seconds, seconds, result)
    print(f"{args.task}, {len(prompts)} test items, SmolLM2-135M fp32 on 2 CPU threads, greedy, <= "
          f"{args.max_new_tokens} new tokens")
    print(f"{'':14s} {'items/s':>8s} {'tokens/s':>9s} {'seconds':>8s} {'score':>6s}")
    for name, (items, tokens, seconds, result) in figures.items():
        print(f"{name:14s} {items:8.2f} {tokens:9.1f} {seconds:8.1f} {result.score:6.3f}")
    ratio = figures["batched"][0] / figures["one at a time"][0]
    print(f"batched (batch {args.batch}) / one at a time: x{ratio:.2f} items/s")
    differ = [i for i, (a, b) in enumerate(zip(texts["batched"], texts["one at a time"])) if a != b]
    if differ:
        for i in differ:
            print(f"item {i} differs:\n  batched:       {texts['batched'][i]!r}\n"
                  f"  one at a time: {texts['one at a time'][i]!r}")
        sys.exit(f"batched and one-at-a-time greedy answers differ on {len(differ)} of {len(prompts)} items")
    print(f"agreement: batched and one-at-a-time greedy answers are identical on all {len(prompts)} items")


if __name__ == "__main__":
    main()
