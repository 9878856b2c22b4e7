"""The generate and judge stages' cores without a model: which requests each task builds, and
that any shard layout covers every response and every judgment exactly once (fast tier)."""

import json
import tempfile
from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparta_hpc.config.schema import (
    ClusterConfig,
    Config,
    GenerateConfig,
    JudgeConfig,
    MemberConfig,
    RunConfig,
    TribeConfig,
)
from sparta_hpc.rundir.archive import read_archive
from sparta_hpc.rundir.paths import RunPaths
from sparta_hpc.stages import gather, generate, judge, plan
from sparta_hpc.stages.common import shard_rows

from .scripted_model import scripted_models


def make_config(run_dir, members: int, groups: int, duels: int, gen_shard: int, judge_shard: int, rounds: int,
                adapters: tuple[bool, ...] = (), score: str = "parsed", panel_size: int | None = None,
                panel_sampling: str = "uniform") -> Config:
    tribe = [MemberConfig(name=f"m{i}", model=f"/models/base{i % groups}",
                          adapter=f"/adapters/m{i}" if i < len(adapters) and adapters[i] else None,
                          system_prompt=f"You are member {i}." if i % 2 else None, temperature=0.7)
             for i in range(members)]
    return Config(run=RunConfig(dir=str(run_dir)),
                  tribe=TribeConfig(members=tribe, iterations=1, duels_per_iteration=duels),
                  generate=GenerateConfig(duels_per_shard=gen_shard),
                  judge=JudgeConfig(duels_per_shard=judge_shard, rounds=rounds, temperature=0.7,
                                    answer_prefix='{"score": ', score=score, panel_size=panel_size,
                                    panel_sampling=panel_sampling),
                  cluster=ClusterConfig(executor="debug"))


def test_generate_requests_cover_the_groups_duelists_of_one_shard(tmp_path):
    cfg = make_config(tmp_path, members=4, groups=2, duels=6, gen_shard=4, judge_shard=2, rounds=1)
    p = plan.make_plan(cfg, 0, plan.initial_ratings(cfg), set())
    assert p["duels_per_shard"] == {"generate": 4, "judge": 2}
    requests = generate.generate_requests(cfg, p, 0, group=1, shard=1)
    for batch, slots in requests:
        member = [m.name for m in cfg.members].index(batch.member)
        assert member in p["groups"][1]
        assert all(c in (4, 5) and p["authors"][c][side] == member for c, side in slots)
        assert len(batch.conversations) == len(slots)
        for conv, (c, _) in zip(batch.conversations, slots):
            assert conv[-1] == {"role": "user", "content": p["instructions"][c]["text"]}
            assert (conv[0]["role"] == "system") == (member % 2 == 1)  # the member's own system prompt


def test_a_judge_shard_reads_every_generate_shard_its_duels_are_in(tmp_path):
    """The bug of issue 9: generate 4 duels per shard, judge 2: judge shard 1 (duels 2-3) lives in
    generate shard 0, judge shard 2 (duels 4-5) in generate shard 1."""
    cfg = make_config(tmp_path, members=4, groups=2, duels=10, gen_shard=4, judge_shard=2, rounds=1)
    p = plan.make_plan(cfg, 0, plan.initial_ratings(cfg), set())
    assert {k for _, k in judge.generate_shards_for(p, 1)} == {0}
    assert {k for _, k in judge.generate_shards_for(p, 2)} == {1}
    cfg3 = replace(cfg, judge=replace(cfg.judge, duels_per_shard=3))
    p3 = plan.make_plan(cfg3, 0, plan.initial_ratings(cfg3), set())
    assert {k for _, k in judge.generate_shards_for(p3, 1)} == {0, 1}  # duels 3-5 straddle two shards
    assert {k for _, k in judge.generate_shards_for(p3, 3)} == {2}  # duel 9 only


def test_judge_requests_leave_the_duelists_out(tmp_path):
    cfg = make_config(tmp_path, members=5, groups=1, duels=5, gen_shard=5, judge_shard=5, rounds=2)
    p = plan.make_plan(cfg, 0, plan.initial_ratings(cfg), set())
    responses = {(c, side): f"answer {c}.{side}" for c in range(5) for side in (0, 1)}
    work = judge.judge_requests(cfg, p, 0, 0, responses)
    for w in work:
        j = [m.name for m in cfg.members].index(w.judge)
        assert w.slots == [(c, side) for c in range(5) if j not in p["authors"][c] for side in (0, 1)]
        for conv, (c, side) in zip(w.conversations, w.slots):
            assert f"answer {c}.{side}" in conv[-1]["content"] and p["instructions"][c]["text"] in conv[-1]["content"]
    rounds = [judge.round_batches(cfg, work, 0, 0, r) for r in range(2)]
    assert [b.member for b in rounds[0]] == [w.judge for w in work]
    assert all(b.prefix == '{"score": ' for b in rounds[0])
    assert [b.seed for b in rounds[0]] != [b.seed for b in rounds[1]]  # each round samples anew


