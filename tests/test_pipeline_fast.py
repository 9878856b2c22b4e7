"""The whole pipeline in seconds: the real driver, launcher, stages, archive, aggregation and export,
in this process (the `debug` executor), with the scripted model of tests/scripted_model.py.

One run serves most assertions: 5 members on 2 base models (2 with adapters
from the config), 2 iterations of 10 duels in generate shards of 4 and judge
shards of 2 with 2 judge rounds, one injected task failure, and an evaluation
of every member on three tasks (dev and test, shards of 2 items) at the start
and after each iteration, scored by lm-eval.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from sparta_hpc import cli, driver
from sparta_hpc.rundir.archive import read_archive
from sparta_hpc.rundir.files import read_json
from sparta_hpc.rundir.paths import EVAL_STAGES, INITIAL, STAGES, RunPaths

from . import scripted_model
from .conftest import SAMPLES
from .scripted_model import scripted_models

MEMBERS = ["ada", "bo", "cy", "di", "ed"]
DUELS = 10
EVAL_TASKS = ["gsm8k", "kcross", "com2"]  # a number, a one-shot multiple choice, one rated by the evaluator


def write_config(folder: Path) -> Path:
    """Two base models (a, b); ada and cy start with adapters of their own."""
    for name in ("base-a", "base-b", "adapter-ada", "adapter-cy"):
        (folder / name).mkdir(parents=True)
    for name in ("base-a", "base-b"):
        (folder / name / "config.json").write_text("{}")
    for name in ("ada", "cy"):
        (folder / f"adapter-{name}" / "adapter_config.json").write_text('{"r": 8}')
    members = [{"name": n, "model": str(folder / ("base-a" if i % 2 == 0 else "base-b")), "temperature": 0.7}
               for i, n in enumerate(MEMBERS)]
    members[0]["adapter"], members[2]["adapter"] = str(folder / "adapter-ada"), str(folder / "adapter-cy")
    members[1]["system_prompt"] = "You are terse."
    config = {"tribe": {"iterations": 2, "duels_per_iteration": DUELS, "members": members},
              "generate": {"duels_per_shard": 4},
              "judge": {"duels_per_shard": 2, "rounds": 2, "temperature": 0.7, "answer_prefix": '{"score": '},
              "eval": {"tasks": EVAL_TASKS, "data_dir": str(SAMPLES), "limit": 3, "items_per_shard": 2,
                       "evaluator": {"model": str(folder / "base-a")}},
              "tracking": {"report_to": "tensorboard"},
              "cluster": {"executor": "debug", "max_retries": 1}}
    path = folder / "fast.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def drive(config: Path, run_dir: Path, *extra: str) -> int:
    return driver.main(["--config", str(config), f"run.dir={run_dir}", *extra])


def events(paths: RunPaths) -> list[dict]:
    return [json.loads(line) for line in paths.events.read_text().splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fast")
    config = write_config(folder)
    paths = RunPaths(folder / "run")
    scripted_model.FAIL_ONCE.add("judge-3")  # judge task 3 fails once: retried, alone
    with scripted_models() as opened:
        assert drive(config, paths.root) == 0
    assert not scripted_model.FAIL_ONCE, "the injected failure never happened"
    return config, paths, opened


def test_stages_run_in_order_and_leave_their_markers(run):
    _, paths, _ = run
    log = events(paths)
    assert log[0]["event"] == "driver_start" and log[-1]["event"] == "driver_done"
    done = [(e["iteration"], e["stage"]) for e in log if e["event"] == "stage_done"]
    # the initial evaluation, then each iteration followed by its evaluation
    assert done == [(INITIAL, s) for s in EVAL_STAGES] + [(t, s) for t in range(2) for s in STAGES + EVAL_STAGES]
    for t in range(2):
        assert all(paths.is_done(t, s) for s in STAGES + EVAL_STAGES)
        assert all(paths.is_done(t, "train", m) for m in MEMBERS)
    # a stage's tasks all end before the next stage submits anything
    order = [(e["iteration"], (STAGES + EVAL_STAGES).index(e["stage"])) for e in log
             if e["event"] in ("task_submit", "task_done")]
    assert order == sorted(order)


def test_an_injected_failure_is_retried_for_its_own_shard_only(run):
    _, paths, _ = run
    log = [e for e in events(paths) if e.get("iteration") == 0 and e.get("stage") == "judge"]
    failed = [e for e in log if e["event"] == "task_failed"]
    assert [(e["task"], e["attempt"]) for e in failed] == [(3, 1)]
    assert "injected failure in judge-3" in failed[0]["error"]
    submits = [e["task"] for e in log if e["event"] == "task_submit"]
    plan = read_json(paths.plan(0))
    assert sorted(submits) == sorted(list(range(len(plan["judge_tasks"]))) + [3])


def test_the_archive_holds_what_the_shards_and_plan_hold(run):
    _, paths, _ = run
    for t in range(2):
        plan, a = read_json(paths.plan(t)), read_archive(paths.archive(t))
        assert json.loads(a["attrs"]["members"]) == MEMBERS
        assert a["instructions/text"].tolist() == [r["text"] for r in plan["instructions"]]
        assert np.stack([a["duels/a"], a["duels/b"]], 1).tolist() == plan["authors"]
        for g, k in plan["generate_tasks"]:
            for r in read_json(paths.shard(t, "generate", g, k))["responses"]:
                assert a["responses/text"][r["duel"], r["side"]] == r["text"]
        n = 0
        for g, k in plan["judge_tasks"]:
            for x in read_json(paths.shard(t, "judge", g, k))["judgments"]:
                at = (x["duel"], MEMBERS.index(x["judge"]), x["side"], x["round"])
                assert a["judgments/raw"][at] == x["raw"]
                assert (np.isnan(a["judgments/parsed"][at]) if x["parsed"] is None
                        else a["judgments/parsed"][at] == x["parsed"])
                n += 1
        assert n == DUELS * (len(MEMBERS) - 2) * 2 * 2  # every non-duellist, both sides, two rounds
        assert np.isnan(a["judgments/parsed"]).sum() > DUELS * 2 * 2  # silent judges are missing, not 5


def test_the_pairs_equal_a_replay_of_the_archived_judgments(run, tmp_path):
    _, paths, _ = run
    out = tmp_path / "export"
    assert cli.main(["export", str(paths.root), "--iteration", "1", "--out", str(out), "--duels"]) == 0
    assert cli.main(["replay", str(out / "duels.jsonl"), "--ratings", str(out / "ratings.json"),
                     "--out", str(tmp_path / "replay.json")]) == 0
    replayed = read_json(tmp_path / "replay.json")
    pairs = [json.loads(line) for line in paths.pairs(1).read_text().splitlines()]
    assert pairs, "the scripted judges prefer the better answers: there are pairs"
    assert [(p["duel"], p["chosen"], p["rejected"]) for p in replayed["preferences"]] == \
        [(p["duel"], p["chosen_member"], p["rejected_member"]) for p in pairs]
    assert [(p["score_chosen"], p["score_rejected"]) for p in replayed["preferences"]] == \
        [(p["score_chosen"], p["score_rejected"]) for p in pairs]
    assert replayed["ratings"] == read_json(paths.ratings(2))
    assert (out / "dataset").is_dir() and (out / "pairs.jsonl").read_text() == paths.pairs(1).read_text()


def test_each_task_loads_its_group_once_with_the_adapters_of_its_iteration(run):
    _, paths, opened = run
    opened = [o for o in opened if o[0].split("-")[0] in ("generate", "judge")]
    assert len(opened) == sum(len(read_json(paths.plan(t))[f"{s}_tasks"]) for t in range(2)
                              for s in ("generate", "judge"))
    later = [adapters for _, _, adapters in opened[len(opened) // 2:]]  # iteration 1's loads
    for adapters in later:
        assert all(path == str(paths.adapter(0, name)) for name, path in adapters.items())
    first = [adapters for _, _, adapters in opened[:len(opened) // 2]]
    assert any(adapters.get("bo", "x") is None for adapters in first)  # a bare member at iteration 0
    assert all(read_json(paths.adapter(1, m) / "scripted.json")["started_from"] == str(paths.adapter(0, m))
               for m in MEMBERS)


def test_a_rerun_submits_nothing(run):
    config, paths, _ = run
    before = len(events(paths))
    with scripted_models() as opened:
        assert drive(config, paths.root) == 0
    new = events(paths)[before:]
    assert not [e for e in new if e["event"] == "task_submit"] and not opened
    assert new[-1]["event"] == "driver_done"


def test_stop_after_judge_then_the_same_command_goes_on(run, tmp_path):
    config, _, _ = run
    paths = RunPaths(tmp_path / "run")
    with scripted_models():
        assert drive(config, paths.root, "tribe.iterations=1", "--stop-after", "judge") == 0
        assert paths.is_done(0, "judge") and not paths.is_done(0, "gather")
        assert events(paths)[-1] == {**events(paths)[-1], "event": "driver_stopped", "stage": "judge"}
        first = len(events(paths))
        assert drive(config, paths.root, "tribe.iterations=1") == 0
    resumed = {e["stage"] for e in events(paths)[first:] if e["event"] == "task_submit"}
    assert resumed == {"gather", "aggregate", "train", "evaluate", "rate", "score"}


def test_a_resume_accepts_new_cluster_resources_but_nothing_else(run, tmp_path):
    config, _, _ = run
    paths = RunPaths(tmp_path / "run")
    with scripted_models():
        assert drive(config, paths.root, "tribe.iterations=1", "--stop-after", "plan") == 0
        assert drive(config, paths.root, "tribe.iterations=1", "--stop-after", "plan",
                     "cluster.train.time_min=600", "cluster.max_retries=3") == 0
        changed = [e for e in events(paths) if e["event"] == "resources_changed"]
        assert len(changed) == 1 and "time_min: 600" in changed[0]["diff"]
        assert "time_min: 600" in paths.config.read_text()  # the jobs get the new resources
        assert drive(config, paths.root, "tribe.iterations=1", "train.beta=0.2") == 2


def test_every_member_is_evaluated_at_every_point_with_its_weights_of_then(run):
    _, paths, opened = run
    assert paths.evaluated_points() == [INITIAL, 0, 1]
    for point in (INITIAL, 0, 1):
        summary = read_json(paths.eval_summary(point))
        assert sorted(summary["scores"]) == sorted(MEMBERS)
        for m in MEMBERS:
            for task in EVAL_TASKS:
                result = read_json(paths.eval_result(point, m, task))
                assert summary["scores"][m][task] == {s: result[s] for s in ("dev", "test")}
                for split in ("dev", "test"):
                    f = result[split]
                    samples = [json.loads(x) for x in paths.eval_samples(point, m, task, split).read_text().splitlines()]
                    assert f["items"] == len(samples) == 3 and all(s["response"] and s["prompt"] for s in samples)
                    if task == "com2":  # rated 1..10 by the evaluator; its silences are missing, not a default
                        assert f["n"] + f["missing"] == 3 and f["metric"] == "rating"
                        assert all(s["evaluator_text"].startswith('{"score": ') for s in samples)
                        rated = [s["rating"] for s in samples if s["rating"] is not None]
                        assert rated and f["score"] == pytest.approx(sum(rated) / len(rated)) and 1 <= f["score"] <= 10
                    else:
                        assert f["n"] == 3 and f["score"] == pytest.approx(sum(s["correct"] for s in samples) / 3)
    # each evaluate task served its group's members with their adapters of that point
    loads = [adapters for slot, _, adapters in opened if slot.startswith("evaluate")]
    expected = [{"ada": str(paths.root.parent / "adapter-ada"), "cy": str(paths.root.parent / "adapter-cy"),
                 "bo": None, "di": None, "ed": None}] + [{m: str(paths.adapter(t, m)) for m in MEMBERS} for t in (0, 1)]
    per_point = len(loads) // 3
    for k, want in enumerate(expected):
        for adapters in loads[k * per_point:(k + 1) * per_point]:
            assert adapters == {m: want[m] for m in adapters}
    assert all(adapters == {"evaluator": None} for slot, _, adapters in opened if slot.startswith("rate"))


def test_the_run_scores_equal_sparta_hpc_score_on_the_same_answers(run, tmp_path, capsys):
    _, paths, _ = run
    docs = read_json(paths.eval_prompts("gsm8k", "test"))["docs"]
    samples = [json.loads(x) for x in paths.eval_samples(1, "bo", "gsm8k", "test").read_text().splitlines()]
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"doc": d, "response": s["response"]}) + "\n"
                                   for d, s in zip(docs, samples)))
    capsys.readouterr()
    assert cli.main(["score", "gsm8k", str(predictions)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["correct"] == [s["correct"] for s in samples] and printed["n"] == 3


def test_eval_table_shows_best_init_the_selected_model_and_every_point(run, capsys):
    _, paths, _ = run
    capsys.readouterr()
    assert cli.main(["eval-table", str(paths.root)]) == 0
    table = capsys.readouterr().out
    for task in EVAL_TASKS:
        assert f"| {task} | dev / test |" in table
    assert "average relative improvement" in table and "| initial | iter 0 | iter 1 |" in table
    assert cli.main(["eval-table", str(paths.root), "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("kind,task,split,member,point,score")
    assert sum(r.startswith("score,") for r in rows) == 3 * len(MEMBERS) * len(EVAL_TASKS) * 2


def test_sparta_hpc_eval_adds_a_task_to_a_point_and_recomputes_nothing_else(run, tmp_path):
    import shutil

    _, original, _ = run
    paths = RunPaths(tmp_path / "moved")  # a run directory moved elsewhere is still the same run
    shutil.copytree(original.root, paths.root)
    before = len(events(paths))
    with scripted_models():
        assert cli.main(["eval", str(paths.root), "--iteration", "0", "eval.tasks=[gsm8k,kcross,com2,medqa]"]) == 0
        assert cli.main(["eval", str(paths.root), "--iteration", "0", "eval.tasks=[gsm8k,kcross,com2,medqa]"]) == 0
    new = events(paths)[before:]
    plan = read_json(paths.eval_plan(0))
    submitted = {plan["items"][i]["task"] for e in new if e["event"] == "task_submit" and e["stage"] == "evaluate"
                 for i, _, _ in plan["evaluate_shards"][plan["evaluate_tasks"][e["task"]][1]]["segments"]}
    assert submitted == {"medqa"}, "only the new task is answered"
    assert sum(e["event"] == "task_submit" and e["stage"] == "score" for e in new) == 1  # the second call: nothing
    assert read_json(paths.eval_result(0, "ada", "medqa"))["test"]["items"] == 3


def test_a_model_outside_the_run_is_evaluated_the_same_way(run, tmp_path):
    """`sparta-hpc eval --model --adapter` (a baseline or an external checkpoint) builds a member's
    in-run prompts, loads the given base model and adapter, and scores with the same metric.
    Same prompts, model, adapter and metric are what make the numbers comparable; the scripted
    model's answers also depend on their place in a batch, so the answers are not compared here
    (tests/test_vllm.py runs this command on the real model, HF and vLLM giving the same answers)."""
    _, paths, _ = run
    out, adapter = RunPaths(tmp_path / "outside"), str(paths.adapter(1, "di"))
    with scripted_models() as opened:
        assert cli.main(["eval", "--model", str(paths.root.parent / "base-b"), "--adapter", adapter, "--name", "di",
                         "--tasks", "gsm8k", "--data-dir", str(SAMPLES), "--out", str(out.root), "eval.split=test",
                         "eval.limit=3", "cluster.executor=debug"]) == 0
    assert [(Path(model).name, adapters) for slot, model, adapters in opened] == [("base-b", {"di": adapter})]
    files = (out.eval_samples(INITIAL, "di", "gsm8k", "test"), paths.eval_samples(1, "di", "gsm8k", "test"))
    samples = [[json.loads(x) for x in f.read_text().splitlines()] for f in files]
    assert [s["prompt"] for s in samples[0]] == [s["prompt"] for s in samples[1]]
    alone = read_json(out.eval_result(INITIAL, "di", "gsm8k"))["test"]
    assert alone["n"] == 3 and alone["metric"] == read_json(paths.eval_result(1, "di", "gsm8k"))["test"]["metric"]
    assert alone["score"] == pytest.approx(sum(s["correct"] for s in samples[0]) / 3)


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar TensorBoard finds in a folder's event files: {tag: [(step, value), ...]}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list] = {}
    for events_file in sorted(folder.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events_file))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return found


def test_the_pipeline_metrics_reach_tensorboard(run):
    _, paths, _ = run
    found = scalars(paths.tracking / "tensorboard" / "pipeline")
    for t in range(2):  # each iteration's ratings and pairs at step t + 1
        ratings = read_json(paths.ratings(t + 1))
        for m in MEMBERS:
            assert (t + 1, pytest.approx(ratings[m]["rating"], rel=1e-6)) in found[f"rating/{m}"]
        assert (t + 1, len(paths.pairs(t).read_text().splitlines())) in found["pairs/count"]
    assert {s for s, _ in found["judge_parse_rate/ada"]} == {1, 2}
    # the evaluation of every point: the initial one at step 0
    score = read_json(paths.eval_result(INITIAL, "bo", "gsm8k"))["test"]["score"]
    assert (0, pytest.approx(score)) in found["eval/gsm8k/test/bo"]
    assert {s for s, _ in found["eval/com2/dev/ed"]} == {0, 1, 2}


def test_wandb_runs_offline_under_the_run_directory(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from sparta_hpc.config.schema import Config, RunConfig, TrackingConfig
    from sparta_hpc.stages.tracking import log_pipeline

    monkeypatch.delenv("WANDB_MODE", raising=False)
    for name in ("WANDB_DIR", "WANDB_PROJECT"):  # set by log_pipeline: restored after the test
        monkeypatch.setenv(name, "")
    paths = RunPaths(tmp_path / "run")
    cfg = Config(run=RunConfig(dir=str(paths.root)), tracking=TrackingConfig(report_to="wandb"))
    log_pipeline(cfg, paths, 1, {"rating/ada": 101.5, "pairs/count": 7})
    runs = list((paths.tracking / "wandb").glob("offline-run-*"))
    assert runs and any(p.suffix == ".wandb" for p in runs[0].iterdir())


def test_a_refused_submission_is_retried_until_slurm_takes_it(tmp_path, monkeypatch):
    from submitit.core.utils import FailedJobError

    from sparta_hpc import launch
    from sparta_hpc.rundir.events import EventLog

    monkeypatch.setattr(launch, "SUBMIT_WAITS", (0, 0, 0))
    log = EventLog(tmp_path / "events.jsonl")
    calls = []

    def submit():  # slurmctld down for two attempts
        calls.append(1)
        if len(calls) < 3:
            raise FailedJobError("sbatch: error: Batch job submission failed: Unable to contact slurm controller")
        return ["job"]

    assert launch.submit_retrying(submit, "[iter 0] judge", log) == ["job"]
    assert [e["attempt"] for e in log.read() if e["event"] == "submit_retry"] == [1, 2]
    calls.clear()
    monkeypatch.setattr(launch, "SUBMIT_WAITS", ())
    with pytest.raises(launch.StageFailed, match="Slurm refused the submission 1 times.*Unable to contact"):
        launch.submit_retrying(submit, "[iter 0] judge", log)
