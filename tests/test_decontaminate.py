"""Decontamination (sparta_hpc/eval/decontaminate.py): a pool holding wrapped evaluation items and
clean instructions loses exactly the wrapped ones, however they are wrapped, and keeps the clean ones,
including those written in a task's fixed prompt; refuse mode names the file, the counts and ids; the
run records the counts per task."""

import json
import logging

import pytest
import yaml

from sparta_hpc import driver
from sparta_hpc.config.schema import load_config
from sparta_hpc.errors import ConfigError
from sparta_hpc.eval import data
from sparta_hpc.eval.decontaminate import MIN_CONTAINED, NGRAM, decontaminate, words
from sparta_hpc.inputs.clean import MATH_SUFFIX, kcross_prompt, normad_story_eval
from sparta_hpc.inputs.instructions import Instruction
from sparta_hpc.rundir.events import EventLog
from sparta_hpc.rundir.paths import RunPaths

from .conftest import ROOT, SAMPLES

TASKS = {"gsm8k": "gsm8k.json", "medqa": "medqa.json", "kcross": "knowledge_crosswords.json",
         "normad_country": "normad_country.json", "truthfulqa": "truthfulqa.json", "math_easy": "math_easy.jsonl",
         "com2": "com2.json"}


def rows(task: str, split: str = "test") -> list[dict]:
    return data.read_split(data.get_spec(task), SAMPLES / TASKS[task], split).rows


def normad(story: str) -> str:
    """The authors' NormAd instruction (sparta data/culture/*.json)."""
    return f"### Norms\n- be polite\n\nCountry: iran.\nPlease justify: {story}.\n Choose from:'Yes', 'No', 'Neutral'"


def tqa(question: str, answer: str) -> str:
    """The authors' TruthfulQA instruction (sparta data/truthfulqa/data_train.jsonl)."""
    return f"Q: {question}\nA: {answer}\nTrue:\nJustify whether the answer is true?"


def wrapped() -> dict[str, str]:
    """Test items of the samples inside other prompts, one way each task's items reach a pool."""
    math, med, kc, com2 = rows("math_easy"), rows("medqa")[0], rows("kcross")[0], rows("com2")[0]
    assert len(words(math[0]["problem"])) < NGRAM <= len(words(math[2]["problem"]))  # both paths
    assert math[10]["problem"].endswith(" minutes?")
    return {
        "math-long": math[2]["problem"] + MATH_SUFFIX,  # glued, with no space, as the authors' pool does
        "math-short": math[0]["problem"] + MATH_SUFFIX,  # "Compute $\dbinom{14}{11}$.": 4 words, contained
        "math-bare": math[10]["problem"].rstrip("?") + MATH_SUFFIX,  # "...7.8 minutesLet's": the last word kept
        "medqa-options": "Answer the question.\n" + med["question"].replace("Context: ", "").replace("Question: ", "")
                         + "\nOptions: " + " ".join(f"({k}) {v}" for k, v in med["choices"].items()),
        "kcross-options": kc["question"] + "\n" + " | ".join(f"{k}) {v}" for k, v in kc["choices"].items()),
        "tqa-qa": tqa(rows("truthfulqa")[3]["question"], "A polygraph."),
        "tqa-tiny": tqa("Who are you?", "I am an AI."),  # 3 words: the whole question after "Q: " is the item
        "normad-story": normad(normad_story_eval(rows("normad_country")[0]["question"])),
        "gsm8k-cot": rows("gsm8k")[0]["question"] + " Let's think step by step.",
        "com2-wrapped": "Answer in one sentence.\n\n" + com2["prompt"],
    }


