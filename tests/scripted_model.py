"""A deterministic stand-in for the models, for the fast tier (orchestration only: no weights, no torch).

`ScriptedGroup` satisfies `backends.ModelGroup`. It answers from the prompt
and the seed, and each answer carries its author's quality ("q7"): the
member's own (from its name) plus one per DPO round its adapter has seen. As a
judge it reads that quality back from the response in the judge prompt, with
a small offset of its own, and is silent (no parsable score) on about one
response in eight, as real small judges are. `scripted_train` stands in for
one member's DPO: it reads the iteration's pairs and writes an adapter that
records one more round, and a made-up TRL log history
(train/<member>/log_history.json, every record marked "scripted") so that
reports have curves to draw; `scripted_sft` stands in for one member's SFT
(the sft stage): it reads the member's real slice of the SFT data and writes
an expert adapter that records it.

    with scripted_models() as opened:   # every stage in this process uses them
        driver.main([...])

This is never evidence that models, metrics or training work: the slow tiers
run the real ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from pathlib import Path

from sparta_hpc import backends
from sparta_hpc.algorithm.judging import parse_score
from sparta_hpc.backends import Batch, Generated
from sparta_hpc.inputs.sft_data import member_examples, member_source
from sparta_hpc.rundir.files import atomic_write_json, atomic_write_text
from sparta_hpc.stages import sft, train
from sparta_hpc.stages.common import member_adapter

RESPONSE = re.compile(r"\[Response\]\n(.*)\Z", re.S)
# where the other judge prompts (judge.rubric: authors, additive5) show the response
JUDGED = (RESPONSE, re.compile(r"Response to be evaluated: (.*)\n\nOperation:", re.S),
          re.compile(r"<response>(.*)</response>", re.S))
PAIRWISE = re.compile(r"\[Response A\]\n(.*)\n\n\[Response B\]\n(.*)\Z", re.S)
META = re.compile(r"\[Response\]\n(.*)\n\n\[Evaluation A\]\n(.*)\n\n\[Evaluation B\]\n(.*)\Z", re.S)
QUALITY = re.compile(r"\bq(\d+)\b")
MC_OPTION = re.compile(r"^([A-Z]): ", re.M)

# Slots ("generate-1", "judge-0", ...) whose next model load fails once: an injected task failure.
FAIL_ONCE: set[str] = set()
# Hostile output: a member whose answers (as a duelist, or to benchmark items) are these texts, in
# turn; a judge whose every raw output ends with this text after its score ("{response}" in it: the
# response it judged, echoed).
HOSTILE: dict[str, list[str]] = {}
HOSTILE_JUDGE: dict[str, str] = {}
# Appended to every duelist's answer: a test sets it to make recomputed work differ from the first run's.
ANSWER_SUFFIX = ""


def digest(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


def base_quality(member: str) -> int:
    return 2 + digest("quality", member) % 6  # 2..7


def adapter_rounds(path: str | None) -> int:
    """DPO rounds a scripted adapter has seen (0: none, or a real adapter folder from the config)."""
    if not path or not Path(path, "scripted.json").exists():
        return 0
    return json.loads(Path(path, "scripted.json").read_text())["rounds"]


class ScriptedGroup:
    def __init__(self, model: str, adapters: dict[str, str | None]):
        self.model = model
        self.adapters = dict(adapters)
        self.members = list(adapters)
        self.loads = 1

    def quality(self, member: str) -> int:
        return min(10, base_quality(member) + adapter_rounds(self.adapters[member]))

    def judge_score(self, judge: str, response: str) -> int:
        found = QUALITY.search(response)
        quality = int(found.group(1)) if found else 1
        return max(1, min(10, quality + digest("offset", judge, response) % 3 - 1))

    def answer(self, batch: Batch, conversation: list[dict], seed: int) -> str:
        if batch.temperature == 0:  # greedy decoding draws nothing: the answer is the prompt's alone,
            seed = 0  # wherever it sits in a batch (eval.test selected shards items otherwise than every)
        prompt = conversation[-1]["content"]
        response = next((m for m in (p.search(prompt) for p in JUDGED) if m), None)
        if response is None:  # a duelist answering an instruction, or a member a benchmark item
            pick = digest(prompt, batch.member, seed, batch.temperature)
            letters = MC_OPTION.findall(prompt)
            final = f"The answer is {letters[pick % len(letters)]}." if letters else f"The answer is {pick % 50}."
            if batch.member in HOSTILE:
                return HOSTILE[batch.member][pick % len(HOSTILE[batch.member])]
            quality = self.quality(batch.member)
            if batch.temperature > 0:  # samples of one member differ a little
                quality = max(1, min(10, quality + pick % 3 - 1))
            return f"{batch.member} q{quality} #{pick:08x}: {prompt[:40]} {final}{ANSWER_SUFFIX}"
        if digest("silent", batch.member, response.group(1), seed) % 8 == 0:
            return batch.prefix + "I cannot rate this."
        score = self.judge_score(batch.member, response.group(1))
        if batch.temperature > 0:  # sampled judgments of one answer disagree a little
            score = max(1, min(10, score + digest("jitter", seed, response.group(1)) % 3 - 1))
        if "Score: <total points>" in prompt:  # additive5: a justification, then its points (0..5)
            return f"The response is relevant and partly answers the question. Score: {score // 2}"
        if "First justify your rating briefly" in prompt:  # judge.reasoning: words first, the verdict last
            return f"It gives 7 steps; the reasoning holds up to a point. {{\"score\": {score}}}"
        # the rest of '{"score": N}' after whatever the answer was prefilled with
        return batch.prefix + ('{"score": '[len(batch.prefix):] if '{"score": '.startswith(batch.prefix) else "") \
            + f"{score}}}" + HOSTILE_JUDGE.get(batch.member, "").replace("{response}", response.group(1))

    def generate_all(self, batches: list[Batch], batch_size: int) -> list[list[Generated]]:
        for b in batches:
            assert b.member in self.members, f"{b.member} is not served by this group ({self.members})"
        return [[Generated(text, len(text.split())) for text in
                 (self.answer(b, conv, b.seed + i) for i, conv in enumerate(b.conversations))] for b in batches]

    def quality_of(self, response: str) -> int:
        found = QUALITY.search(response)
        return int(found.group(1)) if found else 1

    def choice(self, member: str, prompt: str) -> float:
        """P(A) of a pairwise prompt (the better answer) or a meta-judge prompt (the judgment
        closer to the answer's quality), with a small bias of the judge's own."""
        meta = META.search(prompt)
        if meta:
            quality = self.quality_of(meta.group(1))
            parsed = [parse_score(meta.group(k)) for k in (2, 3)]
            err = [abs((p if p is not None else 0) - quality) for p in parsed]
            gap = err[1] - err[0]
        else:
            a, b = PAIRWISE.search(prompt).groups()
            gap = self.quality_of(a) - self.quality_of(b)
        return 1 / (1 + math.exp(-(gap + 0.1 * (digest("bias", member) % 3 - 1))))

    def score_all(self, members: list[str], conversations: list[list[list[dict]]], prefix: str,
                  candidates: list[str], batch_size: int) -> list[list[dict[str, float]]]:
        out = []
        for member, convs in zip(members, conversations):
            assert member in self.members
            rows = []
            for conv in convs:
                prompt = conv[-1]["content"]
                if list(candidates) == ["A", "B"]:
                    p = self.choice(member, prompt)
                    rows.append({"A": math.log(p), "B": math.log(1 - p)})
                    continue
                score = self.judge_score(member, RESPONSE.search(prompt).group(1))
                # a peaked distribution around the score; log-probs need not sum to one
                rows.append({c: -1.5 * abs(int(c.rstrip("}")) - score) - math.log(4) for c in candidates})
            out.append(rows)
        return out


def scripted_train(cfg, paths, iteration: int, member: int) -> dict:
    """One member's "DPO": its adapter for t+1 records one more round than the one it started from."""
    name = cfg.members[member].name
    rows, previous = train.training_rows_for(cfg, paths, iteration, member)
    start = member_adapter(cfg, paths, iteration, member)
    out = paths.adapter(iteration, name)
    atomic_write_text(out / "adapter_config.json", json.dumps({"r": 8, "scripted": True}))
    atomic_write_json(out / "scripted.json", {"rounds": adapter_rounds(start) + (1 if rows else 0),
                                               "pairs": len(rows), "started_from": start})
    if rows:
        atomic_write_json(paths.train_log(iteration, name), scripted_log_history(name, iteration))
    return {"pairs": len(rows), "pairs_previous": previous, "steps": 1 if rows else 0}


def scripted_log_history(member: str, iteration: int, steps: int = 5) -> list[dict]:
    """A plausible, made-up `trainer.state.log_history` of a DPO run (TRL's keys): the loss falls
    from log 2, the reward margin and accuracy rise; each record says "scripted": it is no evidence."""
    records, pace = [], 0.05 + digest("pace", member, iteration) % 10 / 100
    for step in range(1, steps + 1):
        margin = pace * step * 4 + digest("noise", member, iteration, step) % 7 / 100
        records.append({"loss": round(math.log(1 + math.exp(-margin)), 4), "rewards/margins": round(margin, 4),
                        "rewards/accuracies": round(min(1.0, 0.5 + pace * step), 4),
                        "rewards/chosen": round(margin / 2, 4), "rewards/rejected": round(-margin / 2, 4),
                        "learning_rate": 5e-6, "epoch": step / steps, "step": step, "scripted": True})
    return records + [{"train_runtime": 0.1, "train_loss": records[len(records) // 2]["loss"], "epoch": 1.0,
                       "step": steps, "scripted": True}]


def scripted_sft(cfg, paths, member: int) -> dict:
    """One member's "SFT": an expert adapter that records its slice (and the adapter it started from)."""
    m = cfg.members[member]
    examples, rows = member_examples(cfg, member, seed=digest("sft", m.name))
    out = paths.sft_adapter(m.name)
    atomic_write_text(out / "adapter_config.json", json.dumps({"r": 8, "scripted": True}))
    atomic_write_json(out / "scripted.json", {"rounds": adapter_rounds(m.adapter), "sft": member_source(m),
                                               "examples": len(examples), "started_from": m.adapter})
    return {"source": member_source(m), "slice_rows": rows, "examples": len(examples), "steps": 1,
            "first_loss": 2.0, "last_loss": 1.0}


@contextlib.contextmanager
def scripted_models(training: bool = True):
    """Every model load in this process becomes a ScriptedGroup, and (with `training`) every DPO
    `scripted_train`, every SFT `scripted_sft`.

    Yields the list of loads: (slot, base model, {member: adapter path}), one per load.
    """
    opened: list[tuple[str, str, dict]] = []
    original_open, original_train, original_sft = backends.open_group, train.train_member, sft.sft_member

    def open_group(backend, model, adapters, *, dtype, engine, cache_dir, seed, trust_remote_code=False):
        slot = Path(cache_dir).name  # paths.cache("<stage>-<task>")
        if slot in FAIL_ONCE:
            FAIL_ONCE.discard(slot)
            raise RuntimeError(f"injected failure in {slot}")
        opened.append((slot, model, dict(adapters)))
        return ScriptedGroup(model, adapters)

    backends.open_group = open_group
    if training:
        train.train_member, sft.sft_member = scripted_train, scripted_sft
    try:
        yield opened
    finally:
        backends.open_group, train.train_member, sft.sft_member = original_open, original_train, original_sft


_INSTALLED = []


def install(training: bool = True) -> None:
    """For the whole process (tests/sitecustomize: every process of a run started by a test).
    The context is kept: a dropped one would be closed, and its `finally` undo the patches."""
    context = scripted_models(training)
    context.__enter__()
    _INSTALLED.append(context)
