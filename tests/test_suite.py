"""`sparta-hpc suite`: 2 tasks x 3 methods (SPARTA, Self-Rewarding, SPIN) on the scripted model.

The data folder is the layout `sparta-hpc data prepare` writes (<task>/train.jsonl, eval/), built
here from made-up duel instructions and the eval samples of tests/assets. Every run's driver runs in
this process (the debug executor: `suite submit` runs a local run's driver here), one after another.
One run (sparta-medqa) is first driven by hand with a judge task that fails and no retries, so its
driver dies mid-iteration: the suite finds it failed, resubmits it, and it resumes where it stopped.
"""

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from sparta_hpc import cli, driver
from sparta_hpc.commands import suite
from sparta_hpc.eval.table import headline, load
from sparta_hpc.rundir.paths import INITIAL, RunPaths

from . import scripted_model
from .conftest import ROOT, SAMPLES
from .scripted_model import scripted_models

TASKS = ["gsm8k", "medqa"]
METHODS = ["sparta", "self_rewarding", "spin"]
RUNS = [f"{m}-{t}" for t in TASKS for m in METHODS]


def write_data(folder: Path) -> Path:
    """DIR/<task>/train.jsonl (duel instructions with references) and DIR/eval/ (the tasks' files)."""
    data = folder / "data"
    for task in TASKS:
        (data / task).mkdir(parents=True)
        rows = [{"id": f"{task}-{i}", "instruction": f"Practice item {i} for {task}: what is {i} + {i + 3}?",
                 "reference": f"{i} + {i + 3} = {2 * i + 3}"} for i in range(8)]
        (data / task / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "eval").mkdir()
    for name in ("gsm8k.json", "medqa.json"):
        shutil.copy(SAMPLES / name, data / "eval" / name)
    return data


def write_suite(folder: Path) -> Path:
    """A base config (3 scripted members, 1 iteration of 4 duels, 2 eval items a split), two baselines
    inheriting it, and the suite over them."""
    model = folder / "base"
    model.mkdir()
    (model / "config.json").write_text("{}")
    base = {"tribe": {"iterations": 1, "duels_per_iteration": 4,
                      "members": [{"name": n, "model": str(model)} for n in ("ada", "bo", "cy")]},
            "generate": {"duels_per_shard": 4}, "judge": {"duels_per_shard": 4},
            "eval": {"limit": 2, "items_per_shard": 2},
            "cluster": {"executor": "debug", "max_retries": 1}}
    (folder / "base.yaml").write_text(yaml.safe_dump(base))
    (folder / "self.yaml").write_text("inherit: base.yaml\nmethod: self_rewarding\nbaseline: {samples: 2}\n")
    (folder / "spin.yaml").write_text("inherit: base.yaml\nmethod: spin\ninstructions: {with_reference_only: true}\n")
    spec = {"dir": "runs", "data": str(write_data(folder)), "tasks": TASKS,
            "methods": {"sparta": "base.yaml", "self_rewarding": "self.yaml", "spin": {"config": "spin.yaml"}}}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def lines_of(text: str) -> dict[str, str]:
    """{run name: the rest of its line} of a status or submit output."""
    return {line.split()[0]: line for line in text.splitlines() if line.split() and line.split()[0] in RUNS}


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """The suite before anything ran, after a run failed, after one submit and after a second one."""
    folder = tmp_path_factory.mktemp("suite")
    path = write_suite(folder)
    seen = {}

    def call(*argv) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main(["suite", *argv])
        return code, out.getvalue()

    seen["plan"] = call("plan", str(path))
    seen["status_before"] = call("status", str(path))
    # sparta-medqa driven by hand first: its judge task fails and is not retried, so its driver stops
    failing = next(r for r in suite.expand(suite.load_suite(path)) if r.name == "sparta-medqa")
    scripted_model.FAIL_ONCE.add("judge-0")
    with scripted_models():
        # the debug executor raises the task's own exception: this driver dies as a killed one would
        with pytest.raises(RuntimeError, match="injected failure"):
            driver.main([*failing.driver_args(), "cluster.max_retries=0"])
        seen["status_failed"] = call("status", str(path))
        seen["submit"] = call("submit", str(path))
        seen["submit_again"] = call("submit", str(path))
    seen["status_after"] = call("status", str(path))
    seen["table"] = call("table", str(path), "--format", "csv")
    seen["table_md"] = call("table", str(path))
    return path, folder, seen