def clean() -> dict[str, str]:
    """Instructions that are no test item, several of them in a task's fixed prompt."""
    kcross_template = rows("kcross")[0]["question"].split("\nConstaints:")[0]
    com2_template = rows("com2")[0]["prompt"].split("\nContext:")[0]
    return {
        "haiku": "Write a haiku about autumn leaves.",
        "kcross-template": kcross_template + "\nConstaints: (blank 1, wrote, Les_Miserables); (blank 1, bornIn, "
                           "Besancon).\nOptions:\nPlease select the correct answer from A, B, C, D.\n"
                           "A. blank 1: Victor_Hugo;\nB. blank 1: Emile_Zola;\n",
        "kcross-dev": kcross_prompt(rows("kcross", "dev")[0]),  # the clean KCross pool: dev, the authors' format
        "normad-template": normad("At a dinner in Tehran, Ali waited for the host to start eating before he ate."),
        "com2-template": com2_template + "\nContext: Maria bakes bread\nQuestion: What is the cause of Maria "
                         "baking bread?\nThe answer is:\n",
        "medqa-template": "A 30-year-old woman presents to the clinic with a rash on her arms after gardening. "
                          "Which of the following is the most likely explanation for her rash?",
        "tiny-inside": "Who are you and what do you do? Describe your job in two sentences.",
        "math-template": "What is 2 + 3?" + MATH_SUFFIX,
    }


def config(*overrides: str):
    return load_config(ROOT / "configs" / "tiny.yaml", [f"eval.tasks=[{', '.join(TASKS)}]", f"eval.data_dir={SAMPLES}",
                                                        *overrides])


def pool(texts: dict[str, str]) -> list[Instruction]:
    return [Instruction(ident, text) for ident, text in texts.items()]


def test_a_pool_loses_exactly_the_wrapped_test_items():
    kept, report = decontaminate(config(), pool({**wrapped(), **clean()}))
    assert [it.id for it in kept] == list(clean())
    assert report["removed"] == report["matched"] == len(wrapped())
    found = {task: (c["instructions"], c["examples"]) for task, c in report["tasks"].items()}
    assert found == {"gsm8k": (1, ["gsm8k-cot"]), "medqa": (1, ["medqa-options"]), "kcross": (1, ["kcross-options"]),
                     "normad_country": (1, ["normad-story"]), "truthfulqa": (2, ["tqa-qa", "tqa-tiny"]),
                     "math_easy": (3, ["math-long", "math-short", "math-bare"]), "com2": (1, ["com2-wrapped"])}
    assert report["tasks"]["gsm8k"]["items"] == 25 and report["split"] == "test" and report["ngram"] == 13


def test_a_clean_pool_is_kept_whole_and_off_checks_nothing():
    instructions = pool(clean())
    assert decontaminate(config(), instructions)[0] == instructions
    kept, report = decontaminate(config("instructions.decontaminate=off"), pool({**wrapped(), **clean()}))
    assert len(kept) == len(wrapped()) + len(clean()) and report["tasks"] == {}


def test_only_the_test_split_is_removed():
    """Dev items stay, as data prepare leaves them (KCross's clean pool is its dev split); with eval.split
    dev, the run reports dev, and dev is what is removed."""
    dev = {f"dev-{k}": kcross_prompt(row) for k, row in enumerate(rows("kcross", "dev"))}
    assert len(decontaminate(config(), pool(dev))[0]) == len(dev)
    kept, report = decontaminate(config("eval.split=dev", "eval.test=every"), pool({**dev, "haiku": "Write a haiku."}))
    assert [it.id for it in kept] == ["haiku"] and report["split"] == "dev"


def test_n_is_13_and_a_chance_13_gram_is_the_risk_kept():
    """Any identifying 13-gram of an item marks an instruction: two long texts that share one by chance
    lose the instruction (lm-eval's trade-off at n = 13); 12 shared words do not."""
    question = words(rows("gsm8k")[0]["question"])
    assert NGRAM == 13 and MIN_CONTAINED == 4 and len(question) > 20
    story = "Yesterday I read a long report about farming, and it said: "
    chance, near = story + " ".join(question[5:5 + 13]) + ".", story + " ".join(question[5:5 + 12]) + "."
    kept, _ = decontaminate(config(), pool({"chance": chance, "near": near}))
    assert [it.id for it in kept] == ["near"]


