"""Where a run is now, in plain text (`sparta-hpc status RUN`, commands/status.py).

Reads the run directory only (config.yaml, events.jsonl, plans, markers), so it works for
a driver running anywhere: on a login node, inside sbatch, or one that died. With
cluster.executor slurm it asks squeue/sacct about the jobs the events name as in flight;
where Slurm cannot be reached it says so and shows what the files say.

Whether a driver is running: a non-blocking *shared* flock on driver.lock, through a file
descriptor of our own, released at once. It is the same kernel lock the driver holds (so
the answer is right wherever the driver's own exclusion works, across nodes on a shared
file system too), whereas the pid written in the file can only be checked on the driver's
own host and pids are reused. The price: a driver starting in the same microsecond would
find the lock busy and refuse to start (it says so; run it again).
"""

from __future__ import annotations

import math
import subprocess
import time
from dataclasses import dataclass

from ..config.schema import Config, load_config
from ..errors import ConfigError, StatusError
from ..rundir.events import DRIVER_END, DRIVER_FAILED, DRIVER_START, DRIVER_STOPPED
from ..rundir.paths import EVAL_STAGES, INITIAL, STAGES, RunPaths, point_label
from ..rundir.plan import plan_file, stage_plan
from . import timeline
from .timeline import Attempt, Timeline

SLURM_TIMEOUT_S = 20


def open_run(run_dir) -> tuple[Config, RunPaths]:
    paths = RunPaths(run_dir)
    if not paths.root.is_dir():
        raise StatusError(f"{paths.root}: no such directory (give the run directory, the driver's run.dir)")
    if not paths.config.exists():
        raise StatusError(f"{paths.root}: not a run directory (no config.yaml); a run directory is what the "
                          "driver's run.dir names")
    try:
        return load_config(paths.config), paths
    except ConfigError as err:
        raise StatusError(f"{paths.config}: cannot read the run's config: {err}") from err


def probe_lock(paths: RunPaths) -> tuple[bool | None, str]:
    """(a driver holds RUN/driver.lock?, who last held it). None: cannot tell."""
    import fcntl

    if not paths.lock.exists():
        return False, "no driver has run here yet (no driver.lock)"
    try:
        with open(paths.lock) as handle:  # our own descriptor: the driver's lock is never touched
            holder = handle.read().strip() or "unknown"
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True, holder
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False, holder
    except OSError as err:
        return None, f"cannot probe {paths.lock}: {err}"


def slurm_states(job_ids: list[str]) -> tuple[dict[str, str], str | None]:
    """{job id: Slurm state} from squeue (queued, running) then sacct (ended); (states, why Slurm could
    not be asked) where it cannot."""
    if not job_ids:
        return {}, None
    states: dict[str, str] = {}
    try:
        q = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(job_ids)], capture_output=True,
                           text=True, timeout=SLURM_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {}, f"squeue: {err}"
    if q.returncode == 0:
        states.update(_pairs(q.stdout))
    elif "invalid job id" not in q.stderr.lower():  # squeue refuses ids that left its queue: ask sacct
        return {}, f"squeue: {q.stderr.strip() or f'exit status {q.returncode}'}"
    rest = [j for j in job_ids if j not in states]
    if rest:
        try:
            a = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(rest)],
                               capture_output=True, text=True, timeout=SLURM_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as err:
            return states, f"sacct: {err}"
        if a.returncode != 0:
            return states, f"sacct: {a.stderr.strip() or f'exit status {a.returncode}'}"
        states.update({k: v for k, v in _pairs(a.stdout).items() if k in rest})
    return states, None