def test_plan_lists_every_run_with_its_overrides_jobs_and_waits(done):
    _, folder, seen = done
    code, text = seen["plan"]
    assert code == 0
    assert "6 run(s) = 2 task(s) x 3 method(s)" in text
    for name in RUNS:
        assert f"\n{name}  (" in text
        assert f"run dir   {folder / 'runs' / name}" in text
    for task in TASKS:
        assert f"instructions.source={folder / 'data' / task / 'train.jsonl'}" in text
        assert f"eval.tasks=[{task}]" in text
        assert f"self_rewarding-{task}  (" in text and f"waits on  sparta-{task} " in text
    assert text.count("waits on") == 4  # the baselines, never a SPARTA run
    assert text.count("  jobs      1 iteration(s)") == 6
    assert "suite total: 6 runs" in text


def test_status_before_says_new_and_waiting(done):
    _, _, seen = done
    code, text = seen["status_before"]
    assert code == 0
    states = {name: line.split()[1] for name, line in lines_of(text).items()}
    assert states == {n: "new" if n.startswith("sparta") else "waiting" for n in RUNS}


def test_a_failed_run_is_resubmitted_and_resumes(done):
    path, folder, seen = done
    assert lines_of(seen["status_failed"][1])["sparta-medqa"].split()[1] == "failed"
    submitted = lines_of(seen["submit"][1])
    assert "resubmitted (resumes)" in submitted["sparta-medqa"]
    log = [json.loads(x) for x in RunPaths(folder / "runs" / "sparta-medqa").events.read_text().splitlines()]
    assert [e["event"] for e in log if e["event"].startswith("driver_")] == \
        ["driver_start", "driver_start", "driver_done"]
    starts = [e for e in log if e["event"] == "driver_start"]
    assert len(starts) == 2
    second = log.index(starts[1])
    # what the first driver finished is not done again: the initial evaluation and generate
    redone = [(e["iteration"], e["stage"]) for e in log[second:] if e["event"] == "stage_done"]
    assert (INITIAL, "score") not in redone and (0, "generate") not in redone and (0, "judge") in redone
    assert log[-1]["event"] == "driver_done"


def test_submit_runs_every_run_once_and_a_second_submit_submits_nothing(done):
    _, folder, seen = done
    code, text = seen["submit"]
    assert code == 0
    got = lines_of(text)
    assert set(got) == set(RUNS)
    assert all("ran here, exit 0" in got[n] for n in RUNS)
    code, text = seen["submit_again"]
    assert code == 0
    again = lines_of(text)
    assert all("not submitted: done" in again[n] for n in RUNS), text
    for name in RUNS:
        log = RunPaths(folder / "runs" / name).events.read_text()
        assert log.count('"driver_done"') == 1


def test_each_run_is_per_task_and_baselines_align_their_tasks_best_init(done):
    path, folder, _ = done
    for task in TASKS:
        sparta = RunPaths(folder / "runs" / f"sparta-{task}")
        best = suite.spec.chosen_member(suite.load_suite(path), task)
        for method in METHODS:
            paths = RunPaths(folder / "runs" / f"{method}-{task}")
            cfg = yaml.safe_load(paths.config.read_text())
            assert cfg["eval"]["tasks"] == [task]
            assert cfg["instructions"]["source"] == str(folder / "data" / task / "train.jsonl")
            if method != "sparta":
                assert cfg["baseline"]["member"] == best
                assert json.loads(paths.policy.read_text())["member"] == best
                assert cfg["eval"]["initial"] is False
        assert sparta.is_done(INITIAL, "score")


def test_status_after_says_done(done):
    _, _, seen = done
    states = {name: line.split()[1] for name, line in lines_of(seen["status_after"][1]).items()}
    assert states == {n: "done" for n in RUNS}
    assert "1/1 iterations trained" in seen["status_after"][1]