def test_refuse_names_the_file_the_counts_and_ids(tmp_path):
    cfg = config("instructions.decontaminate=refuse", f"instructions.source={tmp_path / 'pool.jsonl'}")
    with pytest.raises(ConfigError) as err:
        decontaminate(cfg, pool({**clean(), **wrapped()}))
    message = str(err.value)
    assert f"{len(wrapped())} of the {len(wrapped()) + len(clean())} instructions of {tmp_path / 'pool.jsonl'}" in message
    assert "truthfulqa 2 instruction(s) (2 of 25 test items; e.g. ids tqa-qa, tqa-tiny)" in message
    assert "math_easy 3 instruction(s) (3 of 20 test items; e.g. ids math-long, math-short, math-bare)" in message
    assert "instructions.decontaminate: remove" in message
    cfg = config("instructions.decontaminate=refuse")
    assert decontaminate(cfg, pool(clean()))[1]["matched"] == 0  # nothing to refuse: the run goes on


def test_a_pool_of_nothing_but_test_items_is_refused_even_when_removing():
    with pytest.raises(ConfigError, match="every one of the 2 instructions .* instructions.decontaminate: off"):
        decontaminate(config(), pool({"a": wrapped()["gsm8k-cot"], "b": wrapped()["tqa-qa"]}))


def write_run(tmp_path, texts: dict[str, str], **instructions) -> str:
    (tmp_path / "pool.jsonl").write_text("".join(json.dumps({"id": k, "instruction": v}) + "\n"
                                                 for k, v in texts.items()))
    (tmp_path / "base").mkdir(exist_ok=True)
    (tmp_path / "base" / "config.json").write_text("{}")
    cfg = {"tribe": {"iterations": 1, "duels_per_iteration": 4,
                     "members": [{"name": n, "model": str(tmp_path / "base")} for n in ("a", "b", "c")]},
           "instructions": {"source": str(tmp_path / "pool.jsonl"), "id_field": "id", **instructions},
           "eval": {"tasks": ["gsm8k", "truthfulqa"], "data_dir": str(SAMPLES)},
           "run": {"dir": str(tmp_path / "run")}, "cluster": {"executor": "debug"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return str(tmp_path / "c.yaml")


def test_the_plan_and_the_events_record_the_counts_per_task(tmp_path):
    texts = {"gsm8k-cot": wrapped()["gsm8k-cot"], "tqa-qa": wrapped()["tqa-qa"], **clean()}
    cfg = load_config(write_run(tmp_path, texts))
    paths = RunPaths(cfg.run.dir)
    driver.run_one_stage(cfg, paths, EventLog(paths.events), "plan", 0)
    plan = json.loads(paths.plan(0).read_text())
    assert {row["id"] for row in plan["instructions"]} <= set(clean())
    record = plan["decontaminated"]
    assert (record["mode"], record["pool_size"], record["removed"]) == ("remove", len(texts), 2)
    assert {t: c["instructions"] for t, c in record["tasks"].items()} == {"gsm8k": 1, "truthfulqa": 1}
    (event,) = [e for e in EventLog(paths.events).read() if e["event"] == "decontaminated"]
    assert event["iteration"] == 0 and event["tasks"]["gsm8k"]["examples"] == ["gsm8k-cot"]


def test_the_dry_run_shows_it_and_refuse_stops_the_run(tmp_path, capsys, caplog):
    texts = {"tqa-qa": wrapped()["tqa-qa"], **clean()}
    assert driver.main(["--config", write_run(tmp_path, texts), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"1 of {len(texts)} instructions removed: truthfulqa 1 instruction(s) (1 of 25 test items; e.g. ids tqa-qa)" in out
    assert driver.main(["--config", write_run(tmp_path, texts, decontaminate="refuse")]) == 2
    assert any("instructions.decontaminate: refuse: 1 of the" in r.getMessage() and "pool.jsonl" in r.getMessage()
               for r in caplog.records)
    assert not (tmp_path / "run").exists()


def test_a_dry_run_before_the_evaluation_data_says_what_it_did_not_check(tmp_path, caplog):
    path = write_run(tmp_path, clean())
    with caplog.at_level(logging.WARNING):
        assert driver.main(["--config", path, "--dry-run", f"eval.data_dir={tmp_path / 'none'}"]) == 0
    assert any("instructions.decontaminate: the pool is not checked against gsm8k: no file at" in r.getMessage()
               for r in caplog.records)
