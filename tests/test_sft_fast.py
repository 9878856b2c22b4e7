"""The sft stage (the initial tribe) in seconds: the real driver, launcher, stage and data code in
this process (the `debug` executor), with tests/scripted_model.py's stand-in for TRL's SFT.

One run serves most assertions: 4 members on 2 base models, their slices of a small Tulu-like
file (one by name, one by a prefix taking two science.* sources, one continuing an adapter
from the config, one with a system prompt), sft.max_examples=3, then an initial evaluation
and one SPARTA iteration. Bad SFT data and slices are refused before any job.
"""

import json
from pathlib import Path

import pytest
import yaml

from sparta_hpc import cli, driver
from sparta_hpc.config.schema import load_config
from sparta_hpc.errors import ConfigError
from sparta_hpc.inputs.sft_data import check_sft, demo_sft_rows, member_examples
from sparta_hpc.rundir.files import read_json
from sparta_hpc.rundir.paths import EVAL_STAGES, INITIAL, STAGES, RunPaths
from sparta_hpc.stages.common import member_adapter

from .conftest import ROOT, SAMPLES
from .scripted_model import adapter_rounds, scripted_models

MEMBERS = ["flan_v2", "sci", "oasst1", "coder"]


def chat(user: str, answer: str | None = "Sure.") -> list[dict]:
    return [{"role": "user", "content": user}] + ([{"role": "assistant", "content": answer}] if answer else [])