def _pairs(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if "|" in line:
            job, state = line.split("|", 1)
            out[job.strip()] = (state.split() or ["UNKNOWN"])[0]  # "CANCELLED by 0" -> CANCELLED
    return out


@dataclass
class StageRow:
    stage: str
    total: int | None  # planned tasks (None: the driver's own step, or the plan is not written yet)
    done: int
    in_flight: int
    failed: int  # failed attempts (a retried task counts each time)
    elapsed: float | None
    eta: float | None
    state: str  # done | running | waiting | interrupted
    slurm: str = ""


def planned_tasks(cfg: Config, paths: RunPaths, stage: str, iteration: int) -> int | None:
    if stage in ("gather", "aggregate", "score"):
        return 1
    if stage == "sft":
        return len(cfg.members)
    if stage == "train":
        return len(cfg.members) if cfg.method == "sparta" else 1
    if stage == "plan" or not plan_file(paths, stage, iteration).exists():
        return None
    return len(stage_plan(paths, stage, iteration).tasks(stage))


def group_stages(cfg: Config, iteration: int, stage: str | None) -> list[str]:
    """The stages shown for the current position: an iteration and its evaluation, or what runs before."""
    from ..eval.plan import eval_points

    evaluated = iteration in eval_points(cfg)
    if iteration == INITIAL:
        return (["sft"] if cfg.sft.data else []) + (list(EVAL_STAGES) if evaluated else [])
    return list(STAGES) + (list(EVAL_STAGES) if evaluated or stage in EVAL_STAGES else [])


def stage_row(cfg: Config, paths: RunPaths, tl: Timeline, stage: str, iteration: int, now: float,
              driver_alive: bool) -> StageRow:
    attempts = [a for a in tl.attempts if a.stage == stage and a.iteration == iteration]
    latest: dict = {}
    for a in attempts:
        latest[a.task] = a
    total = planned_tasks(cfg, paths, stage, iteration)
    marked = paths.is_done(iteration, stage)
    done = total if marked and total is not None else len({a.task for a in attempts if a.state == "done"})
    # a done stage's files outrank stale events (a driver killed before it heard its tasks end)
    in_flight = 0 if marked else sum(a.state == "in flight" for a in latest.values())
    failed = sum(a.state == "failed" for a in attempts)
    started, finished = timeline.stage_bounds(tl.events, iteration, stage)
    if marked or finished:
        state = "done"
    elif started is None:
        state = "waiting"
    else:
        # without a driver nobody collects results, even where Slurm jobs still run (shown apart)
        state = "running" if driver_alive else "interrupted"
    elapsed = finished.get("seconds") if finished else (now - started if started and state == "running" else None)
    eta = None
    if state == "running" and total:
        remaining = total - done
        ran = [a.seconds for a in tl.attempts if a.stage == stage and a.state == "done" and a.seconds is not None]
        done_here = len({a.task for a in attempts if a.state == "done" and started and a.end and a.end >= started})
        if done_here and elapsed:  # this stage's own pace: it includes queue waits and parallelism
            eta = elapsed / done_here * remaining
        elif ran:  # nothing done here yet: the stage's task durations so far (earlier iterations)
            eta = sum(ran) / len(ran) * math.ceil(remaining / max(in_flight, 1))
    if stage == "plan":
        total, state = None, "done" if paths.plan(iteration).exists() else "waiting"
    return StageRow(stage, total, done or 0, in_flight, failed, elapsed, eta, state)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def driver_lines(tl: Timeline, held: bool | None, holder: str, now: float) -> tuple[list[str], bool]:
    """The driver's state in words, and whether the run has ended (nothing more will happen by itself)."""
    last = timeline.driver_state(tl.events)
    lock = {True: f"running ({holder})", False: "not running", None: f"unknown ({holder})"}[held]
    if last is None:
        return [f"driver   {lock}; no event yet (events.jsonl is empty or missing)"], not held
    said = f"{timeline.describe(last)} ({_when(last['time'])}, {timeline.duration(now - last['time'])} ago)"
    lines = [f"driver   {lock}" + ("" if held else f"; last holder of driver.lock: {holder}"),
             f"         its last word: {said}"]
    ended = last["event"] in DRIVER_END and not held
    if last["event"] == DRIVER_START and held is False:
        lines.append("         it ended without a last word (killed, or its job ended): run the same command "
                     "again to resume")
    if last["event"] == DRIVER_STOPPED:
        lines.append("         the same command without --stop-after goes on")
    return lines, ended


def render(run_dir, n_events: int = 10, now: float | None = None) -> tuple[str, bool]:
    """(the status text, whether the run has ended)."""
    cfg, paths = open_run(run_dir)
    now = time.time() if now is None else now
    tl = timeline.load(paths.events)
    held, holder = probe_lock(paths)
    c = cfg.cluster
    what = (f"{len(cfg.members)} members" if cfg.method == "sparta" else "a single model") + \
        f", {cfg.tribe.iterations} iteration(s) x {cfg.tribe.duels_per_iteration} instructions"
    lines = [f"run      {paths.root}", f"method   {cfg.method}: {what}; executor {c.executor}"]
    driver, ended = driver_lines(tl, held, holder, now)
    lines += driver
    trained = sum(paths.is_done(t, "train") for t in range(cfg.tribe.iterations))
    lines.append(f"progress {trained}/{cfg.tribe.iterations} iteration(s) trained; evaluation points scored: "
                 f"{', '.join(point_label(p, 'after iteration {}') for p in paths.evaluated_points()) or 'none'}")
    iteration, stage = timeline.position(tl.events)
    lines.append(f"now      {timeline.state_words(tl.events, held)}")
    if iteration is None:
        return "\n".join(lines + _tail(tl, n_events)), ended
    rows = [stage_row(cfg, paths, tl, s, iteration, now, bool(held)) for s in group_stages(cfg, iteration, stage)]
    flying = jobs_to_ask(tl, paths, c.executor)
    slurm_note = _slurm(c.executor, flying, rows, driver_alive=held is not False)
    lines += [""] + _table(iteration, rows) + slurm_note + _failures(tl, paths) + _tail(tl, n_events)
    if tl.unreadable:
        lines.append(f"({tl.unreadable} line(s) of {paths.events} could not be read and were skipped)")
    return "\n".join(lines), ended


def _table(iteration: int, rows: list[StageRow]) -> list[str]:
    out = []
    heading = None
    for r in rows:
        group = timeline.place(iteration, r.stage)
        if group != heading:
            heading = group
            out += [f"{group}:", f"  {'stage':10s} {'state':11s} {'tasks':>5} {'done':>5} {'in flight':>9} "
                                 f"{'failed':>6}  {'elapsed':>8}  {'ETA':>8}  slurm"]
        total, done = ("-", "-") if r.total is None else (str(r.total), str(r.done))
        elapsed = timeline.duration(r.elapsed) if r.elapsed is not None else "-"
        eta = timeline.duration(r.eta) if r.eta is not None else "-"
        out.append(f"  {r.stage:10s} {r.state:11s} {total:>5} {done:>5} {r.in_flight:>9} {r.failed:>6}  "
                   f"{elapsed:>8}  {eta:>8}  {r.slurm}".rstrip())
    return out


def jobs_to_ask(tl: Timeline, paths: RunPaths, executor: str) -> list[Attempt]:
    """Each unfinished task's latest attempt, in flight or (Slurm only: its jobs outlive a driver) left
    behind by a driver that died; never those of a stage whose files say it is done."""
    latest: dict = {}
    for a in tl.attempts:
        latest[(a.iteration, a.stage, a.task)] = a
    alive = ("in flight", "lost") if executor == "slurm" else ("in flight",)
    return [a for a in latest.values() if a.state in alive and not paths.is_done(a.iteration, a.stage)]


def _slurm(executor: str, flying: list[Attempt], rows: list[StageRow], driver_alive: bool = True) -> list[str]:
    """What Slurm says of the jobs in flight; a job whose driver is gone (it ended, or died without a
    last word: the lock is free) is named as such."""
    if executor != "slurm" or not flying:
        return []
    states, error = slurm_states(sorted({a.job_id for a in flying}))
    if error:
        return [f"Slurm unreachable ({error}): the table shows what the run directory says"]
    lines = ["jobs the events name as in flight, as Slurm sees them now:"]
    for a in flying:
        state = states.get(a.job_id, "UNKNOWN (not in squeue or sacct)")
        lines.append(f"  {timeline.place(a.iteration, a.stage)}, {a.stage} task {a.task}: job {a.job_id} "
                     f"{state}" + (" (its driver is gone: a rerun adopts it if it is still alive)"
                                   if a.state == "lost" or not driver_alive else ""))
    for r in rows:
        mine = [states.get(a.job_id, "UNKNOWN") for a in flying if a.stage == r.stage]
        r.slurm = ", ".join(f"{s} {mine.count(s)}" for s in sorted(set(mine)))
    return lines


def _failures(tl: Timeline, paths: RunPaths) -> list[str]:
    failed = [a for a in tl.attempts if a.state == "failed"]
    last = timeline.driver_state(tl.events)
    lines = []
    if last and last["event"] == DRIVER_FAILED:
        lines += ["", f"the driver stopped: {last.get('error', '?')}"]
    if not failed:
        return lines
    lines += ["", f"failures ({len(failed)} failed attempt(s)):"]
    for a in failed[-10:]:
        after = [b for b in tl.attempts if (b.iteration, b.stage, b.task) == (a.iteration, a.stage, a.task)
                 and b.start > a.start]
        then = f"retried: {after[-1].state} (attempt {after[-1].attempt})" if after else "not retried"
        task = "" if a.task is None else f" task {a.task}"
        lines += [f"  {timeline.place(a.iteration, a.stage)}, {a.stage}{task}, attempt {a.attempt} (job "
                  f"{a.job_id}) at {_when(a.end or a.start)}; {then}",
                  f"    error: {a.error or _last_line(a.log)}", f"    log:   {a.log}"]
    if len(failed) > 10:
        lines.append(f"  ... and {len(failed) - 10} earlier one(s) in {paths.events}")
    return lines


def _last_line(log: str | None) -> str:
    """The log's last non-empty line, where the event carries no error text."""
    try:
        with open(log or "", errors="replace") as f:
            tail = [x for x in f.read()[-4000:].splitlines() if x.strip()]
        return tail[-1] if tail else "(empty log)"
    except OSError:
        return "(no error text; the log is not readable from here)"


def _tail(tl: Timeline, n: int) -> list[str]:
    if n <= 0 or not tl.events:
        return []
    return ["", f"last {min(n, len(tl.events))} event(s):"] + [
        f"  {time.strftime('%H:%M:%S', time.localtime(e['time']))}  {timeline.describe(e)}" for e in tl.events[-n:]]
