"""`sparta-hpc status` and `sparta-hpc report` as a person sees them, on runs of the fast tier's scripted
model: a whole run (2 iterations, evaluation, one injected failure), a run stopped after judge, and a
single-model baseline. The report page is opened in headless Chromium: a screenshot is kept, every
image must have loaded and the console must stay clean.

The browser part needs Debian's chromium (/usr/bin/chromium, `make browser`) and Playwright's Python
package; without them it is skipped, unless SPARTA_BROWSER_TESTS=required (then it fails).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from sparta_hpc import cli
from sparta_hpc.rundir.paths import RunPaths

from . import scripted_model
from .scripted_model import scripted_models
from .test_pipeline_fast import drive, write_config

CHROMIUM = os.environ.get("SPARTA_CHROMIUM", "/usr/bin/chromium")
# Chromium must not reach out (the machine has no network): the flags of machines/python.md
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FIGURES = ["ratings.png", "wins.png", "judges.png", "agreement.png", "pairs.png", "train.png", "eval.png",
           "timeline.png"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{"full": 2 iterations + evaluation, judge task 3 failing once; "stopped": --stop-after judge,
    judge task 1 failing once; "baseline": self_rewarding, 1 iteration}."""
    folder = tmp_path_factory.mktemp("report")
    config = write_config(folder)
    out = {name: RunPaths(folder / name) for name in ("full", "stopped", "baseline")}
    with scripted_models():
        scripted_model.FAIL_ONCE.add("judge-3")
        assert drive(config, out["full"].root) == 0
        scripted_model.FAIL_ONCE.add("judge-1")
        assert drive(config, out["stopped"].root, "tribe.iterations=1", "eval.tasks=[]", "--stop-after", "judge") == 0
        assert drive(config, out["baseline"].root, "method=self_rewarding", "baseline.member=ada",
                     "baseline.samples=3", "tribe.iterations=1", "eval.tasks=[]", "instructions.source=demo") == 0
    assert not scripted_model.FAIL_ONCE
    return out


def status(run_dir, capsys, *extra: str) -> str:
    capsys.readouterr()
    assert cli.main(["status", str(run_dir), *extra]) == 0
    return capsys.readouterr().out


def row(text: str, stage: str) -> list[str]:
    """The cells of a stage's row in the status table (the last table that has it)."""
    rows = [line.split() for line in text.splitlines() if re.match(rf"  {stage} +(done|running|waiting|interr)", line)]
    return rows[-1]


# ------------------------------------------------------------------ status

def test_status_of_a_finished_run_names_its_stages_counts_and_failure(runs, capsys):
    paths = runs["full"]
    text = status(paths.root, capsys)
    assert "now      finished" in text and "driver   not running" in text
    assert "progress 2/2 iteration(s) trained" in text and "after iteration 1" in text
    assert "iteration 1:" in text and "evaluation after iteration 1:" in text
    assert row(text, "judge")[:4] == ["judge", "done", "10", "10"]
    assert row(text, "train")[:4] == ["train", "done", "5", "5"]
    assert row(text, "evaluate")[:4] == ["evaluate", "done", "18", "18"]
    failure = [e for e in map(json.loads, paths.events.read_text().splitlines()) if e["event"] == "task_failed"][0]
    assert "iteration 0, judge task 3, attempt 1" in text and "retried: done (attempt 2)" in text
    assert f"log:   {failure['log']}" in text and "error: injected failure in judge-3" in text
    assert "last 10 event(s):" in text and "driver finished the run" in text


def test_status_of_a_run_stopped_after_judge(runs, capsys):
    text = status(runs["stopped"].root, capsys, "--events", "3")
    assert "now      stopped after judge (iteration 0)" in text
    assert "the same command without --stop-after goes on" in text
    assert row(text, "generate")[:4] == ["generate", "done", "6", "6"]
    judge = row(text, "judge")
    assert judge[:4] == ["judge", "done", "10", "10"] and judge[5] == "1"  # one failed attempt
    assert row(text, "gather")[:4] == ["gather", "waiting", "1", "0"]
    assert "judge task 1, attempt 1" in text and "injected failure in judge-1" in text
    assert "last 3 event(s):" in text and "(--stop-after)" in text.splitlines()[-1]


