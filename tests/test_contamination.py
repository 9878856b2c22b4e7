"""The line under every table: how many of a run's test items were among its duel instructions,
matched on what identifies an item (the authors' wrappers included), so that a run on the authors'
pools (`data prepare --authors-pools`) says what it is."""

import json

from sparta_hpc.config.schema import config_to_yaml, load_config
from sparta_hpc.eval.contamination import contamination_line, leaked_test_items
from sparta_hpc.rundir.paths import RunPaths

from .conftest import ROOT, SAMPLES


def make_run(tmp_path, texts: list[str]) -> tuple:
    cfg = load_config(ROOT / "configs" / "tiny.yaml", [f"run.dir={tmp_path / 'run'}", "eval.tasks=[gsm8k, truthfulqa]",
                                                      f"eval.data_dir={SAMPLES}", "tribe.iterations=2"])
    paths = RunPaths(cfg.run.dir)
    paths.config.parent.mkdir(parents=True)
    paths.config.write_text(config_to_yaml(cfg))
    paths.plan(0).parent.mkdir(parents=True)
    paths.plan(0).write_text(json.dumps({"instructions": [{"text": t} for t in texts]}))
    return cfg, paths


def test_test_items_among_the_duels_are_counted_through_the_authors_wrappers(tmp_path):
    gsm = json.loads((SAMPLES / "gsm8k.json").read_text())["test"]
    tqa = json.loads((SAMPLES / "truthfulqa.json").read_text())["test"]
    texts = [gsm[0]["question"], "  " + gsm[1]["question"].upper() + " ",  # case and spaces do not hide it
             f"Q: {tqa[0]['question']}\nA: no\nTrue:\nJustify whether the answer is true?",  # the authors' wrapper
             "What is the capital of France?"]
    cfg, paths = make_run(tmp_path, texts)
    assert leaked_test_items(cfg, paths) == {"gsm8k": (2, len(gsm)), "truthfulqa": (1, len(tqa))}
    assert contamination_line(cfg, paths) == (f"test items among the duel instructions of run: gsm8k 2 of {len(gsm)}, "
                                              f"truthfulqa 1 of {len(tqa)}")


def test_a_clean_run_says_none(tmp_path):
    cfg, paths = make_run(tmp_path, ["What is the capital of France?", "Name a primary color."])
    assert leaked_test_items(cfg, paths) == {"gsm8k": (0, 25), "truthfulqa": (0, 25)}
