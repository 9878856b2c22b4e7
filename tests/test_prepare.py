"""`sparta-hpc data prepare` on small git repositories in the sources' layouts.

The repositories are built here from the licensed samples in tests/assets/eval-samples/ (no network,
nothing outside the repository): model_swarm's data/eval/ files as they are, and sparta's data/
training files made from the same items the way the authors' files wrap them, so that the overlaps
of the real sources (docs/data.md) occur here on a small scale: some NormAd test stories in the
training split, the KCross pool being the test split, TruthfulQA questions repeated, GSM8K dev
items in the pool. Their commit and sha256 differ from the real ones, so the tests pass pins.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from sparta_hpc import cli
from sparta_hpc.commands.prepare.run import MANIFEST, Options, prepare
from sparta_hpc.commands.prepare.sources import PINS, git_blob_id, sha256
from sparta_hpc.errors import PrepareError, SourceChanged
from sparta_hpc.commands.prepare.tasks import MATH_SUFFIX, TASK_NAMES, TASKS
from sparta_hpc.eval import data as eval_data
from sparta_hpc.inputs.clean import (
    eval_key,
    kcross_prompt,
    norm,
    normad_story_eval,
    normad_story_train,
    truthfulqa_question_train,
)

from .conftest import ROOT, SAMPLES

NORMAD_TEST_IN_TRAIN = 10  # NormAd test stories put into the authors' train split
TQA_TEST_QUESTIONS = 5  # TruthfulQA test questions, two candidate answers each
MATH_TEST_IN_TRAIN = 4  # MATH easy training problems that the MATH test file given also holds
ALPACA_EVAL_IN_TRAIN = 3  # AlpacaEval instructions in the authors' Alpaca pool
ALPACA_EVAL_ROWS = [json.loads(line) for line in (ROOT / "tests/assets/eval/alpaca.jsonl").read_text().splitlines()]


def _sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def _normad_instruction(story: str) -> str:
    return f"### Norms\n- be polite\n\nCountry: iran.\nPlease justify: {story}.\n Choose from:'Yes', 'No', 'Neutral'"


def _sparta_files() -> dict[str, str]:
    gsm = _sample("gsm8k.json")
    questions = [{"instruction": "Solve this math word problem step by step.", "input": r["question"]}
                 for r in gsm["dev"]] + [{"instruction": "Solve this math word problem step by step.",
                                          "input": "Tom has 3 apples and buys 2 more. How many has he?"}]
    normad = _sample("normad_country.json")
    picked = normad["test"][:NORMAD_TEST_IN_TRAIN] + normad["dev"][:5]
    train = {str(r["id"]): {"instruction": _normad_instruction(_story(r)), "label": "yes"} for r in picked}
    train["90001"] = {"instruction": _normad_instruction("Ali brought a small gift to his host"), "label": "yes"}
    culture = json.dumps({"train": train, "test": {}, "valid": {}})
    kcross = _sample("knowledge_crosswords.json")
    kc_train = {"train": [{"prompt": kcross_prompt(r), "completion": r["answer"]} for r in kcross["test"]]}
    tqa = _sample("truthfulqa.json")
    tqa_rows = [{"question": f"Q: {r['question']}\nA: {text}\nTrue:\nJustify whether the answer is true?"}
                for r in tqa["test"][:TQA_TEST_QUESTIONS] + tqa["dev"][:3] for text in list(r["choices"].values())[:2]]
    return {
        "data/gsm8k/questions.json": json.dumps(questions, indent=1),
        "data/culture/country_dataset.json": culture,
        "data/culture/country_value_dataset.json": culture,
        "data/knowledge_crosswords/train.json": json.dumps(kc_train, indent=4),
        "data/truthfulqa/data_train.jsonl": "".join(json.dumps(r) + "\n" for r in tqa_rows),
        "data/MATH/train_by_difficulty/easy.jsonl": (SAMPLES / "math_easy.jsonl").read_text(),
        "data/MATH/train_by_difficulty/medium.jsonl": (SAMPLES / "math_medium.jsonl").read_text(),
        "data/com2/train.json": (SAMPLES / "com2.json").read_text(),
        # the authors' Alpaca pool (absent from the real mirror): some AlpacaEval instructions among its rows
        "data/alpaca/alpaca_data_processed.json": json.dumps(
            [{"instruction": r["instruction"], "input": r.get("input", ""), "output": "..."}
             for r in ALPACA_EVAL_ROWS[:ALPACA_EVAL_IN_TRAIN]]
            + [{"instruction": f"Name {n} colours.", "input": "", "output": "..."} for n in ("two", "three")]),
    }  # absent, as from the real mirror: MATH hard, rule_of_thumb, medqa


def _alpaca_eval_files() -> dict[str, str]:
    """AlpacaEval's reference outputs file, {dataset, instruction, output, generator} rows: the 10
    project-written instructions of tests/assets/eval/alpaca.jsonl stand for its 805."""
    rows = [{"dataset": "selfinstruct", "instruction": r["instruction"], "input": r.get("input", ""),
             "output": "...", "generator": "gpt4_1106_preview"} for r in ALPACA_EVAL_ROWS]
    return {"results/gpt4_1106_preview/model_outputs.json": json.dumps(rows, indent=2)}


def _story(row: dict) -> str:
    return normad_story_eval(row["question"])


def _model_swarm_files() -> dict[str, str]:
    files = {f"data/eval/{n}": (SAMPLES / n).read_text() for n in
             ("gsm8k.json", "medqa.json", "normad_country.json", "knowledge_crosswords.json", "truthfulqa.json")}
    value = _sample("normad_country.json")  # normad_value.json's layout: a literal backslash-n before 'Value: '
    for split in ("dev", "test"):
        for row in value[split]:
            row["question"] = row["question"].replace("\nCountry: ", "\\nValue: respect for elders, ", 1)
    files["data/eval/normad_value.json"] = json.dumps(value)
    return files


def _git_repo(root: Path, files: dict[str, str]) -> str:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "fixture"], check=True)
    return subprocess.run(git[:3] + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def _pins(files: dict[str, str], commit: str, real: dict) -> dict:
    pins = {p: {"blob": git_blob_id(t.encode()), "sha256": sha256(t.encode())} for p, t in files.items()}
    absent = {p: {"blob": pin["blob"], "sha256": None} for p, pin in real["files"].items() if p not in pins}
    return {"url": real["url"], "commit": commit, "files": {**pins, **absent}}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("sources")
    sparta_files, ms_files = _sparta_files(), _model_swarm_files()
    sparta_commit = _git_repo(root / "sparta", sparta_files)
    ms_commit = _git_repo(root / "model_swarm", ms_files)
    ae_files = _alpaca_eval_files()
    ae_commit = _git_repo(root / "alpaca_eval", ae_files)
    pins = {"sparta": _pins(sparta_files, sparta_commit, PINS["sparta"]),
            "model_swarm": _pins(ms_files, ms_commit, PINS["model_swarm"]),
            "alpaca_eval": _pins(ae_files, ae_commit, PINS["alpaca_eval"])}
    (root / "pins.json").write_text(json.dumps(pins))
    easy = (SAMPLES / "math_easy.jsonl").read_text().splitlines()
    math_test = [json.loads(line) for line in easy[:MATH_TEST_IN_TRAIN]]
    math_test += [{"problem": "What is $2+3$?", "level": "Level 3", "solution": "$\\boxed{5}$"},
                  {"problem": "What is $7 \\cdot 6$?", "level": "Level 5", "solution": "$\\boxed{42}$"}]
    (root / "math_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in math_test))
    return {"root": root, "sparta": str(root / "sparta"), "model_swarm": str(root / "model_swarm"),
            "alpaca_eval": str(root / "alpaca_eval"), "pins": pins,
            "pins_file": root / "pins.json", "math_test": root / "math_test.jsonl", "sparta_files": sparta_files}


def _options(sources: dict, out: Path, **kw) -> Options:
    kw.setdefault("eval_files", {t: sources["math_test"] for t in ("math_easy", "math_medium", "math_hard")})
    return Options(out=out, sparta=sources["sparta"], model_swarm=sources["model_swarm"],
                   alpaca_eval=sources["alpaca_eval"], pins=sources["pins"], **kw)


def _pool(out: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (out / task / "train.jsonl").read_text().splitlines()]


def _train_key(task: str, row: dict) -> str:
    text = row["instruction"]
    if task.startswith("normad"):
        return norm(normad_story_train(text))
    if task == "truthfulqa":
        return norm(truthfulqa_question_train(text))
    return norm(text.removesuffix(MATH_SUFFIX)) if task.startswith("math_") else norm(text)


def test_layout_schemas_and_no_test_item_in_any_pool(sources, tmp_path):
    out = tmp_path / "data"
    manifest = prepare(_options(sources, out))
    tasks = manifest["tasks"]
    assert set(tasks) == set(TASK_NAMES)
    complete = {t for t, e in tasks.items() if e["status"] == "complete"}
    assert complete == {"gsm8k", "normad_country", "normad_value", "kcross", "truthfulqa", "math_easy", "math_medium",
                        "alpaca"}
    for task in complete:
        rows = _pool(out, task)
        assert rows and all(set(r) <= {"id", "instruction", "reference"} and r["instruction"] for r in rows)
        assert len({r["id"] for r in rows}) == len(rows), task
        spec = eval_data.get_spec(task)
        found = eval_data.read_splits(spec, out / "eval" / TASKS[task].eval_name)  # loads as eval reads it
        test_keys = {eval_key(task, r) for r in found["test"].rows} if "test" in found else set()
        if task.startswith("math_") or task == "alpaca":  # a test set without splits: every row is a test item
            test_keys |= {eval_key(task, r) for split in found.values() for r in split.rows}
        assert not test_keys & {_train_key(task, r) for r in rows}, task
        for rel, record in tasks[task]["files"].items():
            assert sha256((out / rel).read_bytes()) == record["sha256"]
            commits = [sources["pins"][repo]["commit"] for repo in ("sparta", "model_swarm", "alpaca_eval")]
            assert record["source"].get("commit") in commits or rel.startswith("eval/math")
    # the MATH levels come from one test file: levels 1-2, 3, 4-5
    assert sum(tasks["math_medium"]["files"]["eval/math_medium.jsonl"]["rows"].values()) == 1
    # the missing sources are named with what to do, and their tasks are partial
    missing = {t: [m["file"] for m in e["missing"]] for t, e in tasks.items() if e["missing"]}
    assert missing == {"medqa": ["medqa/train.jsonl"], "math_hard": ["math_hard/train.jsonl"],
                       "normad_rot": ["eval/normad_rot.json", "normad_rot/train.jsonl"], "com2": ["eval/com2.json"]}
    assert "data/medqa/US_train_processed.json" in tasks["medqa"]["missing"][0]["why"]
    assert "--eval-file com2=PATH" in tasks["com2"]["missing"][0]["why"]
    assert (out / "eval" / "medqa.json").is_file() and not (out / "medqa").exists()
    assert (out / "com2" / "train.jsonl").is_file() and not (out / "eval" / "com2.json").exists()
    assert tasks["com2"]["overlap"]["checked"] is False
    assert not list(out.glob(".tmp-*"))
    assert json.loads((out / MANIFEST).read_text()) == manifest


def test_overlaps_removed_and_counted(sources, tmp_path):
    out = tmp_path / "data"
    tasks = prepare(_options(sources, out, tasks=("normad_country", "normad_value", "kcross", "truthfulqa",
                                                  "gsm8k", "math_easy")))["tasks"]
    country = tasks["normad_country"]["overlap"]
    assert (country["source_rows"], country["removed_rows"], country["rows"]) == (16, NORMAD_TEST_IN_TRAIN, 6)
    assert country["test_items_in_pool"] == 0 and country["dev_items_in_pool"] == 5
    assert tasks["normad_value"]["overlap"]["removed_rows"] == NORMAD_TEST_IN_TRAIN
    # KCross: the authors' pool is the whole test split; the clean pool is model_swarm's dev split
    kc = tasks["kcross"]
    assert kc["authors_pool"]["test_items_in_source"] == 25 == kc["authors_pool"]["source_rows"]
    assert kc["overlap"]["rows"] == 15 and kc["overlap"]["dev_items_in_pool"] == 15
    assert kc["files"]["kcross/train.jsonl"]["source"]["path"] == "data/eval/knowledge_crosswords.json"
    assert "dev split" in kc["pool"]
    tqa = tasks["truthfulqa"]["overlap"]
    assert (tqa["removed_rows"], tqa["test_items_in_source"], tqa["rows"]) == (2 * TQA_TEST_QUESTIONS, 5, 6)
    gsm = tasks["gsm8k"]["overlap"]
    assert (gsm["removed_rows"], gsm["dev_items_in_pool"], gsm["rows"]) == (0, 15, 16)
    assert tasks["math_easy"]["overlap"]["removed_rows"] == MATH_TEST_IN_TRAIN


def test_alpaca_is_evaluated_on_alpaca_evals_instructions_and_its_pool_is_clean(sources, tmp_path):
    out = tmp_path / "data"
    entry = prepare(_options(sources, out, tasks=("alpaca",)))["tasks"]["alpaca"]
    assert entry["status"] == "complete"
    record = entry["files"]["eval/alpaca.json"]
    assert record["source"]["path"] == "results/gpt4_1106_preview/model_outputs.json"
    assert record["source"]["commit"] == sources["pins"]["alpaca_eval"]["commit"]
    rows = json.loads((out / "eval" / "alpaca.json").read_text())
    assert [r["instruction"] for r in rows] == [r["instruction"] for r in ALPACA_EVAL_ROWS]
    assert all(set(r) == {"instruction", "input", "dataset"} for r in rows)
    assert sum(record["rows"].values()) == len(ALPACA_EVAL_ROWS)  # split 20/80 by hash as eval reads it
    ov = entry["overlap"]  # every AlpacaEval instruction counts as a test item, dev included
    assert (ov["source_rows"], ov["removed_rows"], ov["rows"]) == (ALPACA_EVAL_IN_TRAIN + 2, ALPACA_EVAL_IN_TRAIN, 2)
    assert [r["instruction"] for r in _pool(out, "alpaca")] == ["Name two colours.", "Name three colours."]
    # a user's file replaces AlpacaEval's, and says so
    own = tmp_path / "own.jsonl"
    own.write_text(json.dumps({"instruction": "Write a haiku about rain."}) + "\n")
    entry = prepare(_options(sources, tmp_path / "own", tasks=("alpaca",), eval_files={"alpaca": own}))["tasks"]
    assert entry["alpaca"]["files"]["eval/alpaca.json"]["source"]["path"] == str(own)
    assert any("replaces results/gpt4_1106_preview/model_outputs.json" in n for n in entry["alpaca"]["notes"])


def test_authors_pools_are_kept_and_their_test_items_counted(sources, tmp_path):
    out = tmp_path / "data"
    tasks = prepare(_options(sources, out, tasks=("kcross", "normad_country"), authors_pools=True))["tasks"]
    kc = _pool(out, "kcross")
    authors = json.loads(sources["sparta_files"]["data/knowledge_crosswords/train.json"])["train"]
    assert [r["instruction"] for r in kc] == [r["prompt"] for r in authors]
    assert tasks["kcross"]["mode"] == "authors" and tasks["kcross"]["overlap"]["test_items_in_pool"] == 25
    assert tasks["normad_country"]["overlap"]["rows"] == 16
    assert tasks["normad_country"]["overlap"]["source_rows_that_are_test_items"] == NORMAD_TEST_IN_TRAIN


def test_changed_source_refused_naming_the_file_and_nothing_half_written(sources, tmp_path):
    folder = tmp_path / "sparta-copy"  # a plain folder (no git), as copied to an offline cluster
    shutil.copytree(sources["sparta"], folder, ignore=shutil.ignore_patterns(".git"))
    path = folder / "data/truthfulqa/data_train.jsonl"
    path.write_text(path.read_text() + json.dumps({"question": "Q: new?\nA: yes\nTrue:\n"}) + "\n")
    out = tmp_path / "data"
    opts = _options(sources, out, tasks=("gsm8k", "truthfulqa"))
    opts.sparta = str(folder)
    with pytest.raises(SourceChanged, match="data/truthfulqa/data_train.jsonl.*sha256"):
        prepare(opts)
    # gsm8k, finished before, is kept and recorded; truthfulqa's eval file, already read, is not left behind
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["tasks"]) == {"gsm8k"} and (out / "gsm8k" / "train.jsonl").is_file()
    assert not (out / "truthfulqa").exists() and not (out / "eval" / "truthfulqa.json").exists()
    assert not list(out.glob(".tmp-*"))


def test_missing_source_named_with_what_to_do(sources, tmp_path, caplog):
    folder = tmp_path / "ms-copy"
    shutil.copytree(sources["model_swarm"], folder, ignore=shutil.ignore_patterns(".git"))
    (folder / "data/eval/gsm8k.json").unlink()
    out = tmp_path / "data"
    opts = _options(sources, out, tasks=("gsm8k",))
    opts.model_swarm = str(folder)
    with caplog.at_level(logging.ERROR, logger="sparta_hpc.commands.prepare"):
        entry = prepare(opts)["tasks"]["gsm8k"]
    assert entry["status"] == "partial" and entry["missing"][0]["file"] == "eval/gsm8k.json"
    assert "data/eval/gsm8k.json" in caplog.text and "copy it there" in caplog.text
    assert entry["overlap"]["checked"] is False  # the pool is written but could not be checked: said loudly
    assert not list(out.glob(".tmp-*")) and not (out / "eval").exists()
    opts.model_swarm = str(tmp_path / "nowhere")
    with pytest.raises(PrepareError, match="does not exist; give a checkout"):
        prepare(opts)


def test_rerun_skips_what_is_prepared_and_verified(sources, tmp_path, caplog):
    out = tmp_path / "data"
    opts = _options(sources, out, tasks=("gsm8k", "normad_country"))
    first = prepare(opts)
    stamp = (out / "gsm8k" / "train.jsonl").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="sparta_hpc.commands.prepare"):
        assert prepare(opts) == first
    assert caplog.text.count("already prepared and verified, skipped") == 2
    assert (out / "gsm8k" / "train.jsonl").stat().st_mtime_ns == stamp
    (out / "eval" / "normad_country.json").write_text("{}")  # damaged: prepared again
    (out / ".tmp-gsm8k-leftover").mkdir()  # an interrupted run's scratch folder: removed
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sparta_hpc.commands.prepare"):
        assert prepare(opts)["tasks"] == first["tasks"]
    assert caplog.text.count("skipped") == 1 and not list(out.glob(".tmp-*"))
    opts.authors_pools = True  # other inputs: built again
    assert prepare(opts)["tasks"]["gsm8k"]["mode"] == "authors"


def test_the_training_file_is_never_the_evaluation_file(sources, tmp_path):
    same = tmp_path / "com2.json"
    same.write_text(sources["sparta_files"]["data/com2/train.json"])
    with pytest.raises(PrepareError, match="never evaluate on the training file"):
        prepare(_options(sources, tmp_path / "data", tasks=("com2",), eval_files={"com2": same}))
    assert not (tmp_path / "data" / "com2").exists() and not (tmp_path / "data" / "eval").exists()


def test_url_is_cloned_at_the_pinned_commit(sources, tmp_path):
    opts = _options(sources, tmp_path / "data", tasks=("gsm8k",), cache=tmp_path / "cache")
    opts.sparta = Path(sources["sparta"]).as_uri()
    assert prepare(opts)["tasks"]["gsm8k"]["status"] == "complete"
    assert (tmp_path / "cache" / "sparta.git").is_dir()


def test_cli_end_to_end(sources, tmp_path):
    out = tmp_path / "data"
    tulu = tmp_path / "tulu"
    tulu.mkdir()
    rows = [{"dataset": "flan_v2", "id": f"f{i}", "messages": [{"role": "user", "content": "hi"},
                                                               {"role": "assistant", "content": "hello"}]}
            for i in range(3)]
    (tulu / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = ["data", "prepare", "--out", str(out), "--sparta-repo", sources["sparta"],
            "--model-swarm-repo", sources["model_swarm"], "--pins", str(sources["pins_file"])]
    assert cli.main(base + ["--tasks", "gsm8k,kcross,math_easy", "--math-test", str(sources["math_test"]),
                            "--tulu", str(tulu)]) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["tulu"]["files"]["tulu-v2-sft-mixture.jsonl"]["rows"] == 3
    assert (out / "eval" / "math_easy.jsonl").is_file()
    assert manifest["sources"]["sparta"]["commit"] == sources["pins"]["sparta"]["commit"]
    assert cli.main(base + ["--tasks", "medqa"]) == 1  # its training file is missing
    assert cli.main(base + ["--tasks", "nosuch"]) == 2
