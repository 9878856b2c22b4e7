"""The cost of a run before it runs (sparta_hpc/report/cost.py): exact figures of a small hand-computable
config, the dry run printing them, and a dry run before the models are downloaded."""

import json
import logging
import math
import sys
from pathlib import Path

import pytest
import yaml

from sparta_hpc import driver
from sparta_hpc.algorithm.judging import JUDGE_TEMPLATE
from sparta_hpc.config.schema import load_config
from sparta_hpc.report.cost import CHAT_TOKENS, cost_lines, run_cost

from .conftest import ROOT, SAMPLES


def write_config(folder: Path, **changes) -> Path:
    """4 members on one base model, no system prompts, 40-token answers; instructions of 15 tokens on average."""
    (folder / "base").mkdir(exist_ok=True)
    (folder / "base" / "config.json").write_text("{}")
    rows = [{"instruction": "x" * 40}, {"instruction": "y" * 80}]  # 10 and 20 tokens
    (folder / "inst.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"tribe": {"iterations": 2, "duels_per_iteration": 8,
                        "members": [{"name": n, "model": str(folder / "base"), "max_new_tokens": 40}
                                    for n in ("a", "b", "c", "d")]},
              "instructions": {"source": str(folder / "inst.jsonl")},
              "judge": {"max_new_tokens": 6},
              "train": {"batch_size": 4, "max_length": 256},
              "run": {"dir": str(folder / "run")}, "cluster": {"executor": "debug"}}
    for section, values in changes.items():
        config.setdefault(section, {}).update(values)
    path = folder / "cost.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_exact_figures_of_a_small_config(tmp_path):
    c = run_cost(load_config(write_config(tmp_path)))
    it = c["per_iteration"]
    assert c["instruction_tokens"] == 15 and c["assumed"] == []
    # generate: 8 duels x 2 answers, each prompt 15 + 20 (chat) tokens, each answer 40 at most
    assert (it["generate"]["requests"], it["generate"]["prompt_tokens"], it["generate"]["generated_tokens"]) \
        == (16, 16 * 35, 640)
    assert it["generate"]["gpu_hours"] == pytest.approx((560 / 20000 + 640 / 2000) / 3600)
    # judge: 2 judges (M - 2) x 2 answers x 8 duels, each prompt the template + instruction + answer
    template = math.ceil(len(JUDGE_TEMPLATE.format(instruction="", response="")) / 4)
    assert it["judge"]["judgments"] == 32
    assert it["judge"]["prompt_tokens"] == 32 * (template + 15 + 40 + CHAT_TOKENS)
    assert it["judge"]["generated_tokens"] == 32 * 6 and it["judge"]["scored_tokens"] == 0
    # train: 8 pairs per member, batches of 4: 2 steps; 8 pairs x 2 sequences of 75 tokens x 2 (reference)
    assert it["train"]["pairs_per_member"] == 8
    assert it["train"]["steps_per_member"] == {"a": 2, "b": 2, "c": 2, "d": 2}
    assert it["train"]["forward_tokens"] == 4 * 8 * 2 * 75 * 2
    assert it["train"]["gpu_hours"] == pytest.approx(9600 / 3000 / 3600)
    assert c["total"]["train_tokens"] == 2 * 9600 and c["total"]["eval_items"] == 0
    assert c["total"]["gpu_hours"] == pytest.approx(2 * it["gpu_hours"])


def test_steps_follow_batch_accumulation_epochs_and_ranks(tmp_path):
    cfg = load_config(write_config(tmp_path, train={"gradient_accumulation_steps": 2, "epochs": 3},
                                   tribe={"duels_per_iteration": 20}))
    assert run_cost(cfg)["per_iteration"]["train"]["steps_per_member"]["a"] == 3 * math.ceil(5 / 2)
    cfg = load_config(write_config(tmp_path, tribe={"duels_per_iteration": 20},
                                   cluster={"train": {"tasks_per_node": 2, "gpus_per_node": 2}}))
    assert run_cost(cfg)["per_iteration"]["train"]["steps_per_member"]["a"] == 3  # 20 pairs / (4 x 2 ranks)


def test_spin_counts_iteration_t_minus_1s_pairs_from_iteration_1_on(tmp_path):
    """SPIN (baseline.spin_previous) trains iteration t >= 1 on 8 + 8 pairs: twice iteration 0's steps
    and forward tokens (1 member, sequences of 75 tokens)."""
    path = write_config(tmp_path, tribe={"iterations": 3})
    cfg = load_config(path, ["method=spin", "baseline.member=a"])
    assert cfg.baseline.spin_previous
    c = run_cost(cfg)
    first, later = c["per_iteration"]["train"], c["per_iteration"]["train_later"]
    assert (first["pairs_per_member"], first["steps_per_member"], first["forward_tokens"]) == (8, {"a": 2}, 2400)
    assert (later["pairs_per_member"], later["steps_per_member"], later["forward_tokens"]) == (16, {"a": 4}, 4800)
    assert c["total"]["train_tokens"] == 2400 + 2 * 4800
    alone = run_cost(load_config(path, ["method=spin", "baseline.member=a", "baseline.spin_previous=false"]))
    assert "train_later" not in alone["per_iteration"] and alone["total"]["train_tokens"] == 3 * 2400
    assert c["total"]["gpu_hours"] - alone["total"]["gpu_hours"] == pytest.approx(2 * 2400 / 3000 / 3600)
    assert any("train from iteration 1 on: 16 pairs" in line for line in cost_lines(cfg))


