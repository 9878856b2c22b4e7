"""The vLLM backend, on vLLM's CPU build (`make test-vllm`: its own venv, see docs/vllm.md).

Real engines on the tiny tribe's SmolLM2-135M, with real LoRA adapters served
through multi-LoRA: the backend must see the same inputs and give the same
log-probabilities as the HF backend, and a whole iteration through the driver
must produce valid texts and parsable scores through it and train every member.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sparta_hpc.rundir.paths import RunPaths

from .conftest import ROOT, SAMPLES

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

if os.environ.get("SPARTA_VLLM_TESTS") == "required":
    import vllm  # noqa: F401  (make test-vllm: a missing vLLM is a failure, not a skip)
else:
    pytest.importorskip("vllm", reason="vLLM is not installed here: `make test-vllm` runs these in .venv-vllm")

CANDIDATES = [f"{s}}}" for s in range(1, 11)]
CONVERSATIONS = [[{"role": "user", "content": "What is the capital of France?"}],
                 [{"role": "system", "content": "You are a concise assistant."},
                  {"role": "user", "content": "Name a primary color."}]]
JUDGE = [[{"role": "user", "content": "Rate this answer from 1 to 10.\nQuestion: 2+2?\nAnswer: 4"}]]


@pytest.fixture(scope="module")
def adapters(tiny_model, tmp_path_factory):
    sys.path.insert(0, str(ROOT / "tools"))
    from random_adapter import random_adapter

    folder = tmp_path_factory.mktemp("adapters")
    return [random_adapter(tiny_model, folder / f"a{i}", seed=i) for i in (1, 2)]


@pytest.fixture(scope="module")
def opinionated_model(tiny_model, tmp_path_factory):
    """The tiny model with a generation_config.json of its own sampling defaults, as Qwen2.5's has (top_k
    20, repetition_penalty 1.05; stronger here, so that it changes greedy answers): the backends must
    apply them in both or in neither (neither: a member's sampling is what its config says)."""
    folder = tmp_path_factory.mktemp("opinionated")
    for f in tiny_model.iterdir():
        if f.is_file() and f.name != "generation_config.json":
            os.link(f, folder / f.name)
    config = json.loads((tiny_model / "generation_config.json").read_text())
    (folder / "generation_config.json").write_text(json.dumps({**config, "top_k": 20, "repetition_penalty": 1.5}))
    return folder


def test_vllm_matches_hf_with_and_without_adapter(opinionated_model, adapters, tmp_path):
    """One engine, an adapter member and a bare member, each alone and both in one call: greedy texts and judge
    log-probabilities equal the HF backend's (same token ids in, fp32), on a model whose
    generation_config.json has sampling defaults of its own (neither backend applies them)."""
    from sparta_hpc.backends import Batch
    from sparta_hpc.backends.hf import HFGroup
    from sparta_hpc.backends.vllm import VLLMGroup
    from sparta_hpc.config.schema import VLLMConfig

    tiny_model = opinionated_model
    members = {"tuned": str(adapters[0]), "bare": None}
    engine = VLLMGroup(str(tiny_model), members, dtype="float32", cache_dir=tmp_path, seed=0,
                       engine=VLLMConfig(max_model_len=1024, cpu_kv_cache_gb=1, block_size=32))
    assert engine.loads == 1
    greedy = {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 16, "batch_size": 4, "seed": 1}
    v_text = {m: [g.text for g in engine.generate(m, CONVERSATIONS, **greedy)] for m in members}
    v_score = {m: engine.score_logprobs(m, JUDGE, '{"score": ', CANDIDATES, 4)[0] for m in members}

    hf = HFGroup(str(tiny_model), members)
    for m in members:
        assert v_text[m] == [g.text for g in hf.generate(m, CONVERSATIONS, **greedy)], m
        h_score = hf.score_logprobs(m, JUDGE, '{"score": ', CANDIDATES, 4)[0]
        for c in CANDIDATES:
            assert v_score[m][c] == pytest.approx(h_score[c], abs=2e-3), (m, c)
    # the adapter is really applied: the tuned member's distribution is another one
    assert max(abs(v_score["tuned"][c] - v_score["bare"][c]) for c in CANDIDATES) > 0.1
    assert v_text["tuned"] != v_text["bare"]
    # both members in one engine call, as the stages make it: each gets its own answers and scores
    # (vLLM's CPU kernels ran a bare prompt batched with adapter prompts through an adapter)
    mixed = engine.generate_all([Batch(m, CONVERSATIONS, 0.0, 1.0, 16, 1, "") for m in ("tuned", "bare")], 4)
    assert {m: [g.text for g in out] for m, out in zip(("tuned", "bare"), mixed)} == v_text
    mixed = engine.score_all(["bare", "tuned"], [JUDGE, JUDGE], '{"score": ', CANDIDATES, 4)
    for m, out in zip(("bare", "tuned"), mixed):
        assert out[0] == pytest.approx(v_score[m], abs=1e-4), m
    with pytest.raises(ValueError, match="raise vllm.max_model_len"):  # named, before vLLM's own error
        engine.generate("bare", CONVERSATIONS, **dict(greedy, max_new_tokens=2000))
    engine.close()


def test_a_whole_iteration_with_vllm_and_two_venvs(tiny_model, adapters, tmp_path):
    """The two-venv setup of a cluster, on this machine: the driver, gather and aggregate in the
    pipeline's venv, generate and judge in vLLM's (`cluster.<stage>.python`). One engine per
    task serves 2 adapters and 2 bare members; answers are real text, judges' scores parse, the
    pairs are made; a rerun recomputes nothing. (DPO after it runs in the pipeline's venv as in
    every other run: tests/test_pipeline.py.)"""
    pipeline_python = ROOT / ".venv" / "bin" / "python"
    assert pipeline_python.exists(), "the pipeline venv is missing: make venv"
    preload = os.environ.get("LD_PRELOAD") or str(Path(sys.prefix) / "lib" / "libiomp5.so")
    vllm_python = f"env LD_PRELOAD={preload} {sys.executable}"
    run_dir = tmp_path / "run"
    cmd = [str(pipeline_python), "-m", "sparta_hpc.driver", "--config", "configs/tiny.yaml", f"run.dir={run_dir}",
           "tribe.iterations=1", "generate.backend=vllm", "vllm.max_model_len=1024", "vllm.cpu_kv_cache_gb=1",
           "vllm.block_size=32", "tribe.duels_per_iteration=4", "generate.duels_per_shard=4",
           "judge.duels_per_shard=4", "--stop-after", "aggregate",
           f"cluster.generate.python={vllm_python}", f"cluster.judge.python={vllm_python}",
           f"tribe.members.concise.adapter={adapters[0]}", f"tribe.members.stepwise.adapter={adapters[1]}"] + [
        f"tribe.members.{m}.max_new_tokens=16" for m in ("concise", "stepwise", "friendly", "plain")]
    # the pipeline's venv gets neither vLLM's OpenMP runtime nor its settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_") and k != "LD_PRELOAD"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    paths = RunPaths(run_dir)
    assert paths.is_done(0, "aggregate") and not paths.plan(1).exists()

    gen = json.loads(paths.shard(0, "generate", 0, 0).read_text())
    assert gen["backend"] == "vllm" and gen["model_loads"] == 1
    by_member = {}
    for r in gen["responses"]:
        by_member.setdefault(r["member"], []).append(r)
        assert r["text"].strip() and 0 < r["n_tokens"] <= 40
    assert len(gen["responses"]) == 8 and len(by_member) >= 3

    judged = json.loads(paths.shard(0, "judge", 0, 0).read_text())
    assert judged["backend"] == "vllm" and judged["model_loads"] == 1
    js = judged["judgments"]
    assert len(js) == 4 * 2 * 2  # duels x sides x non-duelist judges
    assert all(j["raw"].startswith('{"score": ') for j in js)
    parsed = [j["parsed"] for j in js if j["parsed"] is not None]
    assert len(parsed) >= len(js) // 2 and all(1 <= p <= 10 for p in parsed)
    for j in js:  # expected scores from the engine's log-probabilities over "1}".."10}"
        assert 1 <= j["expected"] <= 10 and np.isfinite(j["logprobs"]).all() and max(j["logprobs"]) < 0

    # the base model's weights were loaded once per task (vLLM's own log line), in both stages
    for stage in ("generate", "judge"):
        loads = sum(p.read_text().count("Loading weights took") for p in (paths.logs / stage).rglob("*_log.*"))
        assert loads == 1, (stage, loads)
    # the pairs of the vLLM answers and judgments (aggregate, in the pipeline's venv)
    pairs = [json.loads(line) for line in paths.pairs(0).read_text().splitlines()]
    texts = {r["text"] for r in gen["responses"]}
    assert pairs and all(r["chosen"][0]["content"] in texts and r["rejected"][0]["content"] in texts for r in pairs)

    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    events = [json.loads(line) for line in paths.events.read_text().splitlines()]
    assert sum(e["event"] == "task_submit" for e in events) == 4  # generate, judge, gather, aggregate


def test_an_evaluation_on_vllm_gives_the_hf_answers_and_scores(tiny_model, adapters, tmp_path):
    """One task evaluated twice in this test, the answers by vLLM (in its venv, as the evaluate
    stage's Python) and by HF: the same greedy answers and the same lm-eval scores."""
    pipeline_python = ROOT / ".venv" / "bin" / "python"
    preload = os.environ.get("LD_PRELOAD") or str(Path(sys.prefix) / "lib" / "libiomp5.so")
    samples = SAMPLES
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_") and k != "LD_PRELOAD"}
    results = {}
    for backend, extra in (("hf", []), ("vllm", ["eval.backend=vllm", "vllm.max_model_len=1024",
                                                   "vllm.cpu_kv_cache_gb=1",
                                                   f"cluster.evaluate.python=env LD_PRELOAD={preload} {sys.executable}"])):
        out = tmp_path / backend
        proc = subprocess.run([str(pipeline_python), "-m", "sparta_hpc.cli", "eval", "--model", str(tiny_model),
                               "--adapter", str(adapters[0]), "--name", "tuned", "--tasks", "gsm8k", "--data-dir",
                               str(samples), "--out", str(out), "eval.split=test", "eval.limit=4",
                               "eval.max_new_tokens=16", *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=1200)
        assert proc.returncode == 0, proc.stderr[-4000:]
        paths = RunPaths(out)
        shard = json.loads(next((paths.eval_point(-1) / "evaluate").glob("*.json")).read_text())
        assert shard["backend"] == backend and shard["model_loads"] == 1
        samples_ = [json.loads(x) for x in paths.eval_samples(-1, "tuned", "gsm8k", "test").read_text().splitlines()]
        results[backend] = (json.loads(paths.eval_result(-1, "tuned", "gsm8k").read_text())["test"], samples_)
    (hf, hf_samples), (vl, vl_samples) = results["hf"], results["vllm"]
    assert [s["response"] for s in vl_samples] == [s["response"] for s in hf_samples]
    assert [s["correct"] for s in vl_samples] == [s["correct"] for s in hf_samples]
    assert (vl["score"], vl["n"], vl["stderr"]) == (hf["score"], hf["n"], hf["stderr"])
