"""The sbatch scripts generated for the paper preset match the reviewed golden file."""

import os

from sparta_hpc.config.schema import load_config
from sparta_hpc.launch import sbatch_script

from .conftest import ROOT

GOLDEN = ROOT / "tests" / "assets" / "golden" / "paper-qwen7b.sbatch"
# 10 members x 1000 duels: 10 shards of 100 duels, one base-model group
TASKS = {"generate": 10, "judge": 10, "gather": 1, "aggregate": 1, "train": 10,
         "evaluate": 60, "rate": 4, "score": 1}  # evaluation: nominal array sizes (they depend on the data)


def render() -> str:
    cfg = load_config(ROOT / "configs" / "paper-qwen7b.yaml")
    return "".join(f"# ==== {stage}: {n} task(s)\n" + sbatch_script(cfg, stage, n, "/RUN/logs")
                   for stage, n in TASKS.items())


def test_paper_preset_sbatch_scripts_match_the_golden_file(monkeypatch):
    monkeypatch.setenv("SPARTA_MODELS", "/models")  # the preset's model paths: $SPARTA_MODELS/...
    monkeypatch.setenv("SPARTA_VLLM_PYTHON", "/venv-vllm/bin/python")  # the vLLM stages' interpreter
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(render())
    assert render() == GOLDEN.read_text(), "regenerate with UPDATE_GOLDEN=1 after reviewing the change"


MIXED = ROOT / "tests" / "assets" / "golden" / "mixed-qwen.sbatch"


def render_mixed() -> str:
    from sparta_hpc.report.overview import first_plan, sbatch_scripts
    from sparta_hpc.rundir.paths import RunPaths

    cfg = load_config(ROOT / "configs" / "mixed-qwen.yaml", ["instructions.source=demo"])
    return sbatch_scripts(cfg, RunPaths("/RUN"), first_plan(cfg))


def test_a_mixed_tribes_sbatch_scripts_give_each_group_and_member_its_resources(monkeypatch):
    monkeypatch.setenv("SPARTA_MODELS", "/models")
    monkeypatch.setenv("SPARTA_TRIBE", "/tribe")
    monkeypatch.setenv("SPARTA_VLLM_PYTHON", "/venv-vllm/bin/python")
    text = render_mixed()
    if os.environ.get("UPDATE_GOLDEN"):
        MIXED.write_text(text)
    assert text == MIXED.read_text(), "regenerate with UPDATE_GOLDEN=1 after reviewing the change"
    # one generate array per base model (7B: 1 GPU, 14B: 2, 72B: 4), one train array per resource class
    headers = [line for line in text.splitlines() if line.startswith("# ---- ")]
    assert sum(h.startswith("# ---- generate") for h in headers) == 3
    assert sum(h.startswith("# ---- train") for h in headers) == 3
    assert "#SBATCH --gpus-per-node=4" in text and "#SBATCH --nodes=2" in text