def run_iteration_stages(cfg: Config) -> RunPaths:
    """plan, every generate and judge task, gather: in this process, on the scripted model."""
    paths = RunPaths(cfg.run.dir)
    plan.run(cfg, paths, 0)
    p = json.loads(paths.plan(0).read_text())
    for task in range(len(p["generate_tasks"])):
        generate.run(cfg, paths, 0, task)
    for task in range(len(p["judge_tasks"])):
        judge.run(cfg, paths, 0, task)
    gather.run(cfg, paths, 0)
    return paths


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=st.integers(3, 12), groups=st.integers(1, 3), duels=st.integers(1, 24),
       gen_shard=st.integers(1, 8), judge_shard=st.integers(1, 8), rounds=st.integers(1, 3),
       adapters=st.lists(st.booleans(), max_size=12), score=st.sampled_from(["parsed", "expected"]),
       panel=st.none() | st.integers(1, 10), sampling=st.sampled_from(["uniform", "reputation"]))
def test_any_shard_layout_generates_each_response_once_and_judges_it_by_exactly_its_panel(
        members, groups, duels, gen_shard, judge_shard, rounds, adapters, score, panel, sampling):
    groups = min(groups, members)
    panel = None if panel is None else min(panel, members - 2)  # None: every member outside the duel
    with tempfile.TemporaryDirectory() as tmp, scripted_models() as opened:
        cfg = make_config(f"{tmp}/run", members, groups, duels, gen_shard, judge_shard, rounds, tuple(adapters),
                          score, panel, sampling)
        paths = run_iteration_stages(cfg)
        p = json.loads(paths.plan(0).read_text())
        pairs = np.array(p["authors"]).reshape(-1, 2)

        # every response generated exactly once, by its duelist, in its own group's task
        seen = {}
        for g, k in p["generate_tasks"]:
            rows = json.loads(paths.shard(0, "generate", g, k).read_text())["responses"]
            assert rows, f"generate task {(g, k)} was planned without work"
            for r in rows:
                assert (r["duel"], r["side"]) not in seen
                assert cfg.members[pairs[r["duel"], r["side"]]].name == r["member"]
                assert pairs[r["duel"], r["side"]] in p["groups"][g]
                assert r["duel"] in shard_rows(p, "generate", k)
                seen[(r["duel"], r["side"])] = r["text"]
        assert set(seen) == {(c, side) for c in range(duels) for side in (0, 1)}

        # the panel: k of the members outside the duel, or all of them
        for c, judges in enumerate(p["judges"]):
            outside = [j for j in range(members) if j not in pairs[c]]
            assert judges == (outside if panel is None else sorted(set(judges) & set(outside)))
            assert len(judges) == (members - 2 if panel is None else panel)

        # every duel judged by exactly its panel, both sides, every round
        judged = []
        for g, k in p["judge_tasks"]:
            rows = json.loads(paths.shard(0, "judge", g, k).read_text())["judgments"]
            assert rows, f"judge task {(g, k)} was planned without work"
            judged += [(x["duel"], x["judge"], x["side"], x["round"]) for x in rows]
            for x in rows:  # the judge saw the response generate wrote for that slot
                assert seen[(x["duel"], x["side"])]
        expected = [(c, cfg.members[j].name, side, r) for c in range(duels) for j in p["judges"][c]
                    for side in (0, 1) for r in range(rounds)]
        assert sorted(judged) == sorted(expected)

        # one model load per task, serving exactly its group's members with their adapters
        assert len(opened) == len(p["generate_tasks"]) + len(p["judge_tasks"])
        for slot, model, adapters_served in opened:
            stage, task = slot.split("-")
            g = p[f"{stage}_tasks"][int(task)][0]
            assert list(adapters_served) == [cfg.members[i].name for i in p["groups"][g]]
            assert {cfg.members[i].model for i in p["groups"][g]} == {model}

        # and the archive holds every one of them, NaN scores outside the panel, the judge report counts them
        a = read_archive(paths.archive(0))
        assert a["judgments/raw"].shape == (duels, members, 2, rounds)
        raw = a["judgments/raw"]
        for c in range(duels):
            for j in range(members):
                assert all(bool(t) == (j in p["judges"][c]) for t in raw[c, j].ravel())
                if j not in p["judges"][c]:
                    assert np.isnan(a["judgments/score"][c, j]).all()
        report = json.loads(a["attrs"]["judge_report"])
        for j, m in enumerate(cfg.members):
            assert report[m.name]["judgments"] == sum(j in judges for judges in p["judges"]) * 2 * rounds