def test_expected_score_judging_and_more_gpus_cost_more(tmp_path):
    base = run_cost(load_config(write_config(tmp_path)))["per_iteration"]["judge"]
    cfg = load_config(write_config(tmp_path, judge={"score": "expected"},
                                   cluster={"judge": {"gpus_per_node": 4}}))
    judge = run_cost(cfg)["per_iteration"]["judge"]
    assert judge["scored_tokens"] == 32 * 10 * 3
    assert judge["prompt_tokens"] == 2 * base["prompt_tokens"] + judge["scored_tokens"]
    assert judge["gpu_hours"] > 4 * base["gpu_hours"]


def test_evaluation_items_follow_points_members_and_eval_test(tmp_path):
    ev = {"tasks": ["gsm8k"], "data_dir": str(SAMPLES), "limit": 3}  # 3 dev and 3 test items
    every = run_cost(load_config(write_config(tmp_path, eval=ev)))["eval"]
    assert every["points"] == 3  # initial, after iterations 0 and 1
    assert every["items"] == {"dev": 3 * 4 * 3, "test": 3 * 4 * 3}
    gsm8k = 256  # the task's answer budget
    assert every["evaluate"]["generated_tokens"] == 72 * gsm8k
    selected = run_cost(load_config(write_config(tmp_path, eval={**ev, "test": "selected"})))["eval"]
    # test only for BEST INIT at the start and the selected model at one point: 2 x 3 items
    assert selected["items"] == {"dev": 36, "test": 6}
    assert selected["gpu_hours"] < every["gpu_hours"]


def test_missing_files_are_assumed_and_said(tmp_path):
    cfg = load_config(write_config(tmp_path, instructions={"source": str(tmp_path / "none.jsonl")},
                                   eval={"tasks": ["medqa"], "data_dir": str(tmp_path / "none")}))
    c = run_cost(cfg)
    assert c["instruction_tokens"] == 100 and c["eval"]["items"]["test"] == 1000 * 4 * 3
    assert len(c["assumed"]) == 3 and any("assumed: instructions" in line for line in cost_lines(cfg))


def test_the_dry_run_prints_the_cost(tmp_path, capsys):
    assert driver.main(["--config", str(write_config(tmp_path)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "per iteration: generate 16 answers, 560 prompt + 640 generated tokens" in out
    assert "train 8 pairs x 4 member(s), 2 optimizer steps each, 9.6 K forward tokens" in out
    assert "whole run (2 iterations)" in out and "disk per iteration" in out


def test_a_dry_run_warns_about_a_missing_model_and_a_run_refuses(tmp_path, capsys, caplog):
    config = write_config(tmp_path)
    missing = ["tribe.members.1.model=" + str(tmp_path / "not-downloaded"),
               "tribe.members.2.adapter=" + str(tmp_path / "no-adapter")]
    with caplog.at_level(logging.WARNING):
        assert driver.main(["--config", str(config), "--dry-run", *missing]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("tribe.members.1.model: no model at" in w for w in warned)
    assert any("tribe.members.2.adapter: no LoRA adapter" in w for w in warned)
    assert "cost estimate" in capsys.readouterr().out
    caplog.clear()
    assert driver.main(["--config", str(config), *missing]) == 2
    assert any("config error: tribe.members.1.model: no model at" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "run").exists()


def test_a_dry_run_before_data_prepare_warns_and_shows_the_plan(tmp_path, capsys, caplog):
    """No instruction file and no evaluation data yet: the dry run still prints the plan and its cost
    (sizes assumed and said), naming what is not there; a run refuses the same config."""
    config = write_config(tmp_path)
    absent = [f"instructions.source={tmp_path / 'data' / 'gsm8k' / 'train.jsonl'}", "eval.tasks=[gsm8k]",
              f"eval.data_dir={tmp_path / 'data' / 'eval'}"]
    with caplog.at_level(logging.WARNING):
        assert driver.main(["--config", str(config), "--dry-run", *absent]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("instructions.source: no file at" in w and "train.jsonl" in w for w in warned), warned
    assert any("eval.tasks: gsm8k: no file at" in w for w in warned), warned
    out = capsys.readouterr().out
    assert "generate   job array: 1 tasks (iteration 0)" in out and "cost estimate" in out
    caplog.clear()
    assert driver.main(["--config", str(config), *absent]) == 2
    assert any("config error: instructions.source: no file at" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("preset, steps", [("paper-authors.yaml", 1000), ("paper-qwen7b.yaml", 125)])
def test_the_presets_dry_run_shows_their_dpo_optimizer_steps(preset, steps, monkeypatch, tmp_path):
    """The authors' DPO takes one pair per step; the recommended preset 8: 1,000 and 125 steps per member
    per iteration of 1,000 pairs (64 pairs per step once gave 16, unnoticed)."""
    for var in ("SPARTA_MODELS", "SPARTA_DATA", "SPARTA_TRIBE"):
        monkeypatch.setenv(var, str(tmp_path))
    monkeypatch.setenv("SPARTA_VLLM_PYTHON", sys.executable)
    text = "\n".join(cost_lines(load_config(ROOT / "configs" / preset)))
    assert f"train 1000 pairs x 10 member(s), {steps} optimizer steps each" in text, text
