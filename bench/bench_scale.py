"""How the orchestration grows with the tribe and the duels: everything but model compute.

    .venv/bin/python bench/bench_scale.py                      # growth curves (about an hour on 2 cores)
    .venv/bin/python bench/bench_scale.py --one 100 100000     # one point
    .venv/bin/python bench/bench_scale.py --members 10,30 --duels 1000,10000 --panel 10

Each point is one iteration (plan, generate, judge, gather, aggregate; training is model compute
and is left out) of the real driver, stages, archive and reputation update in one process (the
`debug` executor) on the fast tier's scripted model (tests/scripted_model.py: test and benchmark
only), in a child process of its own so that its peak memory is its own. Printed per point: wall
time per stage and the scripted model's share of it (measured around its calls and subtracted: what
is left is what the pipeline itself costs), peak memory, plan size, the number of Slurm submissions
and array tasks the launcher would make (arrays split at cluster.max_array_size), the HDF5 archive's
size and the gather and aggregate times; then the growth over members and over duels.

Output: bench/results/bench_scale.txt (the curves), bench_scale-<members>x<duels>.txt (--one), with
-panel<K> added under --panel.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import recorded  # bench/record.py: a script's own folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
STAGES = ("plan", "generate", "judge", "gather", "aggregate")

# What the model stages of a 7B tribe would cost at the same size, to compare the pipeline's own cost
# with: the throughputs docs/reproduce.md assumes for vLLM on one H100 (not measured here: no GPU), and
# token counts of the paper preset's kind (answers of ~400 tokens; a judge request is the judge template,
# the instruction and one answer, ~600 prompt tokens, and writes a few tokens).
ANSWER_TOKENS, JUDGE_PROMPT_TOKENS = 400, 600
GENERATED_TOKENS_PER_GPU_S, PROMPT_TOKENS_PER_GPU_S = 2_000, 20_000


def model_gpu_seconds(p: dict) -> float:
    """Estimated GPU-seconds of generate + judge for this point's answers and judge requests."""
    return (p["duels"] * 2 * ANSWER_TOKENS / GENERATED_TOKENS_PER_GPU_S
            + p["judgments"] * JUDGE_PROMPT_TOKENS / PROMPT_TOKENS_PER_GPU_S)


