"""Config loading, validation and the driver's refusal of bad input before any job starts."""

import json
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sparta_hpc.config.checks import validate
from sparta_hpc.config.schema import InstructionsConfig, load_config
from sparta_hpc.errors import ConfigError
from sparta_hpc.inputs.instructions import demo_instructions, load_instructions

from .conftest import ROOT, SAMPLES


def write_config(tmp_path, fake_model, **changes):
    data = yaml.safe_load((ROOT / "configs/tiny.yaml").read_text())
    for m in data["tribe"]["members"]:
        m["model"] = str(fake_model)
    data["run"]["dir"] = str(tmp_path / "run")
    for dotted, value in changes.items():
        node = data
        *head, last = dotted.split("__")
        for key in head:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        node[last] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def driver(caplog, capsys):
    """The driver's main() in this process (what `python -m sparta_hpc.driver ARGS` runs):
    (returncode, stdout, stderr + log) of one call."""
    from sparta_hpc.driver import main

    def call(*args):
        caplog.clear()
        try:
            code = main(list(map(str, args)))
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err + caplog.text)
    return call


def test_tiny_preset_loads_and_overrides_apply(tmp_path, fake_model):
    path = write_config(tmp_path, fake_model)
    cfg = load_config(path, ["tribe.iterations=1", "tribe.members.plain.temperature=0.5",
                             "train.lora_target_modules=[q_proj, v_proj]", "judge.few_shot=true"])
    validate(cfg)
    assert cfg.tribe.iterations == 1
    assert cfg.members[3].name == "plain" and cfg.members[3].temperature == 0.5
    assert cfg.train.lora_target_modules == ["q_proj", "v_proj"]
    assert cfg.judge.few_shot is True
    assert cfg.base_groups() == [[0, 1, 2, 3]]  # one base model serves all four


def test_paper_preset_is_valid_apart_from_its_model_paths():
    cfg = load_config(ROOT / "configs/paper-qwen7b.yaml")
    assert len(cfg.members) == 10 and cfg.tribe.duels_per_iteration == 1000
    assert cfg.matchmaking.alpha == 0.6 and cfg.reputation.initial_k == 10
    with pytest.raises(ConfigError, match="model: no model at"):
        validate(cfg)


@pytest.mark.parametrize("override, message", [
    ("tribe.iteratons=2", "unknown config field 'tribe.iteratons'"),
    ("tribe.iterations=two", "tribe.iterations: expected an integer"),
    ("judge.score=best", "judge.score: must be one of"),
    ("tribe.members.nobody.temperature=1", "no element 'nobody'"),
    ("reputation.decay_rate=2", "reputation.decay_rate must be in (0, 1]"),
    ("tribe.duels_per_iteration=0", "tribe.duels_per_iteration: must be >= 1"),
    ("generate.backend=vllm", "the generate stage serves with vLLM but it does not import vLLM"),  # none here
    ("judge.backend=sglang", "judge.backend: must be one of"),
    ("vllm.gpu_memory_utilization=1.5", "vllm.gpu_memory_utilization: must be in (0, 1]"),
    ("vllm.tensor_parallel_size=0", "vllm.tensor_parallel_size: must be >= 1"),
    ("train.quantization=8bit", "train.quantization: must be one of"),
    ("cluster.generate.python=/nonexistent/bin/python", "cluster.generate.python: no executable"),
    ("train.warmup_ratio=1.5", "train.warmup_ratio: must be in [0, 1)"),
    ("cluster.max_timeouts=-1", "cluster.max_timeouts: must be >= 0"),
])
def test_driver_refuses_bad_overrides_before_any_job(tmp_path, fake_model, override, message, driver):
    proc = driver("--config", write_config(tmp_path, fake_model), override)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "run").exists(), "nothing may be written before the checks pass"