def test_table_rows_are_methods_columns_tasks_values_each_runs_own(done):
    path, folder, seen = done
    assert seen["table"][0] == 0 and "| method | gsm8k | medqa | vs BEST INIT |" in seen["table_md"][1]
    # the scripted members score alike: give each run's reported figures a value of its own first, so
    # that a cell taken from another run's evaluation would show
    for n, name in enumerate(RUNS):
        summary = RunPaths(folder / "runs" / name).eval_summary(0)
        record = json.loads(summary.read_text())
        for per_task in record["scores"].values():
            for figures in per_task.values():
                figures["test"]["score"] = 0.01 * (n + 1)
        summary.write_text(json.dumps(record))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["suite", "table", str(path), "--format", "csv"])
    text = out.getvalue()
    assert code == 0
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    assert rows[0] == ["method", *TASKS, "improvement_over_best_init",
                       *(f"{t}_{x}" for t in TASKS for x in ("stderr", "n", "p_value", "n_paired", "candidates"))]
    assert [r[0] for r in rows[1:]] == ["BEST INIT", *METHODS]
    for r in rows[1:]:
        for task, cell in zip(TASKS, r[1:3]):
            if r[0] == "BEST INIT":
                want = headline(load(RunPaths(folder / "runs" / f"sparta-{task}")))[0]["best_init"][2]["score"]
            else:
                want = headline(load(RunPaths(folder / "runs" / f"{r[0]}-{task}")))[0]["sparta"][2]["score"]
            assert float(cell) == pytest.approx(want)
            if r[0] != "BEST INIT":
                assert float(cell) == pytest.approx(0.01 * (RUNS.index(f"{r[0]}-{task}") + 1))


def test_table_marks_the_difference_from_best_init_with_n_stderr_and_candidates(done):
    _, _, seen = done
    text = seen["table_md"][1]
    assert "| method | gsm8k | medqa | vs BEST INIT | selected among |" in text
    assert "`*` p < 0.05, `**` p < 0.01, `***` p < 0.001: the difference from BEST INIT in a two-sided paired " \
           "bootstrap over the test items (10,000 resamples, seed 0)" in text
    rows = {c[0]: c for c in ([x.strip() for x in line.strip("|").split("|")] for line in text.splitlines()
                              if line.startswith("| ") and "---" not in line and not line.startswith("| method"))}
    assert list(rows) == ["BEST INIT", *METHODS]
    for name, cells in rows.items():  # every cell: its value, ± its standard error and N (eval.limit: 2 items)
        assert all(" ± " in c and c.split(" (N=")[1].startswith("2)") for c in cells[1:3]), cells
        # 3 members at the start (BEST INIT) and after the 1 iteration; a baseline trains one model
        assert cells[4] == ("1 checkpoint" if name in ("self_rewarding", "spin") else "3 checkpoints")
    rows = [r for r in csv.reader(io.StringIO(seen["table"][1])) if r]
    for r in rows[1:]:
        got = dict(zip(rows[0], r))
        for task in TASKS:
            if r[0] == "BEST INIT":
                assert got[f"{task}_p_value"] == "" and got[f"{task}_candidates"] == "3"
            else:  # the baseline's items paired with the SPARTA run's initial evaluation, on what was asked
                assert 0 < float(got[f"{task}_p_value"]) <= 1 and got[f"{task}_n_paired"] == "2"
            assert got[f"{task}_n"] == "2" and float(got[f"{task}_stderr"]) >= 0


def test_the_paper_suite_plans_120_runs_without_models_or_data(capsys):
    code = cli.main(["suite", "plan", str(ROOT / "configs" / "table1.yaml")])
    text = capsys.readouterr().out
    assert code == 0
    assert "120 run(s) = 12 task(s) x 5 method(s) + 12 task(s) x 5 ablation(s)" in text
    assert text.count("waits on  sparta-") == 48  # 4 baselines x 12 tasks
    assert "suite total: 120 runs" in text


def test_an_unset_variable_in_the_suite_paths_is_named(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.delenv("SPARTA_TEST_UNSET", raising=False)
    path = tmp_path / "suite.yaml"
    path.write_text(f"dir: $SPARTA_TEST_UNSET/runs\ndata: data\ntasks: [gsm8k]\n"
                    f"methods: {{sparta: {ROOT / 'configs' / 'tiny.yaml'}}}\n")
    assert cli.main(["suite", "plan", str(path)]) == 0  # the plan still shows the cost
    assert "dir/data name $SPARTA_TEST_UNSET, not set: export it" in capsys.readouterr().out
    assert cli.main(["suite", "submit", str(path)]) == 2
    assert "$SPARTA_TEST_UNSET, not set: export it; nothing submitted" in caplog.text
    assert not (tmp_path / "$SPARTA_TEST_UNSET").exists() and not (tmp_path / "suite").exists()


def test_a_bad_suite_is_refused_naming_the_key(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("dir: runs\ndata: data\ntasks: [gsm8k, nope]\nmethods: {sparta: x.yaml}\n")
    assert cli.main(["suite", "plan", str(path)]) == 2