def mid_judge(paths: RunPaths, folder: Path, done: int = 4) -> RunPaths:
    """A copy of the stopped run as its driver saw it after `done` judge tasks: task 1 has failed once
    (and waits for its retry), the others are in flight."""
    copy = RunPaths(folder / "mid")
    shutil.copytree(paths.root, copy.root)
    events, kept, seen = copy.events.read_text().splitlines(), [], 0
    for line in events:
        e = json.loads(line)
        if e["event"] == "task_done" and e["stage"] == "judge":
            seen += 1
            if seen > done:
                break
        kept.append(line)
    copy.events.write_text("".join(x + "\n" for x in kept))
    copy.marker(0, "judge").unlink()
    return copy


def test_status_mid_stage_with_a_running_driver(runs, tmp_path, capsys):
    paths = mid_judge(runs["stopped"], tmp_path)
    with open(paths.lock, "a") as lock:  # a driver's lock (held through another descriptor than status's)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        text = status(paths.root, capsys)
    assert "driver   running (pid" in text and "now      running (iteration 0, judge)" in text
    judge = row(text, "judge")
    assert judge[:6] == ["judge", "running", "10", "4", "5", "1"]
    assert judge[-1] != "-"  # an ETA from the pace so far
    with open(paths.lock) as probe:  # status released whatever it took
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    text = status(paths.root, capsys)
    assert "interrupted (iteration 0, judge; no driver holds driver.lock)" in text
    assert "it ended without a last word" in text