@pytest.mark.parametrize("change, message", [
    ({"tribe__members": [{"name": "a", "model": "M"}, {"name": "b", "model": "M"}]}, "at least 3 members"),
    ({"tribe__members__1__name": "concise"}, "duplicate member name"),
    ({"tribe__members__0__name": "../evil"}, "becomes a file name"),
    ({"tribe__members__2__model": "/nonexistent/model"}, "tribe.members.2.model: no model at"),
    ({"tribe__members__2__adapter": "/nonexistent/adapter"}, "no LoRA adapter at"),
    ({"instructions__source": "/nonexistent/file.jsonl"}, "instructions.source: no file at"),
    ({"trian": {"beta": 0.2}}, "unknown config field 'trian'"),
])
def test_driver_refuses_bad_config(tmp_path, fake_model, change, message, driver):
    if "tribe__members" in change:
        change["tribe__members"] = [dict(m, model=str(fake_model)) for m in change["tribe__members"]]
    proc = driver("--config", write_config(tmp_path, fake_model, **change))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "run").exists()


def test_qlora_under_zero3_is_refused(tmp_path, fake_model, driver):
    proc = driver("--config", write_config(tmp_path, fake_model), "train.quantization=4bit",
                  f"train.deepspeed={ROOT / 'configs/deepspeed/zero3.json'}")
    assert proc.returncode == 2 and "4bit (QLoRA) does not shard under ZeRO-3" in proc.stderr
    cfg = load_config(write_config(tmp_path, fake_model), ["train.quantization=4bit",
                                                            f"train.deepspeed={ROOT / 'configs/deepspeed/zero2.json'}"])
    validate(cfg)


def fake_python(folder: Path, answer: str, code: int = 0) -> str:
    """An interpreter that answers vLLM's probe (gpu_checks.PROBE) as a venv would: its version, or an error."""
    path = folder / f"python-{abs(hash(answer))}"
    path.write_text(f"#!/bin/sh\necho {shlex.quote(answer)} >&{2 if code else 1}\nexit {code}\n")
    path.chmod(0o755)
    return str(path)


def test_vllm_in_another_python_is_accepted(tmp_path, fake_model, driver):
    """vLLM need not be in the driver's Python when generate and judge run in another one; that one is
    asked (at --dry-run too) whether it imports vLLM at a version with logprob_token_ids."""
    python = f"env LD_PRELOAD= {fake_python(tmp_path, '0.32.0')}"
    proc = driver("--config", write_config(tmp_path, fake_model), "--dry-run", "generate.backend=vllm",
                  f"cluster.generate.python={python}", f"cluster.judge.python={python}")
    assert proc.returncode == 0, proc.stderr
    assert "[vllm]" in proc.stdout


def test_a_stages_interpreter_may_come_from_the_environment(tmp_path, fake_model, driver, monkeypatch):
    """The presets' vLLM stages name $SPARTA_VLLM_PYTHON: expanded when set, refused by name when not."""
    python = fake_python(tmp_path, "0.32.0")
    args = ("--config", write_config(tmp_path, fake_model), "--dry-run", "generate.backend=vllm", "judge.backend=hf",
            "cluster.generate.python=$SPARTA_VLLM_PYTHON")
    proc = driver(*args)
    assert proc.returncode == 2 and "cluster.generate.python: '$SPARTA_VLLM_PYTHON' names $SPARTA_VLLM_PYTHON, " \
        "which is not set: export it" in proc.stderr
    monkeypatch.setenv("SPARTA_VLLM_PYTHON", python)
    proc = driver(*args)
    assert proc.returncode == 0, proc.stderr
    assert load_config(args[1], [args[-1]]).cluster.generate.python == python


@pytest.mark.parametrize("answer, code, message", [
    ("0.19.1", 0, "vLLM 0.19.1 there; the judge's expected scores need SamplingParams.logprob_token_ids, vLLM >= 0.20.0"),
    ("ModuleNotFoundError: No module named 'vllm'", 1, "it does not import vLLM with SamplingParams.logprob_token_ids "
                                                      "(ModuleNotFoundError: No module named 'vllm')"),
])
def test_a_vllm_stage_in_the_wrong_venv_is_refused_at_the_dry_run(tmp_path, fake_model, driver, answer, code,
                                                                    message):
    python = fake_python(tmp_path, answer, code)
    proc = driver("--config", write_config(tmp_path, fake_model), "--dry-run", "generate.backend=vllm",
                  "judge.backend=hf", f"cluster.generate.python={python}", "cluster.executor=slurm")
    assert proc.returncode == 2 and f"cluster.generate.python ({python}): " in proc.stderr and message in proc.stderr