def write_data(path: Path) -> Path:
    rows = [{"dataset": "flan_v2", "id": f"f{i}", "messages": chat(f"Flan question {i}?")} for i in range(5)]
    rows += [{"dataset": "science.qasper", "id": "s0", "messages": chat("What is a cell?")},
             {"dataset": "science.scifact", "id": "s1", "messages": [{"role": "system", "content": "Be exact."}]
              + chat("Is water wet?", "Yes.")},
             {"dataset": "sciencefiction", "id": "x0", "messages": chat("Not science.")},  # no "science." prefix
             {"dataset": "oasst1", "id": "o0", "messages": chat("Hi", "Hello!") + chat("And then?", "Then this.")},
             {"dataset": "oasst1", "id": "o1", "messages": chat("No answer here", None)},  # skipped
             {"dataset": "code_alpaca", "id": "c0", "messages": chat("Write a loop.", "for i in x: pass")}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_config(folder: Path, **sft) -> Path:
    for name in ("base-a", "base-b", "adapter-oasst1"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    for name in ("base-a", "base-b"):
        (folder / name / "config.json").write_text("{}")
    (folder / "adapter-oasst1" / "adapter_config.json").write_text('{"r": 8}')
    members = [{"name": n, "model": str(folder / ("base-a" if i % 2 == 0 else "base-b"))} for i, n in enumerate(MEMBERS)]
    members[1]["sft_source"], members[3]["sft_source"] = "science", "code_alpaca"
    members[1]["system_prompt"] = "You are a scientist."
    members[2]["adapter"] = str(folder / "adapter-oasst1")
    config = {"tribe": {"iterations": 1, "duels_per_iteration": 6, "members": members},
              "sft": {"data": str(write_data(folder / "sft.jsonl")), "max_examples": 3, **sft},
              "generate": {"duels_per_shard": 3}, "judge": {"duels_per_shard": 3, "answer_prefix": '{"score": '},
              "eval": {"tasks": ["gsm8k"], "data_dir": str(SAMPLES), "limit": 2, "split": "test", "every": 0},
              "cluster": {"executor": "debug", "max_retries": 0}}
    path = folder / "sft.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def drive(config: Path, run_dir: Path, *extra: str) -> int:
    return driver.main(["--config", str(config), f"run.dir={run_dir}", *extra])


def events(paths: RunPaths) -> list[dict]:
    return [json.loads(line) for line in paths.events.read_text().splitlines()]


def submits(log: list[dict]) -> list[tuple[str, int]]:
    return [(e["stage"], e["task"]) for e in log if e["event"] == "task_submit"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sft")
    config = write_config(folder)
    paths = RunPaths(folder / "run")
    with scripted_models() as opened:
        assert drive(config, paths.root) == 0
    return config, paths, opened


def test_sft_runs_first_one_task_per_member_then_evaluation_and_iteration_0(run):
    _, paths, _ = run
    log = events(paths)
    done = [(e["iteration"], e["stage"]) for e in log if e["event"] == "stage_done"]
    evaluation = [s for s in EVAL_STAGES if s != "rate"]  # nothing to rate: gsm8k only
    assert done == [(INITIAL, "sft")] + [(INITIAL, s) for s in evaluation] + [(0, s) for s in STAGES] \
        + [(0, s) for s in evaluation]
    assert [t for s, t in submits(log) if s == "sft"] == list(range(len(MEMBERS)))
    assert paths.is_done(INITIAL, "sft") and paths.marker(INITIAL, "sft") == paths.root / "sft" / "done" / "sft"
    for m in MEMBERS:
        summary = read_json(paths.marker(INITIAL, "sft", m))
        assert summary["steps"] == 1 and summary["world_size"] == 1 and "seconds" in summary
        assert (paths.sft_adapter(m) / "adapter_config.json").exists()


def test_each_member_trains_on_its_own_slice(run):
    config, paths, _ = run
    got = {m: read_json(paths.sft_adapter(m) / "scripted.json") for m in MEMBERS}
    assert {m: (g["sft"], g["examples"]) for m, g in got.items()} == {
        "flan_v2": ("flan_v2", 3), "sci": ("science", 2), "oasst1": ("oasst1", 1), "coder": ("code_alpaca", 1)}
    assert read_json(paths.marker(INITIAL, "sft", "flan_v2"))["slice_rows"] == 5  # 3 of 5 drawn (max_examples)
    assert got["oasst1"]["started_from"] == str(paths.root.parent / "adapter-oasst1")  # continues its adapter
    cfg = load_config(config, [f"run.dir={paths.root}"])
    examples, _ = member_examples(cfg, 1, seed=0)
    # the member's system prompt where a row has none; a row's own system message is kept
    assert sorted(e["prompt"][0]["content"] for e in examples) == ["Be exact.", "You are a scientist."]
    multi, _ = member_examples(cfg, 2, seed=0)
    assert [m["content"] for m in multi[0]["prompt"]] == ["Hi", "Hello!", "And then?"]
    assert multi[0]["completion"] == [{"role": "assistant", "content": "Then this."}]
    assert member_examples(cfg, 0, seed=1)[0] == member_examples(cfg, 0, seed=1)[0]  # the same on every rank


def test_iteration_0_and_the_initial_evaluation_serve_the_sft_adapters(run):
    config, paths, opened = run
    experts = {m: str(paths.sft_adapter(m)) for m in MEMBERS}
    stages = [slot.split("-")[0] for slot, _, _ in opened]
    last_judge = len(stages) - 1 - stages[::-1].index("judge")
    assert stages[0] == "evaluate" and "generate" in stages  # the initial evaluation, then iteration 0
    for slot, _, adapters in opened[:last_judge + 1]:
        assert adapters == {m: experts[m] for m in adapters}, slot
    for slot, _, adapters in opened[last_judge + 1:]:  # the evaluation after iteration 0's training
        assert adapters == {m: str(paths.adapter(0, m)) for m in adapters}, slot
    cfg = load_config(config, [f"run.dir={paths.root}"])
    assert [member_adapter(cfg, paths, 0, i) for i in range(4)] == list(experts.values())
    for m in MEMBERS:  # DPO continued each expert
        assert read_json(paths.adapter(0, m) / "scripted.json")["started_from"] == experts[m]
    assert adapter_rounds(experts["flan_v2"]) == 0


def test_a_rerun_submits_nothing_and_a_lost_member_alone_is_redone(run, tmp_path):
    import shutil

    config, original, _ = run
    paths = RunPaths(tmp_path / "run")
    shutil.copytree(original.root, paths.root)
    before = len(events(paths))
    with scripted_models() as opened:
        assert drive(config, paths.root) == 0
        assert not submits(events(paths)[before:]) and not opened
        paths.marker(INITIAL, "sft", "sci").unlink()
        paths.marker(INITIAL, "sft").unlink()
        assert cli.main(["init-tribe", "--config", str(config), f"run.dir={paths.root}"]) == 0
    assert submits(events(paths)[before:]) == [("sft", 1)]


def test_init_tribe_stops_after_sft_and_the_same_config_goes_on(run, tmp_path, capsys):
    config, _, _ = run
    paths = RunPaths(tmp_path / "run")
    with scripted_models():
        assert cli.main(["init-tribe", "--config", str(config), f"run.dir={paths.root}"]) == 0
        printed = capsys.readouterr().out
        assert {s for s, _ in submits(events(paths))} == {"sft"} and not paths.plan(0).exists()
        assert events(paths)[-1]["event"] == "driver_stopped" and events(paths)[-1]["stage"] == "sft"
        for m in MEMBERS:  # the table names every member's adapter
            assert str(paths.sft_adapter(m)) in printed
        assert "2.000 -> 1.000" in printed
        first = len(events(paths))
        assert drive(config, paths.root) == 0
    assert "sft" not in {s for s, _ in submits(events(paths)[first:])}
    assert paths.is_done(0, "train")


def test_dry_run_shows_the_sft_stage_with_slice_sizes(run, capsys, tmp_path):
    config, _, _ = run
    capsys.readouterr()
    assert cli.main(["init-tribe", "--config", str(config), "--dry-run", f"run.dir={tmp_path / 'run'}"]) == 0
    out = capsys.readouterr().out
    assert "sft  4 SFT jobs, one per member" in out
    assert "  sci      slice 'science': 2 rows, 2 used, fresh LoRA" in out
    assert "  flan_v2  slice 'flan_v2': 5 rows, 3 used, fresh LoRA" in out
    assert "continues" in out and "adapter-oasst1" in out


@pytest.mark.parametrize("line, message", [
    ("not json", "sft.jsonl:12: not valid JSON"),
    ('{"messages": []}', "sft.jsonl:12: field 'dataset' (sft.source_field) is missing"),
    ('{"dataset": "flan_v2", "conversation": []}', "sft.jsonl:12: field 'messages' (sft.messages_field) is missing"),
    ('{"dataset": "flan_v2", "messages": [{"role": "human", "content": "x"}]}',
     "sft.jsonl:12: message 0 of field 'messages' is not"),
])
def test_bad_sft_rows_are_refused_naming_the_line_and_field(tmp_path, line, message, caplog):
    config = write_config(tmp_path)
    with open(tmp_path / "sft.jsonl", "a") as f:
        f.write(line + "\n")
    assert drive(config, tmp_path / "run") == 2
    assert message in caplog.text and not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, message", [
    ("tribe.members.coder.sft_source=code", "tribe.members.3 ('coder'): its SFT slice 'code' (sft_source, default: "
                                            "the name) is empty"),
    ("sft.data=/nowhere/tulu.jsonl", "sft.data: no file at /nowhere/tulu.jsonl"),
    ("sft.data={tmp}/tulu.csv", "sft.data: {tmp}/tulu.csv has an unknown extension"),
    ("sft.max_examples=0", "sft.max_examples: must be >= 1"),
    ("sft.source_field=source", "field 'source' (sft.source_field) is missing or not a non-empty string; the row's "
                                "fields: ['dataset', 'id', 'messages']"),
    ("sft.warmup_ratio=1.5", "sft.warmup_ratio: must be in [0, 1)"),
])
def test_bad_sft_settings_are_refused_before_any_job(tmp_path, override, message, caplog):
    (tmp_path / "tulu.csv").touch()
    override, message = override.format(tmp=tmp_path), message.format(tmp=tmp_path)
    config = write_config(tmp_path)
    assert drive(config, tmp_path / "run", override) == 2
    assert message in caplog.text, caplog.text
    assert not (tmp_path / "run").exists()


def test_an_empty_slice_names_the_member_and_the_sources_there(tmp_path):
    cfg = load_config(write_config(tmp_path), ["tribe.members.oasst1.sft_source=lima"])
    with pytest.raises(ConfigError) as err:
        check_sft(cfg)
    text = str(err.value)
    assert "tribe.members.2 ('oasst1')" in text and "'lima'" in text
    assert "code_alpaca (1), flan_v2 (5), oasst1 (1), science.qasper (1), science.scifact (1), sciencefiction (1)" in text
    assert "tribe.members.oasst1.sft_source" in text


def test_stop_after_sft_needs_an_sft_stage(tmp_path, caplog):
    config = write_config(tmp_path)
    assert drive(config, tmp_path / "run", "sft.data=null", "--stop-after", "sft") == 2
    assert "this config has no sft stage; set sft.data" in caplog.text


def test_the_demo_sft_set_answers_every_demo_instruction_in_one_style_per_source():
    rows = demo_sft_rows()
    by_source = {}
    for r in rows:
        by_source.setdefault(r["dataset"], []).append(r)
    assert {s: len(v) for s, v in by_source.items()} == {"arithmetic.add": 8, "arithmetic.sub": 8,
                                                         "arithmetic.mul": 8, "units": 12, "open": 16}
    for r in by_source["arithmetic.add"] + by_source["units"]:
        assert r["messages"][1]["content"] and r["messages"][0]["role"] == "user"
    add = by_source["arithmetic.add"][0]["messages"]
    assert add[0]["content"] == "What is 7 + 5? Answer with the number." and add[1]["content"].endswith("is 12.")
    assert by_source["units"][0]["messages"][1]["content"] == "There are 200 centimeters in 2 meters."


def test_presets_tiny_sft_and_the_tulu_tribe(fake_model):
    cfg = load_config(ROOT / "configs/tiny-sft.yaml", [f"tribe.members.{m}.model={fake_model}"
                                                       for m in ("arithmetic", "units", "open", "multiply")])
    sizes = check_sft(cfg)
    assert {m: s["rows"] for m, s in sizes.items()} == {"arithmetic": 24, "units": 12, "open": 16, "multiply": 8}
    tribe = load_config(ROOT / "configs/tribe-tulu-qwen7b.yaml")
    assert [m.sft_source for m in tribe.members] == ["flan_v2", "cot", "oasst1", "lima", "code_alpaca", "sharegpt",
                                                    "wizardlm", "open_orca", "gpt4_alpaca", "science"]
    assert tribe.sft.data.endswith("tulu-v2-sft-mixture.jsonl") and tribe.cluster.sft.gpus_per_node == 4
    paper = load_config(ROOT / "configs/paper-qwen7b.yaml")
    assert sorted(m.name for m in paper.members) == sorted(m.name for m in tribe.members)
    assert all(m.adapter.endswith(f"/sft/{m.name}/adapter") for m in paper.members)


def test_an_initial_evaluation_waits_for_the_sft_stage(run, tmp_path, caplog):
    import shutil

    _, original, _ = run
    paths = RunPaths(tmp_path / "run")
    shutil.copytree(original.root, paths.root)
    paths.marker(INITIAL, "sft", "coder").unlink()  # as after a kill during the sft stage
    paths.marker(INITIAL, "sft").unlink()
    assert cli.main(["eval", str(paths.root), "--initial"]) == 2
    assert "the sft stage (the initial tribe) has not finished" in caplog.text
