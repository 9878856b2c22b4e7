"""Evaluation tasks: loading the data files, splits, prompts, data errors, and `sparta-hpc score`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sparta_hpc.commands.score import main as score_main
from sparta_hpc.eval import TASK_NAMES, EvalDataError, check_task_data, harness, load_task
from sparta_hpc.eval.data import SPECS, hash_split

from .conftest import ROOT, SAMPLES

ASSETS = ROOT / "tests" / "assets" / "eval"

# task -> sample file (NormAd's three files share one format; Alpaca's sample is ours)
SAMPLE_FILES = {
    "gsm8k": SAMPLES / "gsm8k.json",
    "math_easy": SAMPLES / "math_easy.jsonl",
    "math_medium": SAMPLES / "math_medium.jsonl",
    "medqa": SAMPLES / "medqa.json",
    "normad_country": SAMPLES / "normad_country.json",
    "normad_value": SAMPLES / "normad_country.json",
    "normad_rot": SAMPLES / "normad_country.json",
    "kcross": SAMPLES / "knowledge_crosswords.json",
    "truthfulqa": SAMPLES / "truthfulqa.json",
    "com2": SAMPLES / "com2.json",
    "alpaca": ASSETS / "alpaca.jsonl",
}


def test_task_names():
    assert TASK_NAMES == ("gsm8k", "math_easy", "math_medium", "math_hard", "medqa", "normad_country",
                          "normad_value", "normad_rot", "kcross", "truthfulqa", "com2", "alpaca")


@pytest.mark.parametrize("name", sorted(SAMPLE_FILES))
def test_sample_files_load_with_prompts(name):
    path = SAMPLE_FILES[name]
    content = json.loads(path.read_text()) if path.suffix == ".json" else None
    for split in ("dev", "test"):
        check_task_data(name, path, split)
        task = load_task(name, path, split)
        assert task.docs and (task.name, task.path, task.split) == (name, path, split)
        if isinstance(content, dict):
            assert task.docs == content[split]
        prompts = task.prompts()
        assert len(prompts) == len(task.docs)
        assert harness.raw_docs(task.lm_eval_task(), len(task.docs)) == task.docs  # lm-eval holds the same docs
        for doc, messages in zip(task.docs, prompts):
            assert [m["role"] for m in messages] == ["user"]
            text = messages[0]["content"]
            assert text.strip()
            _check_prompt(name, doc, text, content)
    limited = load_task(name, path, "test", limit=2)
    assert limited.docs == load_task(name, path, "test").docs[:2] and len(limited.prompts()) == 2


def _check_prompt(name: str, doc: dict, text: str, content) -> None:
    spec = SPECS[name]
    if spec.kind == "mc":
        assert doc["question"].strip() in text
        for letter, option in doc["choices"].items():
            assert f"\n{letter}: {option.strip()}\n" in text
        assert "letter" in text
        if name == "kcross":
            assert text.startswith(content["icl_prompt"].strip())
    elif spec.kind == "gsm8k":
        assert doc["question"].strip() in text and "step by step" in text
    elif spec.kind == "math":
        assert doc["problem"].strip() in text and "\\boxed{}" in text
    elif name == "com2":
        assert text == doc["prompt"]
    else:
        assert text.startswith(doc["instruction"]) and (doc.get("input") or "") in text


@pytest.mark.parametrize("name", TASK_NAMES)
def test_generation_settings_match_the_yaml(name, tmp_path):
    path = SAMPLE_FILES.get(name)
    if name == "math_hard":
        path = tmp_path / "hard.jsonl"
        path.write_text("".join(json.dumps({"problem": "p", "level": "Level 5", "answer": "1", "id": str(i)}) + "\n"
                                for i in range(10)))
    task = load_task(name, path, "test", limit=1)
    assert task.max_new_tokens == {"mc": 32, "gsm8k": 256, "math": 512, "rated": 256}[SPECS[name].kind]
    assert task.generation_kwargs == {"max_new_tokens": task.max_new_tokens, "do_sample": False, "temperature": 0.0}
    config = task.lm_eval_task().config.generation_kwargs
    assert config["max_gen_toks"] == task.max_new_tokens and config["do_sample"] is False
    assert task.kind == ("rated" if name in ("com2", "alpaca") else "accuracy")


def test_hash_split_is_deterministic_and_about_one_fifth(tmp_path):
    rows = [{"problem": f"p{i}", "level": f"Level {1 + i % 5}", "answer": str(i), "id": str(i)} for i in range(1000)]
    path = tmp_path / "math.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = SPECS["math_medium"]
    assert [hash_split(spec, r) for r in rows] == [hash_split(spec, r) for r in rows]
    by_split = {s: load_task("math_medium", path, s).docs for s in ("dev", "test")}
    assert all(r["level"] == "Level 3" for docs in by_split.values() for r in docs)
    ids = [{r["id"] for r in docs} for docs in by_split.values()]
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == 200
    assert 25 <= len(ids[0]) <= 55  # about 20% of 200
    hard = load_task("math_hard", path, "test").docs
    assert {r["level"] for r in hard} == {"Level 4", "Level 5"}
    no_id = [{"prompt": f"prompt {i}", "gold": "g"} for i in range(50)]
    assert [hash_split(SPECS["com2"], r) for r in no_id] == [hash_split(SPECS["com2"], dict(r)) for r in no_id]


def test_rows_with_matching_datasplit_are_used(tmp_path):
    splits = ["train", "dev", "test", "test"]
    rows = [{"prompt": f"p{i}", "gold": "g", "datasplit": split} for i, split in enumerate(splits)]
    path = tmp_path / "com2.json"
    path.write_text(json.dumps(rows))
    assert [d["prompt"] for d in load_task("com2", path, "test").docs] == ["p2", "p3"]
    assert [d["prompt"] for d in load_task("com2", path, "dev").docs] == ["p1"]
    alpaca = tmp_path / "alpaca.json"  # a JSON list works like JSONL
    alpaca.write_text(json.dumps([json.loads(line) for line in (ASSETS / "alpaca.jsonl").read_text().splitlines()]))
    assert load_task("alpaca", alpaca).docs == load_task("alpaca", ASSETS / "alpaca.jsonl").docs


# ---------------------------------------------------------------- bad data

def _write(tmp_path: Path, name: str, content) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


MC_ROW = {"question": "q?", "choices": {"A": "yes", "B": "no"}, "answer": "A", "id": "1"}


@pytest.mark.parametrize("task, content, message", [
    ("medqa", {"dataset": "x", "dev": [MC_ROW], "test": [{**MC_ROW, "choices": None}]},
     r"test row 0 has no field 'choices'"),
    ("medqa", {"dataset": "x", "test": [MC_ROW, {k: v for k, v in MC_ROW.items() if k != "answer"}]},
     r"test row 1 has no field 'answer'"),
    ("medqa", {"dataset": "x", "test": [{**MC_ROW, "answer": "C"}]}, r"field 'answer' is 'C', not one of .*A, B"),
    ("medqa", {"dataset": "x", "test": [{**MC_ROW, "choices": ["yes", "no"]}]}, r"field 'choices' must be an object"),
    ("gsm8k", [{"problem": "p", "level": "Level 1", "answer": "1"}], r"row \d+ has no field 'question'"),
    ("gsm8k", {"data": []}, r"without 'dev' or 'test' keys \(keys: data\)"),
    ("gsm8k", {"dataset": "x", "dev": []}, r"no 'test' split in the file \(keys: dataset, dev\)"),
    ("kcross", {"dataset": "x", "test": [MC_ROW]}, r"no top-level field 'icl_prompt'"),
    ("math_easy", [{"problem": "p", "level": "Level 1", "solution": "no box", "id": str(i)} for i in range(9)],
     r"has no field 'answer' and no \\boxed"),
    ("math_hard", [{"problem": "p", "level": "Level 1", "answer": "1", "id": str(i)} for i in range(9)],
     r"no rows of level 4/5 in the 'test' split"),
    ("com2", "not json at all\n", r"line 1 is neither part of a JSON document nor a JSON line"),
    ("com2", "3", r"a JSON int, not rows"),
])
def test_bad_files_name_task_file_and_field(tmp_path, task, content, message):
    path = _write(tmp_path, f"{task}.json", content)
    with pytest.raises(EvalDataError, match=message) as err:
        check_task_data(task, path, "test")
    assert f"task '{task}'" in str(err.value) and str(path) in str(err.value)
    with pytest.raises(EvalDataError, match=message):
        load_task(task, path)


def test_a_file_in_another_format(tmp_path):
    with pytest.raises(EvalDataError, match=r"medqa.*gsm8k\.json, dev row 0 has no field 'choices'"):
        load_task("medqa", SAMPLES / "gsm8k.json", "dev")
    with pytest.raises(EvalDataError, match=r"'gsm8k'.*math_easy\.jsonl, line 1 has no field 'question'"):
        load_task("gsm8k", SAMPLES / "math_easy.jsonl")
    with pytest.raises(EvalDataError, match=r"'com2'.*truthfulqa\.json, test row 0 has no field 'prompt'"):
        load_task("com2", SAMPLES / "truthfulqa.json")
    with pytest.raises(EvalDataError, match=r"no rows of level 4/5"):
        load_task("math_hard", SAMPLES / "math_easy.jsonl")


def test_unknown_task():
    with pytest.raises(EvalDataError, match=r"unknown evaluation task 'gsm9k' \(for x\.json\).*gsm8k"):
        load_task("gsm9k", "x.json")
    with pytest.raises(EvalDataError, match="unknown evaluation task 'math'"):
        check_task_data("math", "x.json")


def test_missing_file_bad_split_bad_limit(tmp_path):
    with pytest.raises(EvalDataError, match=r"task 'gsm8k': .*nowhere\.json: the data file does not exist"):
        load_task("gsm8k", tmp_path / "nowhere.json")
    path = _write(tmp_path, "g.json", {"dataset": "x", "test": [{"question": "q", "answer": "1"}]})
    with pytest.raises(EvalDataError, match="unknown split 'train'"):
        load_task("gsm8k", path, "train")
    with pytest.raises(EvalDataError, match="limit must be a positive integer"):
        load_task("gsm8k", path, limit=0)


def test_wrong_number_of_responses(tmp_path):
    path = _write(tmp_path, "g.json", {"dataset": "x", "test": [{"question": "q", "answer": "1"}] * 3})
    task = load_task("gsm8k", path)
    with pytest.raises(ValueError, match="2 responses for 3 docs"):
        task.score(["1", "2"])
    with pytest.raises(ValueError, match="use score"):
        task.score_ratings(["1", "2", "3"])


# ---------------------------------------------------------------- sparta-hpc score

GSM_ROWS = [{"question": "How many?", "answer": "150", "id": 0, "domain": "gsm8k"},
            {"question": "How far?", "answer": "1,000", "id": 1, "domain": "gsm8k"},
            {"question": "How long?", "answer": "7", "id": 2, "domain": "gsm8k"}]


def _predictions(tmp_path: Path, lines: list) -> Path:
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_score_cli(tmp_path, capsys):
    path = _predictions(tmp_path, [
        {"doc": GSM_ROWS[0], "response": "So 150 pennies.\nThe answer is 150."},
        {"doc": GSM_ROWS[1], "response": "#### 1000"},
        "",
        {"doc": GSM_ROWS[2], "response": "It takes 8 days."},
    ])
    assert score_main(["gsm8k", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"task": "gsm8k", "n": 3, "score": pytest.approx(2 / 3), "stderr": pytest.approx(1 / 3),
                   "correct": [1, 1, 0]}
    mc = _predictions(tmp_path, [{"doc": MC_ROW, "response": r} for r in ("(A)", "B: no", "hmm", "Yes.")])
    assert score_main(["normad", str(mc)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["n"], out["correct"], out["score"]) == (4, [1, 0, 0, 1], 0.5)
    math_row = {"problem": "p", "level": "Level 4", "type": "Algebra", "solution": "$\\boxed{\\frac{1}{2}}$",
                "id": "3", "category": "algebra"}
    maths = _predictions(tmp_path, [{"doc": math_row, "response": r} for r in ("\\boxed{0.5}", "\\boxed{2}")])
    assert score_main(["math", str(maths)]) == 0
    assert json.loads(capsys.readouterr().out)["correct"] == [1, 0]


@pytest.mark.parametrize("lines, message", [
    (['{"doc": {}, "response": "x"'], r"line 1: not JSON"),
    ([{"doc": GSM_ROWS[0], "response": "1"}, {"response": "1"}], r"line 2: no field 'doc'"),
    ([{"doc": GSM_ROWS[0]}], r"line 1: no field 'response'"),
    ([{"doc": GSM_ROWS[0], "response": 3}], r"line 1: field 'response' is a int"),
    ([{"doc": GSM_ROWS[0], "response": "1"}, "", {"doc": {"question": "q"}, "response": "1"}],
     r"line 3: doc has no field 'answer'"),
    (["[1, 2]"], r"line 1: a JSON list, not an object"),
    ([], r"no predictions"),
])
def test_score_cli_malformed_lines(tmp_path, capsys, lines, message):
    path = _predictions(tmp_path, lines)
    assert score_main(["gsm8k", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.search(message, captured.err), captured.err


def test_score_cli_as_a_program(tmp_path):
    path = _predictions(tmp_path, [{"doc": MC_ROW, "response": "The answer is A"}])
    run = subprocess.run([sys.executable, "-m", "sparta_hpc.commands.score", "kcross", str(path)],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"task": "kcross", "n": 1, "score": 1.0, "stderr": None, "correct": [1]}
    bad = subprocess.run([sys.executable, "-m", "sparta_hpc.commands.score", "kcross", str(tmp_path / "no.jsonl")],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "no.jsonl: no such file" in bad.stderr and bad.stdout == ""