def test_stop_after_and_the_backends_in_the_dry_run(tmp_path, fake_model, driver):
    proc = driver("--config", write_config(tmp_path, fake_model), "--dry-run", "judge.backend=hf")
    assert proc.returncode == 0, proc.stderr
    assert "of 4 duels [hf]" in proc.stdout and "score: expected [hf]" in proc.stdout
    proc = driver("--config", write_config(tmp_path, fake_model), "--stop-after", "sideways")
    assert proc.returncode == 2 and "--stop-after: invalid choice" in proc.stderr


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, fake_model):
    proc = subprocess.run([sys.executable, "-m", "sparta_hpc.driver", "--config", str(write_config(tmp_path, fake_model)),
                           "--dry-run", "tribe.duels_per_iteration=10"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    for text in ("4 members", "2 iterations x 10 duels", "group 0", "concise, stepwise, friendly, plain",
                 "generate   job array: 3 tasks", "judge      job array: 3 tasks", "train      4 DPO jobs"):
        assert text in proc.stdout, proc.stdout
    assert not (tmp_path / "run").exists()


def test_sparta_hpc_run_is_the_driver_and_takes_overrides_both_ways(tmp_path, fake_model, capsys):
    """`sparta-hpc run CONFIG` parses like `python -m sparta_hpc.driver --config CONFIG`; `--set` is an alias."""
    from sparta_hpc import cli

    config = write_config(tmp_path, fake_model)
    assert cli.main(["run", str(config), "--dry-run", "tribe.duels_per_iteration=10",
                     "--set", "tribe.iterations=3"]) == 0
    assert "3 iterations x 10 duels" in capsys.readouterr().out
    assert cli.main(["run", "--dry-run", "--config", str(config), "tribe.duels_per_iteration=12"]) == 0
    assert "2 iterations x 12 duels" in capsys.readouterr().out
    assert cli.main(["run", "--dry-run", "tribe.iterations=3"]) == 2  # no config
    assert not (tmp_path / "run").exists()


def test_resume_with_a_changed_config_is_refused(tmp_path, fake_model, driver):
    path = write_config(tmp_path, fake_model)
    run = tmp_path / "run"
    run.mkdir()
    from sparta_hpc.config.schema import config_to_yaml

    (run / "config.yaml").write_text(config_to_yaml(load_config(path)))
    proc = driver("--config", path, "train.beta=0.2", "--dry-run")
    assert proc.returncode == 2 and "started with another config" in proc.stderr
    assert "-  beta: 0.1" in proc.stderr and "+  beta: 0.2" in proc.stderr
    assert driver("--config", path, "train.beta=0.2", "--dry-run", "--force-config").returncode == 0


def test_instruction_files(tmp_path):
    rows = [{"q": "What is 2+2?", "key": "a"}, {"q": "Name a color.", "key": "b"}]
    (tmp_path / "i.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "i.json").write_text(json.dumps(rows))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "i.parquet")
    for name in ("i.jsonl", "i.json", "i.parquet"):
        items = load_instructions(InstructionsConfig(source=str(tmp_path / name), prompt_field="q", id_field="key"))
        assert [(i.id, i.text) for i in items] == [("a", "What is 2+2?"), ("b", "Name a color.")]
    assert len(demo_instructions()) >= 40 and len({i.id for i in demo_instructions()}) == len(demo_instructions())


@pytest.mark.parametrize("content, message", [
    ("", "holds no instructions"),
    ('{"q": "ok"}\n{not json\n', "i.jsonl:2: not valid JSON"),
    ('{"q": "ok"}\n{"text": "no q"}\n', "i.jsonl:2: field 'q' (instructions.prompt_field) is missing"),
    ('{"q": ""}\n', "is missing or not a non-empty string"),
])
def test_bad_instruction_files(tmp_path, content, message):
    (tmp_path / "i.jsonl").write_text(content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_instructions(InstructionsConfig(source=str(tmp_path / "i.jsonl"), prompt_field="q"))


def test_a_second_driver_on_the_same_run_is_refused(tmp_path, fake_model, driver):
    from sparta_hpc.driver import lock_run
    from sparta_hpc.rundir.paths import RunPaths

    path = write_config(tmp_path, fake_model)
    held = lock_run(RunPaths(tmp_path / "run"))
    proc = driver("--config", path)
    assert proc.returncode == 2 and "in use by another driver (pid" in proc.stderr
    assert not (tmp_path / "run" / "events.jsonl").exists()
    held.close()




@pytest.mark.parametrize("overrides, message", [
    (["eval.tasks=[gsm9k]"], "eval.tasks: unknown task 'gsm9k'"),
    (["eval.tasks=[gsm8k]"], "eval.tasks: no file for task 'gsm8k': set eval.data_dir"),
    (["eval.tasks=[gsm8k]", "eval.data_dir=/nonexistent"], "/nonexistent/gsm8k.json: the data file does not exist"),
    (["eval.tasks=[com2]", f"eval.data_dir={SAMPLES}"], "eval.evaluator.model: tasks ['com2'] are rated"),
    (["eval.tasks=[medqa]", f"eval.files={{medqa: {SAMPLES}/gsm8k.json}}"], "dev row 0 has no field 'choices'"),
    (["eval.tasks=[gsm8k]", f"eval.data_dir={SAMPLES}", "eval.items_per_shard=0"], "eval.items_per_shard: must be"),
])
def test_bad_evaluation_settings_are_refused_before_any_job(tmp_path, fake_model, driver, overrides, message):
    proc = driver("--config", write_config(tmp_path, fake_model), *overrides)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "run").exists()


def test_an_evaluation_item_is_never_a_duel_instruction(tmp_path, fake_model, driver):
    question = json.loads((SAMPLES / "gsm8k.json").read_text())["test"][3]["question"]
    rows = [{"instruction": "Write a haiku about rain."}, {"instruction": "  " + question.upper() + "  "}]
    (tmp_path / "i.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = driver("--config", write_config(tmp_path, fake_model), f"instructions.source={tmp_path / 'i.jsonl'}",
                  "eval.tasks=[gsm8k]", f"eval.data_dir={SAMPLES}")
    assert proc.returncode == 2, proc.stderr
    assert "1 instruction(s) of" in proc.stderr and "items of evaluation task 'gsm8k'" in proc.stderr
    assert question.upper()[:40] in proc.stderr


def test_a_dev_item_among_the_duel_instructions_is_a_warning(tmp_path, fake_model, driver):
    """data prepare keeps dev items in a clean pool (GSM8K's dev split is GSM8K train, the authors'
    pool): they make selection on dev less blind, which is said, but never refuse the run."""
    question = json.loads((SAMPLES / "gsm8k.json").read_text())["dev"][2]["question"]
    (tmp_path / "i.jsonl").write_text(json.dumps({"instruction": "Write a haiku about rain."}) + "\n"
                                      + json.dumps({"instruction": question}) + "\n")
    proc = driver("--config", write_config(tmp_path, fake_model), f"instructions.source={tmp_path / 'i.jsonl'}",
                  "eval.tasks=[gsm8k]", f"eval.data_dir={SAMPLES}", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "1 instruction(s) of" in proc.stderr and "are dev items of evaluation task 'gsm8k'" in proc.stderr


PRESETS = {  # preset -> the fields it changes from the paper preset (besides run.dir)
    "ablations/uniform-weights.yaml": {"reputation.weighting": "uniform"},
    "ablations/random-matching.yaml": {"matchmaking.alpha": 1.0},
    "ablations/frozen-reputation.yaml": {"reputation.frozen": True},
    "ablations/judge-rounds-3.yaml": {"judge.rounds": 3, "judge.temperature": 0.7},
    "ablations/tribe-of-2.yaml": {"reputation.duelists_judge": True, "matchmaking.k": 1},
    "baselines/self-rewarding.yaml": {"method": "self_rewarding", "judge.rounds": 3, "judge.temperature": 0.7,
                                      "judge.top_p": 0.9, "judge.rubric": "additive5", "judge.max_new_tokens": 256},
    "baselines/meta-rewarding.yaml": {"method": "meta_rewarding", "judge.rounds": 3, "judge.temperature": 0.7,
                                      "judge.top_p": 0.9, "judge.rubric": "additive5", "judge.max_new_tokens": 256},
    "baselines/spin.yaml": {"method": "spin", "instructions.reference_field": "output"},
    "baselines/sppo.yaml": {"method": "sppo", "baseline.samples": 5, "train.loss_type": None},
}


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_ablation_and_baseline_presets_change_only_what_their_first_lines_say(preset, monkeypatch):
    from sparta_hpc.config.schema import to_dict

    monkeypatch.setenv("SPARTA_MODELS", "/models")
    text = (ROOT / "configs" / preset).read_text()
    assert text.startswith("# Ablation: " if "ablations" in preset else "# Baseline: ")
    assert "python -m sparta_hpc.driver --config configs/" + preset in text
    paper, cfg = flatten(to_dict(load_config(ROOT / "configs/paper-qwen7b.yaml"))), load_config(ROOT / "configs" / preset)
    changed = {k for k, v in flatten(to_dict(cfg)).items() if paper.get(k) != v and k != "run.dir"}
    for key, value in PRESETS[preset].items():
        assert flatten(to_dict(cfg))[key] == value, key
    expected = set(PRESETS[preset]) - {"train.loss_type"}
    assert expected <= changed
    if "tribe-of-2" in preset:
        assert len(cfg.members) == 2
        changed = {k for k in changed if not k.startswith("tribe.members")}
    assert changed <= expected | {"baseline.judge_model", "cluster.judge.gpus_per_node", "cluster.judge.cpus_per_task",
                                  "cluster.judge.mem_gb", "instructions.with_reference_only"}, changed


def test_a_mixed_tribe_gets_resources_per_group_and_member_and_arrays_respect_max_array_size(tmp_path, driver):
    from sparta_hpc.config.schema import Resources
    from sparta_hpc.launch import arrays

    for name in ("small", "big"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    config = tmp_path / "mixed.yaml"
    config.write_text(yaml.safe_dump({
        "run": {"dir": str(tmp_path / "run")},
        "tribe": {"members": [{"name": "a", "model": str(tmp_path / "small")},
                              {"name": "b", "model": str(tmp_path / "small")},
                              {"name": "c", "model": str(tmp_path / "big"), "resources": {"nodes": 2}}]},
        "cluster": {"executor": "slurm", "models": [{"model": str(tmp_path / "big"), "judge": {"gpus_per_node": 4}}]}}))
    proc = driver("--config", config, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert f"judge      group 1 ({tmp_path / 'big'}): 1 node(s) x 1 task(s), 4 GPU(s)/node" in proc.stdout
    assert "train      c: 2 node(s)" in proc.stdout and "train      a:" not in proc.stdout
    bad = driver("--config", config, "--dry-run", "tribe.members.c.resources={gpus: 2}")
    assert bad.returncode == 2 and "tribe.members.2 ('c').resources: unknown resource field 'gpus'" in bad.stderr
    small, big = Resources(), Resources(gpus_per_node=4)
    needs = {t: small if t % 3 else big for t in range(10)}
    assert arrays(list(range(10)), needs, 3) == [[0, 3, 6], [9], [1, 2, 4], [5, 7, 8]]
