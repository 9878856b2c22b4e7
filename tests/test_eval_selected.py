"""eval.test: selected on the scripted model: the same small run evaluated with test at every point and
with test only where dev selects gives the same table, from fewer test items; a rerun computes nothing."""

import json

import pytest

from sparta_hpc.eval import table
from sparta_hpc.rundir.files import read_json
from sparta_hpc.rundir.paths import RunPaths

from .scripted_model import scripted_models
from .test_pipeline_fast import drive, events, write_config

SMALL = ["tribe.duels_per_iteration=4", "judge.rounds=1"]


def answered(paths: RunPaths, split: str) -> int:
    """Member x item answers of `split` the evaluate shards hold, over every point."""
    n = 0
    for point in paths.evaluated_points():
        plan = read_json(paths.eval_plan(point))
        for g, k in plan["evaluate_tasks"]:
            shard = plan["evaluate_shards"][k]
            held = read_json(paths.eval_shard(point, "evaluate", shard["name"], g))["responses"]
            n += sum(len(answers) for (i, _, _), seg in zip(shard["segments"], held)
                     if plan["items"][i]["split"] == split for answers in seg.values())
    return n


def headline_section(paths: RunPaths) -> str:
    return table.render(paths).split("\n\nEvery member")[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("selected")
    config = write_config(folder)
    out = {}
    with scripted_models():
        for mode in ("every", "selected"):
            paths = RunPaths(folder / mode)
            assert drive(config, paths.root, *SMALL, f"eval.test={mode}") == 0
            out[mode] = paths
    return config, out


def test_the_table_is_the_same_with_test_only_where_dev_selects(runs):
    _, r = runs
    every, selected = table.load(r["every"]), table.load(r["selected"])
    assert table.headline(selected) == table.headline(every)
    assert headline_section(r["selected"]) == headline_section(r["every"])
    assert all(row["best_init"][2] and row["sparta"][2] for row in table.headline(selected))  # test figures


def test_selected_answers_dev_everywhere_and_test_twice_per_task(runs):
    _, r = runs
    points, members, tasks, limit = 3, 5, 3, 3  # initial, after iterations 0 and 1; eval.limit 3
    assert answered(r["every"], "dev") == answered(r["selected"], "dev") == points * members * tasks * limit
    assert answered(r["every"], "test") == points * members * tasks * limit
    assert answered(r["selected"], "test") == tasks * 2 * limit  # BEST INIT and the selected model, per task
    log = [e for e in events(r["selected"]) if e["event"] == "selected_tests"]
    assert log and all(sum(len(t) for t in per.values()) for per in log[-1]["points"].values())


def test_the_test_step_reuses_the_dev_shards_and_a_rerun_computes_nothing(runs):
    config, r = runs
    paths = r["selected"]
    submitted = [e for e in events(paths) if e["event"] == "task_submit" and e["stage"] == "evaluate"]
    # every evaluate shard computed once: the test step added shards, it did not redo the dev ones
    plans = [read_json(paths.eval_plan(p)) for p in paths.evaluated_points()]
    assert len(submitted) == sum(len(plan["evaluate_tasks"]) for plan in plans)
    before = len(events(paths))
    with scripted_models():
        assert drive(config, paths.root, *SMALL, "eval.test=selected") == 0
    again = events(paths)[before:]
    assert not [e for e in again if e["event"] == "task_submit"]


def test_cost_counts_the_same_test_items_as_the_run(runs):
    from sparta_hpc.config.schema import load_config
    from sparta_hpc.report.cost import run_cost

    config, r = runs
    for mode in ("every", "selected"):
        cfg = load_config(config, [*SMALL, f"eval.test={mode}", "eval.tasks=[gsm8k,kcross]"])
        items = run_cost(cfg)["eval"]["items"]
        assert items["test"] == (2 * 2 * 3 if mode == "selected" else 3 * 5 * 2 * 3)
        assert json.dumps(items)