def one_point(members: int, duels: int, panel: int | None, folder: Path) -> dict:
    """One iteration at this size, in this process; the figures."""
    import yaml
    from scripted_model import ScriptedGroup, scripted_models

    from sparta_hpc import driver
    from sparta_hpc.config.resources import for_task
    from sparta_hpc.config.schema import load_config
    from sparta_hpc.launch import arrays
    from sparta_hpc.rundir.paths import RunPaths

    model_seconds = [0.0]
    for name in ("generate_all", "score_all"):  # the scripted model's own time, to subtract
        original = getattr(ScriptedGroup, name)

        def timed(self, *args, _original=original, **kwargs):
            start = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                model_seconds[0] += time.perf_counter() - start
        setattr(ScriptedGroup, name, timed)

    (folder / "base").mkdir(parents=True, exist_ok=True)
    (folder / "base" / "config.json").write_text("{}")
    judge = {"duels_per_shard": max(10, 50_000 // max(members - 2, 1)), "answer_prefix": '{"score": '}
    if panel:
        judge["panel_size"] = panel
    config = {"tribe": {"iterations": 1, "duels_per_iteration": duels,
                        "members": [{"name": f"m{i:03d}", "model": str(folder / "base"), "max_new_tokens": 64}
                                    for i in range(members)]},
              "generate": {"duels_per_shard": 2000}, "judge": judge, "cluster": {"executor": "debug"}}
    (folder / "bench.yaml").write_text(yaml.safe_dump(config))
    paths = RunPaths(folder / "run")
    start = time.time()
    with scripted_models():
        code = driver.main(["--config", str(folder / "bench.yaml"), f"run.dir={paths.root}",
                            "--stop-after", "aggregate"])
    wall = time.time() - start
    assert code == 0, f"the driver failed at {members} members x {duels} duels"
    events = [json.loads(x) for x in paths.events.read_text().splitlines()]
    stage_seconds = {e["stage"]: e.get("seconds", 0.0) for e in events if e["event"] == "stage_done"}
    cfg = load_config(paths.config)
    plan = json.loads(paths.plan(0).read_text())
    submissions = tasks = 0
    for stage in ("generate", "judge", "gather", "aggregate"):
        ids = list(range(len(plan[f"{stage}_tasks"]))) if stage in ("generate", "judge") else [None]
        needs = {t: for_task(cfg, stage, t, plan) for t in ids}
        submissions += len(arrays(ids, needs, cfg.cluster.max_array_size))
        tasks += len(ids)
    judgments = sum(len(j) for j in plan["judges"]) * 2
    return {"members": members, "duels": duels, "panel": panel, "judgments": judgments, "wall": wall,
            "stages": stage_seconds, "model": model_seconds[0],
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "plan_mb": paths.plan(0).stat().st_size / 1e6, "archive_mb": paths.archive(0).stat().st_size / 1e6,
            "submissions": submissions, "array_tasks": tasks}


def run_point(members: int, duels: int, panel: int | None) -> dict:
    """One point in a child process (its own peak memory), its folder removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=f"sparta-scale-{members}x{duels}-"))
    try:
        out = subprocess.run([sys.executable, __file__, "--one", str(members), str(duels), "--json",
                              *(["--panel", str(panel)] if panel else []), "--folder", str(folder)],
                             capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        if out.returncode:
            raise SystemExit(f"{members} x {duels} failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.splitlines()[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def row(p: dict) -> str:
    s = p["stages"]
    pipeline = p["wall"] - p["model"]
    return (f"{p['members']:>7} {p['duels']:>7} {p['judgments']:>10} {p['wall']:>7.1f} {p['model']:>6.1f} "
            f"{pipeline:>8.1f} " + " ".join(f"{s.get(k, 0):>8.1f}" for k in STAGES[1:])
            + f" {p['peak_mb']:>7.0f} {p['plan_mb']:>6.1f} {p['archive_mb']:>8.1f} {p['submissions']:>5} "
              f"{p['array_tasks']:>6} {model_gpu_seconds(p) / 3600:>8.1f} "
              f"{100 * pipeline / model_gpu_seconds(p):>6.2f}%")


HEAD = (f"{'members':>7} {'duels':>7} {'judgments':>10} {'wall s':>7} {'model':>6} {'pipeline':>8} "
        + " ".join(f"{k:>8}" for k in STAGES[1:]) + f" {'peak MB':>7} {'plan MB':>6} {'h5 MB':>8} {'subm.':>5} "
        f"{'tasks':>6} {'7B GPU-h':>8} {'ratio':>7}")
LEGEND = ("one iteration without training, scripted model; seconds. 'model': the scripted model's own time; "
          "'pipeline': the rest (driver, stages, archive, reputation: everything but model compute); "
          "'7B GPU-h': the estimated GPU-hours of generate + judge for a 7B tribe of this size (answers of "
          f"{ANSWER_TOKENS} tokens at {GENERATED_TOKENS_PER_GPU_S:,} generated tokens/s per GPU, judge requests of "
          f"{JUDGE_PROMPT_TOKENS} prompt tokens at {PROMPT_TOKENS_PER_GPU_S:,} prompt tokens/s: docs/reproduce.md's "
          "assumed H100 throughputs); 'ratio': pipeline seconds / those GPU-seconds (target < 10%)")


def growth(points: list[dict], key: str) -> str:
    """Exponent of the pipeline's cost in `key` between consecutive points (1: linear)."""
    out = []
    for a, b in zip(points, points[1:]):
        ca, cb = a["wall"] - a["model"], b["wall"] - b["model"]
        if ca > 0 and cb > 0 and b[key] != a[key]:
            exponent = math.log(cb / ca) / math.log(b[key] / a[key])
            out.append(f"{a[key]} -> {b[key]}: x{cb / ca:.1f} (exponent {exponent:.2f})")
    return "; ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", nargs=2, type=int, metavar=("MEMBERS", "DUELS"))
    parser.add_argument("--members", default="10,30,100", help="the member curve (at the first --duels value)")
    parser.add_argument("--duels", default="10000,1000,100000", help="the duel curve (at the last --members)")
    parser.add_argument("--panel", type=int, default=None, help="judge.panel_size (default: every non-duellist)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one and args.json:  # a child: one point, as JSON
        import logging

        logging.disable(logging.INFO)
        print(json.dumps(one_point(*args.one, args.panel, args.folder)))
        return
    name = "bench_scale" + (f"-{args.one[0]}x{args.one[1]}" if args.one else "") + \
        (f"-panel{args.panel}" if args.panel else "")
    with recorded(name):
        run(args)


def run(args: argparse.Namespace) -> None:
    if args.one:
        points = [run_point(*args.one, args.panel)]
        print(LEGEND)
        print(HEAD)
        print(row(points[0]))
        return
    members = [int(x) for x in args.members.split(",")]
    duels = [int(x) for x in args.duels.split(",")]
    print(LEGEND)
    print(HEAD)
    by_members = []
    for m in members:
        by_members.append(run_point(m, duels[0], args.panel))
        print(row(by_members[-1]), flush=True)
    by_duels = [p for p in by_members if p["members"] == members[-1]]
    for d in duels[1:]:
        by_duels.append(run_point(members[-1], d, args.panel))
        print(row(by_duels[-1]), flush=True)
    by_duels.sort(key=lambda p: p["duels"])
    print(f"growth of the pipeline's cost in members (at {duels[0]} duels): {growth(by_members, 'members')}")
    print(f"growth in duels (at {members[-1]} members): {growth(by_duels, 'duels')}")


if __name__ == "__main__":
    main()