def fake_slurm(folder: Path, squeue: str) -> str:
    """A PATH whose squeue runs `squeue` (bash) and whose sacct knows nothing."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text("#!/bin/bash\n" + squeue)
    (bin_dir / "sacct").write_text("#!/bin/bash\nexit 0\n")
    for tool in ("squeue", "sacct"):
        (bin_dir / tool).chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


def test_status_asks_slurm_about_the_jobs_in_flight(runs, tmp_path, capsys, monkeypatch):
    paths = mid_judge(runs["stopped"], tmp_path)
    paths.config.write_text(paths.config.read_text().replace("executor: debug", "executor: slurm"))
    # squeue -h -r -o FORMAT -j ID,ID: every job it is asked about is running
    monkeypatch.setenv("PATH", fake_slurm(tmp_path, 'for id in ${6//,/ }; do echo "$id|RUNNING"; done\n'))
    text = status(paths.root, capsys)
    assert "jobs the events name as in flight, as Slurm sees them now:" in text
    assert text.count(" RUNNING") >= 5 and row(text, "judge")[-2:] == ["RUNNING", "5"]


def test_status_says_when_slurm_cannot_be_reached(runs, tmp_path, capsys, monkeypatch):
    paths = mid_judge(runs["stopped"], tmp_path)
    paths.config.write_text(paths.config.read_text().replace("executor: debug", "executor: slurm"))
    monkeypatch.setenv("PATH", fake_slurm(tmp_path, "echo 'slurm_load_jobs error: Unable to contact slurm "
                                                    "controller' >&2; exit 1\n"))
    text = status(paths.root, capsys)
    assert "Slurm unreachable (squeue: slurm_load_jobs error: Unable to contact slurm controller)" in text
    assert row(text, "judge")[:6] == ["judge", "interrupted", "10", "4", "5", "1"]  # what the files say


def test_status_watch_ends_with_the_run(runs, capsys):
    text = status(runs["full"].root, capsys, "--watch", "0.1")
    assert text.count("now      finished") == 1 and "Ctrl-C" not in text


def test_status_and_report_refuse_what_is_not_a_run(tmp_path, capsys, caplog):
    assert cli.main(["status", str(tmp_path / "nowhere")]) == 2
    assert "no such directory" in caplog.text
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "not a run directory (no config.yaml)" in caplog.text


# ------------------------------------------------------------------ report

def make_report(paths: RunPaths, out: Path | None = None) -> tuple[Path, str]:
    assert cli.main(["report", str(paths.root)] + (["--out", str(out)] if out else [])) == 0
    page = (out or paths.report) / "index.html"
    return page, page.read_text()


def test_a_report_on_a_run_stopped_after_judge_says_what_is_missing(runs):
    page, text = make_report(runs["stopped"])
    assert "stopped after judge (iteration 0): no pairs yet" in text
    assert "no aggregated iteration yet" in text and "no training log yet" in text
    assert "eval.tasks is empty" in text
    made = sorted(p.name for p in page.parent.glob("*.png"))
    assert made == ["judges.png", "timeline.png"]  # judges read from the judge shards
    assert text.count("<img ") == 2 and "Not in this report yet" in text


def test_a_report_on_a_baseline_run_shows_its_pairs_and_training(runs, tmp_path):
    page, text = make_report(runs["baseline"], tmp_path / "out")
    assert "single-model method (self_rewarding): no reputations and no win matrix" in text
    made = {p.name for p in page.parent.glob("*.png")}
    assert {"pairs.png", "train.png", "judges.png", "timeline.png"} <= made and "ratings.png" not in made


@pytest.fixture
def browser():
    """A headless Chromium page (Playwright's Python package driving Debian's chromium)."""
    required = os.environ.get("SPARTA_BROWSER_TESTS") == "required"
    why = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = "Playwright's Python package is not installed (pip install playwright)"
    if why is None and not os.access(CHROMIUM, os.X_OK):
        why = f"no Chromium at {CHROMIUM} (as root: make browser, or apt-get install chromium)"
    if why:
        if required:
            pytest.fail(f"SPARTA_BROWSER_TESTS=required: {why}")
        pytest.skip(why)
    with sync_playwright() as p:
        # never Playwright's own browser download: Debian's chromium, no network
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium.new_page(viewport={"width": 1280, "height": 900})
        finally:
            chromium.close()


def test_the_report_of_a_whole_run_opens_in_a_browser(runs, browser, tmp_path, tmp_path_factory, capsys):
    page_file, text = make_report(runs["full"])
    assert sorted(p.name for p in page_file.parent.glob("*.png")) == sorted(FIGURES)
    assert "Not in this report yet" not in text and "finished" in text
    assert "src=\"data:image/png;base64," in text and "src=\"ratings.png" not in text  # self-contained
    problems: list[str] = []
    browser.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    browser.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    browser.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    browser.goto(page_file.as_uri())
    browser.wait_for_load_state("load")
    images = browser.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])")
    assert len(images) == len(FIGURES)
    assert all(complete and width > 0 for _, complete, width in images), images
    headings = browser.eval_on_selector_all("h2", "els => els.map(e => e.textContent)")
    assert headings == ["Reputations", "Who beat whom", "Judges", "Preference pairs", "DPO training", "Evaluation",
                        "Stage timeline and cost"]
    shot = tmp_path / "report.png"
    browser.screenshot(path=str(shot), full_page=True)
    kept = Path(os.environ.get("SPARTA_ARTIFACTS") or tmp_path_factory.getbasetemp()) / "report-screenshot.png"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, kept)
    with capsys.disabled():
        print(f"\nreport screenshot: {kept}")
    assert shot.stat().st_size > 50_000 and not problems, problems


def test_the_training_logs_the_report_reads(runs):
    from sparta_hpc.report.data import train_log

    paths = runs["full"]
    history = train_log(paths, 1, "ada")
    assert history[-1].get("train_runtime") and all(h["scripted"] for h in history)
    # without log_history.json: the last complete checkpoint's trainer_state.json
    paths.train_log(1, "ada").rename(paths.train_dir(1, "ada") / "moved.json")
    try:
        for step, loss in ((2, 0.5), (10, 0.25)):
            (paths.train_dir(1, "ada") / f"checkpoint-{step}").mkdir()
            (paths.train_dir(1, "ada") / f"checkpoint-{step}" / "trainer_state.json").write_text(
                json.dumps({"log_history": [{"loss": loss, "step": step}]}))
        (paths.train_dir(1, "ada") / "checkpoint-12").mkdir()  # incomplete: no trainer state yet
        assert train_log(paths, 1, "ada") == [{"loss": 0.25, "step": 10}]
    finally:
        for p in paths.train_dir(1, "ada").glob("checkpoint-*"):
            shutil.rmtree(p)
        (paths.train_dir(1, "ada") / "moved.json").rename(paths.train_log(1, "ada"))
